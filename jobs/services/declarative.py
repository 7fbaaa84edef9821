"""Jobs as files: `plan` what a set of job documents would change, `apply` it in one transaction.

A document is the jobs of one file (or of one API body) in Dkron's job format plus dkronweb's
fields, as GET /v1/jobs answers them; calendars may travel inside the jobs that name them
(transfer.CALENDARS_KEY), as in an export.

How a plan is made, and why this way: every job of the documents goes through `job_upsert`
inside one transaction (each in its own savepoint), the stored job is read back through the
wire format (`job_to_dict`) and compared with what it was before. So a plan is exactly what
apply does: the same defaults, the same validation and permission checks (an actor who may
not run code cannot get a shell job in), the same merge of masked secrets. Then:

1. a job whose wire form did not change has its savepoint rolled back (no write, no audit);
2. with `prune`, the jobs carrying the scope label and named by no document are deleted,
   children before parents;
3. `plan` rolls the whole transaction back; `apply` commits it, unless anything failed
   (a job that does not validate, a duplicate name, a refused delete): then nothing is kept.

Secrets never leave: changes are found on the wire form with the secrets decrypted, and shown
as the masked wire form has them; where only the decrypted values differ, the change says
"secret changed" and carries no value. The SQLite cost: the one transaction holds its write
lock for the whole plan (other writers wait), where a restore commits in batches.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from django.db import transaction
from rest_framework import serializers

from jobs import calendars
from jobs.errors import DomainError
from jobs.models import Calendar, Job
from jobs.secrets import decrypt_config, decrypt_notify
from jobs.services.audit import Actor, audit_record
from jobs.services.calendars import calendar_upsert
from jobs.services.cluster import ensure_not_paused
from jobs.services.jobs import job_delete, job_upsert, validate_name
from jobs.services.transfer import CALENDARS_KEY, _order
from jobs.wire import JobInputSerializer, job_to_dict, validation_message

# Fields of the wire form the server maintains: never in a file's say, never a change.
SERVER_FIELDS = frozenset(
    {
        "id",
        "success_count",
        "error_count",
        "last_success",
        "last_error",
        "dependent_jobs",
        "status",
        "next",
        "missed_count",
        "problems",
    }
)
ABSENT = object()  # a key one side of a diff does not have
SECRET_CHANGED = "(secret changed)"


class InvalidApply(DomainError):
    """The request itself is wrong (prune without a scope, a bad scope); nothing was read."""


@dataclass(frozen=True)
class Document:
    """The jobs of one file (or of an API body): `source` names it in errors and output;
    `error` says why a file could not be read (then it has no jobs, and the plan an error)."""

    source: str
    jobs: list[Any]
    error: str = ""


FILE_SUFFIXES = (".yaml", ".yml", ".json")


def read_paths(paths: Iterable[str | Path]) -> list[Document]:
    """The documents of files and folders: a folder gives its *.yaml, *.yml and *.json files,
    recursively, sorted by path; a named file is read whatever its suffix (JSON if it ends in
    .json, else YAML, a superset of JSON)."""
    files: list[Path] = []
    documents: list[Document] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.is_file() and p.suffix in FILE_SUFFIXES)
            files.extend(sorted(found))
        elif path.exists():
            files.append(path)
        else:
            documents.append(Document(str(path), [], error="no such file or folder"))
    seen: set[Path] = set()
    for path in files:
        if path.resolve() not in seen:  # a file named and inside a named folder: read once
            seen.add(path.resolve())
            documents.append(read_file(path))
    return documents


# A job file's limits. YAML aliases expand on reading (the "billion laughs": a 1 kB file of
# nested aliases is 43 million values and a minute of CPU), so the values read are counted;
# a few thousand jobs hold far fewer than either limit.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_VALUES = 1_000_000


def read_file(path: Path) -> Document:
    """One file: a job object or a list of them (YAML may hold several documents, each one)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return Document(str(path), [], error=f"larger than {MAX_FILE_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return Document(str(path), [], error=f"cannot read: {exc}")
    return parse_text(str(path), text, json_only=path.suffix == ".json")


def parse_text(source: str, text: str, *, json_only: bool = False) -> Document:
    try:
        if json_only:
            loaded = [json.loads(text)]
        else:
            budget = [MAX_VALUES]
            loaded = [_plain_yaml(d, budget) for d in yaml.safe_load_all(text)]
    except (ValueError, RecursionError, yaml.YAMLError) as exc:
        return Document(source, [], error=f"cannot parse: {exc}")
    jobs: list[Any] = []
    for data in loaded:
        if data is None:
            continue  # an empty file or document
        jobs.extend(data if isinstance(data, list) else [data])
    return Document(source, jobs)


def _plain_yaml(value: Any, budget: list[int]) -> Any:
    """YAML's own types as the JSON a client would send: unquoted dates and times become
    RFC 3339 strings (Dkron binds times from strings only). `budget` is the values still
    allowed (MAX_VALUES): a ValueError past it."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"more than {MAX_VALUES:,} values (YAML aliases that expand so?)")
    if isinstance(value, dict):
        return {
            str(k) if not isinstance(k, str) else k: _plain_yaml(v, budget)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_plain_yaml(v, budget) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Scope:
    """A metadata label `key=value`: the jobs a set of files manages (see `parse_scope`)."""

    key: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}"

    def holds(self, metadata: Any) -> bool:
        return isinstance(metadata, dict) and metadata.get(self.key) == self.value


def parse_scope(text: str | None) -> Scope | None:
    """`key=value` (the value may be empty, the key may not); None for no scope."""
    if text is None or text == "":
        return None
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise InvalidApply(
            f"scope must be key=value (a metadata label), got {text!r}", {"scope": "key=value"}
        )
    return Scope(key.strip(), value.strip())


@dataclass
class Change:
    """One field of a job that changes: its dotted path, the values before and after (masked
    wire values; None with `secret` when only a secret's value changes)."""

    path: str
    before: Any = None
    after: Any = None
    secret: bool = False

    def as_dict(self) -> dict[str, Any]:
        if self.secret:
            return {"path": self.path, "secret": True}
        return {
            "path": self.path,
            "before": None if self.before is ABSENT else self.before,
            "after": None if self.after is ABSENT else self.after,
        }

    def text(self) -> str:
        if self.secret:
            return f"{self.path} {SECRET_CHANGED}"
        return f"{self.path} {_show(self.before)} -> {_show(self.after)}"


def _show(value: Any) -> str:
    if value is ABSENT:
        return "(none)"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass
class Item:
    """A job (or calendar) the plan creates, updates or deletes."""

    name: str
    action: Literal["create", "update", "delete"]
    source: str = ""
    kind: Literal["job", "calendar"] = "job"
    changes: list[Change] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "action": self.action, "kind": self.kind}
        if self.source:
            out["source"] = self.source
        if self.action == "update":
            out["changes"] = [c.as_dict() for c in self.changes]
        return out

    def lines(self) -> list[str]:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        what = self.name if self.kind == "job" else f"calendar {self.name}"
        head = f"{sign} {self.action} {what}"
        if self.action != "update" or not self.changes:
            return [head]
        if len(self.changes) == 1:
            return [f"{head}: {self.changes[0].text()}"]
        return [head, *(f"    {c.text()}" for c in self.changes)]


@dataclass
class Problem:
    """Why a job (or a file) cannot be applied."""

    source: str
    job: str
    error: str
    details: dict[str, Any] = field(default_factory=dict)
    status: int = 400  # the HTTP status the API answers for it alone (403: not allowed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "job": self.job,
            "error": self.error,
            "details": self.details,
        }

    def text(self) -> str:
        where = ", ".join(p for p in (self.source, self.job) if p)
        return f"! error {where}: {self.error}" if where else f"! error: {self.error}"


@dataclass
class Plan:
    """What applying the documents changes. `applied`: whether it was committed."""

    items: list[Item] = field(default_factory=list)
    unchanged: int = 0
    errors: list[Problem] = field(default_factory=list)
    scope: Scope | None = None
    prune: bool = False
    applied: bool = False

    def _of(self, action: str) -> list[Item]:
        return [i for i in self.items if i.action == action]

    @property
    def creates(self) -> list[Item]:
        return self._of("create")

    @property
    def updates(self) -> list[Item]:
        return self._of("update")

    @property
    def deletes(self) -> list[Item]:
        return self._of("delete")

    @property
    def status(self) -> int:
        """The API's status: 200, or 403 if any job is refused for a permission, else 400."""
        if not self.errors:
            return 200
        return 403 if any(p.status == 403 for p in self.errors) else 400

    @property
    def has_changes(self) -> bool:
        return bool(self.items)

    def summary(self) -> str:
        if self.errors:
            return f"Error: {len(self.errors)} problem(s); nothing was changed."
        counts = (
            f"{len(self.creates)} to create, {len(self.updates)} to update, "
            f"{len(self.deletes)} to delete, {self.unchanged} unchanged"
        )
        if self.applied:
            counts = counts.replace(" to ", " ")
            return f"Applied: {counts}."
        if not self.has_changes:
            return f"No changes: {self.unchanged} unchanged."
        return f"Plan: {counts}."

    def lines(self) -> list[str]:
        out = [line for item in self.items for line in item.lines()]
        out += [p.text() for p in self.errors]
        return [*out, self.summary()]

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "changes": self.has_changes,
            "create": [i.as_dict() for i in self.creates],
            "update": [i.as_dict() for i in self.updates],
            "delete": [i.as_dict() for i in self.deletes],
            "unchanged": self.unchanged,
            "errors": [p.as_dict() for p in self.errors],
            "prune": self.prune,
            "scope": str(self.scope) if self.scope else None,
            "summary": self.summary(),
        }


Permit = Callable[[Plan], None]


def plan(
    documents: Iterable[Document],
    *,
    actor: Actor,
    prune: bool = False,
    scope: Scope | None = None,
    permit: Permit | None = None,
) -> Plan:
    """What `apply` would change, computed by doing it and rolling back (module doc).
    `permit` as for `apply`: a dry run is refused where the apply would be."""
    return _run(list(documents), actor=actor, prune=prune, scope=scope, commit=False, permit=permit)


def apply(
    documents: Iterable[Document],
    *,
    actor: Actor,
    prune: bool = False,
    scope: Scope | None = None,
    permit: Permit | None = None,
) -> Plan:
    """Make the stored jobs what the documents say, in one transaction: all of it, or nothing
    when the plan has errors (then `applied` is False). `permit(plan)` runs before the commit
    and may raise to refuse (the API's per-action permissions); it sees exactly what commits."""
    return _run(list(documents), actor=actor, prune=prune, scope=scope, commit=True, permit=permit)


def _run(
    documents: list[Document],
    *,
    actor: Actor,
    prune: bool,
    scope: Scope | None,
    commit: bool,
    permit: Permit | None = None,
) -> Plan:
    if prune and scope is None:
        raise InvalidApply(
            "prune needs a scope (--scope key=value): only jobs carrying that metadata label "
            "are deleted when no file names them",
            {"scope": "required with prune"},
        )
    ensure_not_paused()
    result = Plan(scope=scope, prune=prune)
    jobs, sources = _collect(documents, result)
    with transaction.atomic():
        _plan_calendars(jobs, sources, actor, result)
        ordered, failed, _cyclic = _order(jobs)
        for failure in failed:
            result.errors.append(
                Problem(sources.get(failure.name, ""), failure.name, failure.error)
            )
        for name, item in ordered:
            _plan_job(name, item, sources[name], actor, scope, result)
        if prune and scope is not None:
            _plan_deletes(set(sources), scope, actor, result)
        if permit is not None and not result.errors:
            permit(result)  # raising rolls everything back
        if commit and not result.errors:
            result.applied = True
        else:
            transaction.set_rollback(True)
        if result.applied and result.items:  # a CI apply that changes nothing leaves no entry
            audit_record(
                actor=actor,
                action="apply",
                detail={
                    "created": len(result.creates),
                    "updated": len(result.updates),
                    "deleted": len(result.deletes),
                    "unchanged": result.unchanged,
                    "scope": str(scope) if scope else "",
                },
            )
    return result


def _collect(
    documents: list[Document], result: Plan
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The job objects of every document in order, and the source of each name. A name in two
    places is an error naming both; an item that is not an object, or has no name, too."""
    jobs: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    for doc in documents:
        if doc.error:
            result.errors.append(Problem(doc.source, "", doc.error))
        for index, item in enumerate(doc.jobs):
            if not isinstance(item, dict):
                kind = type(item).__name__
                result.errors.append(
                    Problem(doc.source, f"#{index}", f"expected a job object, got {kind}")
                )
                continue
            try:
                name = validate_name(item.get("name"))  # before a query names it (NUL, length)
            except DomainError as exc:
                given = item.get("name")
                label = given if isinstance(given, str) and given else f"#{index}"
                result.errors.append(Problem(doc.source, label[:255], exc.message, exc.details))
                continue
            if name in sources:
                first = sources[name]
                where = (
                    f"twice in {first}" if first == doc.source else f"in {first} and {doc.source}"
                )
                result.errors.append(
                    Problem(doc.source, name, f"duplicate job name '{name}': {where}")
                )
                continue
            sources[name] = doc.source
            jobs.append(item)
    return jobs, sources


def _plan_calendars(
    jobs: list[dict[str, Any]], sources: dict[str, str], actor: Actor, result: Plan
) -> None:
    """Create or replace the calendars the jobs carry (the first definition of each name),
    before any job names them; unlike a restore, a definition that does not validate is an
    error. An unchanged calendar is not written."""
    done: set[str] = set()
    for job in jobs:
        definitions = job.get(CALENDARS_KEY)
        if definitions is None:
            continue
        source = sources.get(job.get("name", ""), "")
        if not isinstance(definitions, dict):
            result.errors.append(
                Problem(source, job.get("name", ""), f"{CALENDARS_KEY} must be an object")
            )
            continue
        for name, definition in definitions.items():
            if name in done:
                continue
            done.add(name)
            try:
                calendars.clean_name(name)  # before any query names it
            except calendars.InvalidCalendar as exc:
                result.errors.append(Problem(source, f"calendar {name[:255]}", str(exc)))
                continue
            stored = Calendar.objects.filter(name=name).first()
            before = stored.definition() if stored is not None else None
            sid = transaction.savepoint()
            try:
                calendar, created = calendar_upsert(
                    name=name, data=definition if isinstance(definition, dict) else {}, actor=actor
                )
            except DomainError as exc:
                transaction.savepoint_rollback(sid)
                result.errors.append(Problem(source, f"calendar {name}", exc.message, exc.details))
                continue
            after = calendar.definition()
            if created:
                result.items.append(Item(name, "create", source, kind="calendar"))
            elif before != after:
                changes = _diff(before or {}, after)
                result.items.append(Item(name, "update", source, kind="calendar", changes=changes))
            else:
                transaction.savepoint_rollback(sid)
                continue
            transaction.savepoint_commit(sid)


def _plan_job(
    name: str,
    item: dict[str, Any],
    source: str,
    actor: Actor,
    scope: Scope | None,
    result: Plan,
) -> None:
    stored = Job.objects.select_related("parent").filter(name=name).first()
    if scope is not None:
        if not scope.holds(item.get("metadata")):
            result.errors.append(
                Problem(
                    source,
                    name,
                    f"the job's metadata must carry the scope label {scope.key}: "
                    f"{json.dumps(scope.value)} (--scope {scope})",
                    {"metadata": f"{scope} required"},
                )
            )
            return
        owner = (stored.metadata or {}).get(scope.key) if stored is not None else None
        if owner is not None and owner != scope.value:
            result.errors.append(
                Problem(
                    source,
                    name,
                    f"the stored job belongs to scope {scope.key}={owner}, not {scope}",
                    {"metadata": f"{scope.key}={owner}"},
                )
            )
            return
    before = _views(stored) if stored is not None else None
    sid = transaction.savepoint()
    try:
        serializer = JobInputSerializer(data=item)
        try:
            serializer.is_valid(raise_exception=True)
        except serializers.ValidationError as exc:
            details = exc.detail if isinstance(exc.detail, dict) else {}
            raise DomainError(validation_message(exc), dict(details)) from None
        job, created = job_upsert(data=dict(serializer.validated_data), actor=actor)
    except DomainError as exc:
        transaction.savepoint_rollback(sid)
        problem = Problem(source, name, exc.message, _plain(exc.details), exc.status_code)
        result.errors.append(problem)
        return
    job = Job.objects.select_related("parent").get(pk=job.pk)
    if created or before is None:
        transaction.savepoint_commit(sid)
        result.items.append(Item(name, "create", source))
        return
    changes = _job_changes(before, _views(job))
    if not changes:
        transaction.savepoint_rollback(sid)  # nothing changes: no write, no audit entry
        result.unchanged += 1
        return
    transaction.savepoint_commit(sid)
    result.items.append(Item(name, "update", source, changes=changes))


def _plan_deletes(named: set[str], scope: Scope, actor: Actor, result: Plan) -> None:
    """Delete the jobs carrying the scope label that no document names, children before
    parents (a job with children outside the scope is refused by job_delete: an error)."""
    left = {
        job.name: job
        for job in Job.objects.only("pk", "name", "metadata", "parent_id", "ephemeral")
        if scope.holds(job.metadata) and job.name not in named
    }
    children: dict[str, set[str]] = {name: set() for name in left}
    pairs = Job.objects.filter(parent__name__in=list(left), name__in=list(left))
    for child, parent in pairs.values_list("name", "parent__name"):
        children[parent].add(child)
    while left:
        # Leaves first; the database holds no parent cycle, so each round removes some.
        leaves = sorted(n for n in left if not children[n] & left.keys()) or sorted(left)
        for name in leaves:
            job = left.pop(name)
            sid = transaction.savepoint()
            try:
                job_delete(job=job, actor=actor)
            except DomainError as exc:
                transaction.savepoint_rollback(sid)
                problem = Problem("", name, exc.message, _plain(exc.details), exc.status_code)
                result.errors.append(problem)
                continue
            transaction.savepoint_commit(sid)
            result.items.append(Item(name, "delete"))


def _plain(details: Any) -> dict[str, Any]:
    """Details as JSON values (DRF's ErrorDetail strings become plain strings)."""
    return json.loads(json.dumps(details, default=str)) if isinstance(details, dict) else {}


def _views(job: Job) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job's wire form without the server's fields: masked (safe to show), and with the
    secrets decrypted (compared only, never shown)."""
    masked = {k: v for k, v in job_to_dict(job).items() if k not in SERVER_FIELDS}
    clear = dict(masked)
    clear["executor_config"] = decrypt_config(job.executor, job.executor_config or {}, strict=False)
    clear["notify"] = decrypt_notify(job.notify or {}, strict=False)
    return json.loads(json.dumps(masked)), json.loads(json.dumps(clear))


def _job_changes(
    before: tuple[dict[str, Any], dict[str, Any]], after: tuple[dict[str, Any], dict[str, Any]]
) -> list[Change]:
    """The fields that differ, by path. A difference only the decrypted values show is a
    secret's: reported without values; where the masked values differ they are shown."""
    masked_before, clear_before = before
    masked_after, clear_after = after
    changes = []
    for keys, old, new in _leaves(clear_before, clear_after):
        path = ".".join(keys)
        shown_old, shown_new = _at(masked_before, keys), _at(masked_after, keys)
        if shown_old == old and shown_new == new:
            changes.append(Change(path, old, new))
        elif shown_old != shown_new:
            changes.append(Change(path, shown_old, shown_new))
        else:
            changes.append(Change(path, secret=True))
    return changes


def _diff(before: Any, after: Any) -> list[Change]:
    return [Change(".".join(keys), old, new) for keys, old, new in _leaves(before, after)]


def _leaves(
    before: Any, after: Any, keys: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], Any, Any]]:
    """Leaf differences: into objects key by key, lists and scalars whole."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in [*before, *(k for k in after if k not in before)]:
            out += _leaves(before.get(key, ABSENT), after.get(key, ABSENT), (*keys, str(key)))
        return out
    if before == after:
        return []
    return [(keys, before, after)]


def _at(data: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return ABSENT
        data = data[key]
    return data
