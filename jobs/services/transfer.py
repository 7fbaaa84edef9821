"""Job export and restore in Dkron's format (GET /v1/jobs output): /v1/restore and the CLI.

Restore runs every job through `job_upsert` with the caller as actor, so it checks permissions
exactly as the API does and refuses what Dkron itself refuses (name, self-parent, schedule,
concurrency, timezone, shell timeout and mem_limit). What only dkronweb's own validation finds
wrong (executor config schemas, processors, notify, a missing executor...) does not refuse the
job: a Dkron backup must restore whole, so the job is stored with its problems, which are
reported here, on the job page and in /health, and fail its runs until an upsert fixes them.
Parents go before children; a job that cannot be restored is reported and the others go on,
as Dkron's restore does.

Bounds (so that one request cannot hold a worker's memory or the database for long): the API
reads at most DKRON_RESTORE_MAX_JOBS jobs of a file and refuses a larger one (413, "split the
file") without decoding the rest; each answer line is cut to LINE_MAX characters; and the jobs
are written in transactions of DKRON_RESTORE_BATCH jobs, so other writers (SQLite has one
write lock) get in between batches.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from rest_framework import serializers

from jobs.errors import DomainError
from jobs.models import Job
from jobs.secrets import decrypt_config, decrypt_notify
from jobs.services.audit import audit_record
from jobs.services.cluster import ensure_not_paused
from jobs.services.jobs import SYSTEM, Actor, job_upsert
from jobs.wire import JobInputSerializer, job_to_dict, validation_message

Named = tuple[str, dict[str, Any]]  # a job of the file and its name
MAX_JOBS = 1000  # jobs per restore request (DKRON_RESTORE_MAX_JOBS)
BATCH = 100  # jobs per transaction (DKRON_RESTORE_BATCH)
LINE_MAX = 300  # characters of a job's name and of its reason in an answer line
_SPACE = re.compile(r"[ \t\n\r]*")
# SQLite has one write lock and its busy handler sleeps up to 100 ms between tries: a pause
# longer than that between batches lets every waiting writer in (PostgreSQL needs none).
SQLITE_BREATHER = 0.11


class InvalidExport(DomainError):
    """The file is not a JSON array of job objects; nothing was stored."""


class TooManyJobs(DomainError):
    """The file holds more jobs than one restore takes; nothing was stored."""

    status_code = 413


def _cut(text: str) -> str:
    return text if len(text) <= LINE_MAX else text[: LINE_MAX - 1] + "…"


@dataclass
class RestoreResult:
    """What happened to one job of the file."""

    name: str
    ok: bool
    created: bool = False
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # Stored anyway with these findings of dkronweb's own validation (`Job.problems`).
    problems: dict[str, Any] = field(default_factory=dict)

    def dkron_line(self) -> str:
        """Dkron's per-job line ("success create job1"); failures add the reason."""
        if self.ok:
            return f"success create {_cut(self.name)}"
        return f"fail create {_cut(self.name)}: {_cut(self.error)}"


def jobs_export(*, include_secrets: bool = False) -> list[dict[str, Any]]:
    """Every job in Dkron's JSON, secrets masked as in API responses (restored over the same
    jobs, a mask keeps the stored secret; restored elsewhere, masked secrets are left out).

    With `include_secrets` the real values, decrypted (jobs.secrets), so that the file restores
    to the same jobs on any server: the caller must keep it as secret as the database.
    """
    jobs = Job.objects.select_related("parent").prefetch_related("dependents").order_by("name")
    out = []
    for job in jobs:
        data = job_to_dict(job)
        if include_secrets:
            config = job.executor_config or {}
            data["executor_config"] = decrypt_config(job.executor, config, strict=False)
            data["notify"] = decrypt_notify(job.notify or {}, strict=False)
        if job.exclude_calendars or job.only_calendars:
            data[CALENDARS_KEY] = _definitions(job)
        out.append(data)
    return out


# Calendars travel inside the jobs that name them, under a key Dkron ignores: the file stays
# a plain Dkron job array, and a restore creates or replaces them before any job.
CALENDARS_KEY = "calendar_definitions"


def _definitions(job: Job) -> dict[str, Any]:
    from jobs.models import Calendar

    names = [*job.exclude_calendars, *job.only_calendars]
    return {c.name: c.definition() for c in Calendar.objects.filter(name__in=names)}


def _restore_calendars(items: list[dict[str, Any]], actor: Actor) -> None:
    """Create or replace the calendars the file's jobs carry, each once (the first one met);
    a definition that does not validate is left out, and its jobs fail as naming an unknown
    calendar."""
    from jobs.services.calendars import calendar_upsert

    done: set[str] = set()
    for item in items:
        definitions = item.get(CALENDARS_KEY)
        if not isinstance(definitions, dict):
            continue
        for name, definition in definitions.items():
            if name in done or not isinstance(definition, dict):
                continue
            done.add(name)
            try:
                with transaction.atomic():
                    calendar_upsert(name=name, data=definition, actor=actor)
            except DomainError:
                continue


def parse_export(raw: bytes | str, *, max_jobs: int | None = None) -> list[dict[str, Any]]:
    """The jobs of an export file; InvalidExport (400) unless it is a JSON array of objects,
    TooManyJobs (413) past `max_jobs` items (decoding stops there: a file of millions of
    `{}` costs no more than `max_jobs` of them)."""
    try:
        text = raw.decode(json.detect_encoding(raw)) if isinstance(raw, bytes) else raw
        return list(_array_items(text, max_jobs))
    except RecursionError:
        raise InvalidExport("Unable to parse payload: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidExport(f"Unable to parse payload: {exc}") from None


def _array_items(text: str, max_jobs: int | None) -> Iterator[dict[str, Any]]:
    """The objects of a JSON array, decoded one at a time (json.loads would decode them all)."""
    text = text.removeprefix("\ufeff")
    decoder = json.JSONDecoder()
    index = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if text[index : index + 1] != "[":
        data = json.loads(text)  # not an array: invalid JSON says so, valid JSON has a type
        raise InvalidExport(
            "expected a JSON array of jobs (the output of GET /v1/jobs)",
            {"file": f"got a JSON {type(data).__name__}"},
        )
    index = _SPACE.match(text, index + 1).end()  # type: ignore[union-attr]
    count = 0
    if text[index : index + 1] != "]":
        while True:
            item, index = decoder.raw_decode(text, index)
            if not isinstance(item, dict):
                raise InvalidExport(
                    f"item {count} of the array is not a job object",
                    {"file": f"item {count}: got a JSON {type(item).__name__}"},
                )
            count += 1
            if max_jobs is not None and count > max_jobs:
                raise TooManyJobs(
                    f"the file holds more than {max_jobs} jobs, the most one restore takes "
                    "(DKRON_RESTORE_MAX_JOBS): split it into smaller files",
                    {"file": f"more than {max_jobs} jobs", "limit": max_jobs},
                )
            yield item
            index = _SPACE.match(text, index).end()  # type: ignore[union-attr]
            if text[index : index + 1] == ",":
                index = _SPACE.match(text, index + 1).end()  # type: ignore[union-attr]
                continue
            if text[index : index + 1] == "]":
                break
            raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
    end = _SPACE.match(text, index + 1).end()  # type: ignore[union-attr]
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)


def _label(item: dict[str, Any], index: int) -> str:
    name = item.get("name")
    return name if isinstance(name, str) and name else f"#{index}"


def _order(
    items: list[dict[str, Any]],
) -> tuple[list[Named], list[RestoreResult], set[str]]:
    """Parents before children, in file order otherwise.

    Returns the ordered jobs, the failures, and the names on cycles (whose children fail).

    Failures are jobs without a usable name, later duplicates of a name, and every job on a
    `parent_job` cycle within the file. A parent absent from the file may exist in the
    database already; `job_upsert` answers for it.
    """
    failed: list[RestoreResult] = []
    by_name: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        name = item.get("name")
        if not isinstance(name, str) or not name:
            failed.append(RestoreResult(_label(item, index), False, error="name is required"))
        elif name in by_name:
            failed.append(
                RestoreResult(name, False, error="the file holds this job more than once")
            )
        else:
            by_name[name] = item

    def parent_of(name: str) -> str:
        parent = by_name[name].get("parent_job")
        return parent if isinstance(parent, str) and parent in by_name else ""

    ordered: list[Named] = []
    done: set[str] = set()
    cyclic: set[str] = set()
    for start in by_name:
        # Walk up to the first ancestor already placed (or a root), then place the chain
        # top-down. Meeting a job of the current walk again means a cycle.
        chain: list[str] = []
        name = start
        while name and name not in done and name not in cyclic:
            if name in chain:
                loop = chain[chain.index(name) :]
                path = " -> ".join([*loop, name])
                error = f"parent_job cycle in the file: {path}"
                if len(loop) == 1:
                    error = "Job validation failed: the job can not have itself as parent"
                for member in loop:
                    cyclic.add(member)
                    failed.append(RestoreResult(member, False, error=error))
                chain = chain[: chain.index(name)]
                break
            chain.append(name)
            name = parent_of(name)
        for member in reversed(chain):
            done.add(member)
            ordered.append((member, by_name[member]))
    return ordered, failed, cyclic


def _restore_one(name: str, item: dict[str, Any], actor: Actor) -> RestoreResult:
    serializer = JobInputSerializer(data=item)
    try:
        serializer.is_valid(raise_exception=True)
    except serializers.ValidationError as exc:
        message = validation_message(exc)
        details = exc.detail if isinstance(exc.detail, dict) else {}
        return RestoreResult(name, False, error=message, details=dict(details))
    try:
        job, created = job_upsert(
            data=dict(serializer.validated_data),
            actor=actor,
            keep_problems=True,
            source=_source(actor),  # the jobs' revisions say they came from a file
        )
    except DomainError as exc:
        return RestoreResult(name, False, error=exc.message, details=exc.details)
    return RestoreResult(name, True, created=created, problems=dict(job.problems))


def jobs_restore(
    *,
    items: list[dict[str, Any]],
    actor: Actor = SYSTEM,
    dry_run: bool = False,
    with_calendars: bool = True,
) -> list[RestoreResult]:
    """Create or replace each job of a Dkron export (see `parse_export`), parents first.

    A transaction per DKRON_RESTORE_BATCH jobs (parents come in earlier batches than their
    children), each job in its own savepoint: a failing job is reported and does not undo the
    others (as in Dkron); a crash half-way keeps the batches before it. A job that only
    dkronweb's own validation finds wrong is stored with its `problems` (see the module
    doc). A child whose parent failed is not attempted. `dry_run` does all of it in one
    transaction and rolls back. Refused as a whole (503) while the cluster is paused.
    `with_calendars`: create or replace the calendars the jobs carry first (CALENDARS_KEY);
    the API passes whether the caller may.
    """
    ensure_not_paused()
    ordered, results, failed_names = _order(items)
    batch = max(1, int(settings.DKRON.get("RESTORE_BATCH", BATCH)))
    if dry_run:
        with transaction.atomic():
            if with_calendars:
                _restore_calendars(items, actor)
            for name, item in ordered:
                results.append(_restore_or_skip(name, item, actor, failed_names))
            _audit_restore(actor, results)
            transaction.set_rollback(True)
        return results
    if with_calendars:
        with transaction.atomic():
            _restore_calendars(items, actor)
    breather = SQLITE_BREATHER if connection.vendor == "sqlite" else 0.0
    for start in range(0, len(ordered), batch):
        if start and breather and not connection.in_atomic_block:
            time.sleep(breather)
        with transaction.atomic():  # commits (unless a caller's transaction holds it)
            for name, item in ordered[start : start + batch]:
                results.append(_restore_or_skip(name, item, actor, failed_names))
    with transaction.atomic():
        _audit_restore(actor, results)
    return results


def _restore_or_skip(
    name: str, item: dict[str, Any], actor: Actor, failed_names: set[str]
) -> RestoreResult:
    """Restore one job, or fail it when its parent failed (and add a failure to the names)."""
    parent = item.get("parent_job")
    if isinstance(parent, str) and parent in failed_names:
        result = RestoreResult(name, False, error=f"not restored: its parent job '{parent}' failed")
    else:
        result = _restore_one(name, item, actor)
    if not result.ok:
        failed_names.add(name)
    return result


def _source(actor: Actor) -> str:
    """import_jobs (the CLI) imports, /v1/restore restores."""
    return "import" if actor.via == "cli" else "restore"


def _audit_restore(actor: Actor, results: list[RestoreResult]) -> None:
    ok = sum(r.ok for r in results)
    audit_record(  # each job's create/update has its own entry too
        actor=actor,
        action=_source(actor),
        detail={
            "jobs": len(results),
            "ok": ok,
            "failed": len(results) - ok,
            "with_problems": sum(bool(r.problems) for r in results),
        },
    )
