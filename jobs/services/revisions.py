"""Job history: a revision for every change of a job, the diff of two, and the rollback.

Every write of a job (`jobs.services.jobs`: the upsert behind the API, the UI form, the
admin, /v1/restore, import_jobs and apply; the toggle; the delete) calls `revision_record`
in its own transaction, so a change that rolls back leaves no revision. A revision holds the
job as GET /v1/jobs/{name} shows it (jobs.wire), without the fields the server maintains
(counters, status, next fire, dependents): secrets are masked there, so no revision ever holds
a secret, sealed or plain. What it keeps of secrets is which of them a change set or replaced
(`secrets_changed`, paths only), so a diff can say "changed" where the masks look the same.

A change that changes nothing (the same body upserted again) records nothing. A job stored
before revisions existed gets a "baseline" revision of how it was before its first recorded
change, so that state can be restored too.

Restoring a revision upserts its data again (`restore_body`, then
`jobs.services.jobs.job_rollback`, which owns the upsert): its masked secrets keep
the job's current ones, as any masked upsert does (confidential.merge), and when where a
secret goes differs from the current job the restore is refused with the secret to resend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Max, QuerySet
from rest_framework import serializers

import confidential
from executors.registry import secret_spec
from jobs import secrets as job_secrets
from jobs.errors import DomainError, NotFound
from jobs.models import Job, JobRevision
from jobs.notifications import schema as notify_schema
from jobs.services.audit import Actor
from jobs.wire import JobInputSerializer, JobSerializer, validation_message

# GET /v1/jobs/{name} fields the server maintains: not part of what a change changes.
SERVER_FIELDS = (
    "success_count",
    "error_count",
    "last_success",
    "last_error",
    "dependent_jobs",
    "status",
    "next",
    "missed_count",
)

# What a diff shows for a secret whose masks look the same but whose value changed.
SECRET_CHANGED = "changed"


class JobDefinitionSerializer(JobSerializer):
    """JobSerializer without the server's fields, which are not read at all (the dependents
    would cost a query, `next` a schedule computation, on every write)."""

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        for key in SERVER_FIELDS:
            fields.pop(key, None)
        return fields


def definition(job: Job) -> dict[str, Any]:
    """The job as a revision holds it: its API shape, secrets masked, server fields left out."""
    return dict(JobDefinitionSerializer(job).data)


@dataclass(frozen=True)
class Secrets:
    """A job's secret values (plain, decrypted) by where they sit; compared, never stored."""

    values: dict[str, Any]

    @classmethod
    def of(cls, executor: str, config: dict[str, Any], notify: Any) -> Secrets:
        values: dict[str, Any] = {}
        plain = job_secrets.decrypt_config(executor, config or {}, strict=False)
        for path, value in confidential.secret_values(secret_spec(executor, plain), plain).items():
            values["executor_config." + confidential.describe(path).replace(" ", ".")] = value

        def collect(path: confidential.Path, value: Any) -> Any:
            # ("webhooks", i, key...) -> notify.webhooks.<i>.<secret>
            where = f"{path[0]}.{path[1]}." + confidential.describe(path[2:]).replace(" ", ".")
            values["notify." + where] = value
            return value

        notify_schema.transform_secrets(
            job_secrets.decrypt_notify(notify or {}, strict=False), collect
        )
        return cls(values)

    @classmethod
    def of_job(cls, job: Job) -> Secrets:
        return cls.of(job.executor, job.executor_config, job.notify)

    def changed_since(self, before: Secrets | None) -> list[str]:
        """The paths whose value this set holds and `before` did not (set, replaced, removed)."""
        old = before.values if before is not None else {}
        paths = set(old) | set(self.values)
        return sorted(p for p in paths if old.get(p) != self.values.get(p))


def _next_number(job_name: str) -> int:
    latest = JobRevision.objects.filter(job_name=job_name).aggregate(n=Max("number"))["n"]
    return (latest or 0) + 1


def revision_record(
    *,
    job: Job,
    actor: Actor,
    source: str,
    change: str,
    before: dict[str, Any] | None,
    before_secrets: Secrets | None,
    restored_from: int | None = None,
) -> JobRevision | None:
    """Record the change just made to `job` (saved, its row locked by the caller's
    transaction); None when nothing changed. `before` is `definition(job)` and
    `before_secrets` its secrets as they were before the change (None for a creation).

    Sets `job.revision` (in the database too) to the new number.
    """
    after = definition(job)
    secrets = Secrets.of_job(job)
    changed = secrets.changed_since(before_secrets)
    if before is not None and after == before and not changed:
        return None
    if before is not None and job.revision == 0 and not _has_history(job.name):
        # A job stored before revisions existed: keep how it was, so it can be restored.
        _create(job.name, before, actor=None, source="system", change=JobRevision.Change.BASELINE)
    revision = _create(
        job.name,
        after,
        actor=actor,
        source=source or actor.via,
        change=change,
        secrets_changed=changed,
        restored_from=restored_from,
    )
    job.revision = revision.number
    Job.objects.filter(pk=job.pk).update(revision=revision.number)
    return revision


def revision_record_delete(*, job: Job, actor: Actor) -> JobRevision:
    """The deletion of `job` (called before its row goes): its last state, marked deleted."""
    return _create(
        job.name,
        definition(job),
        actor=actor,
        source=actor.via,
        change=JobRevision.Change.DELETE,
    )


def _has_history(job_name: str) -> bool:
    return JobRevision.objects.filter(job_name=job_name).exists()


def _create(
    job_name: str,
    data: dict[str, Any],
    *,
    actor: Actor | None,
    source: str,
    change: str,
    secrets_changed: list[str] | None = None,
    restored_from: int | None = None,
) -> JobRevision:
    return JobRevision.objects.create(
        job_name=job_name,
        number=_next_number(job_name),
        actor=(actor.name if actor is not None else "system")[:150],
        source=source[:16],
        change=change,
        data=data,
        secrets_changed=secrets_changed or [],
        restored_from=restored_from,
    )


# --- Reads ------------------------------------------------------------------------------------


def _check_name(job_name: str) -> None:
    if "\x00" in job_name or len(job_name) > 255:
        raise NotFound(f"job {job_name[:255]!r} not found")  # never a name; spare the query


def revision_list(job_name: str) -> QuerySet[JobRevision]:
    """The job's revisions, newest first (a deleted job's too)."""
    return JobRevision.objects.filter(job_name=job_name).order_by("-number")


def revision_get(job_name: str, number: Any) -> JobRevision:
    """One revision; NotFound (404) naming what is missing, for a number that is not one."""
    _check_name(job_name)
    n = _number(number, "revision")
    found = JobRevision.objects.filter(job_name=job_name, number=n).first()
    if found is None:
        if not _has_history(job_name) and not Job.objects.filter(name=job_name).exists():
            raise NotFound(f"job '{job_name}' not found")
        raise NotFound(
            f"revision {n} of job '{job_name}' not found", {"revision": f"no revision {n}"}
        )
    return found


def _number(value: Any, field: str) -> int:
    text = str(value)
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise DomainError(
            f"{field} must be a revision number (1, 2, ...)", {field: "not a revision number"}
        )
    return int(text)


def ensure_known(job_name: str) -> None:
    """NotFound for a name that is neither a job nor the name of a deleted job's history."""
    _check_name(job_name)
    if not Job.objects.filter(name=job_name).exists() and not _has_history(job_name):
        raise NotFound(f"job '{job_name}' not found")


def revision_diff(job_name: str, number: Any, against: Any = None) -> dict[str, Any]:
    """What changed from revision `against` (default: the one before) to `number`, field by
    field: `{"path", "before", "after"}`, nested keys joined with dots (`executor_config.
    command`); lists compare whole. A secret shows only its masks, and `"secret": "changed"`
    when a revision between the two set or replaced it though the masks look the same."""
    revision = revision_get(job_name, number)
    if against is None or against == "":
        base = (
            JobRevision.objects.filter(job_name=job_name, number__lt=revision.number)
            .order_by("-number")
            .first()
        )
    else:
        base = revision_get(job_name, _number(against, "against"))
    before = base.data if base is not None else {}
    changes = _diff(before, revision.data)
    low, high = sorted((base.number if base is not None else 0, revision.number))
    secrets: set[str] = set()
    for paths in JobRevision.objects.filter(
        job_name=job_name, number__gt=low, number__lte=high
    ).values_list("secrets_changed", flat=True):
        secrets.update(paths or [])
    by_path = {c["path"]: c for c in changes}
    for path in sorted(secrets):
        entry = by_path.get(path) or _secret_entry(path, changes, before, revision.data)
        entry["secret"] = SECRET_CHANGED
    return {
        "job_name": job_name,
        "revision": revision.number,
        "against": base.number if base is not None else None,
        "changes": changes,
    }


def _secret_entry(
    path: str, changes: list[dict[str, Any]], before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    """The diff entry of a secret whose masked value did not change (a new password behind the
    same mask); the masked value is read at its path when it is there, else the mask."""
    entry = {
        "path": path,
        "before": _at(before, path, confidential.MASK),
        "after": _at(after, path, confidential.MASK),
    }
    changes.append(entry)
    return entry


def _at(data: dict[str, Any], path: str, default: Any) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


def _diff(before: Any, after: Any, prefix: str = "") -> list[dict[str, Any]]:
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            changes.extend(_diff(before.get(key), after.get(key), path))
        return changes
    if before == after:
        return []
    return [{"path": prefix, "before": before, "after": after}]


# --- Rollback ---------------------------------------------------------------------------------


# Keys of a revision's data that an upsert does not take (the server's own).
_NOT_INPUT = ("id", "problems")


def restore_body(revision: JobRevision) -> dict[str, Any]:
    """The upsert body that brings `revision` back: its data as a client would POST it,
    through the API's own input checks (a revision was a valid job once; the rules may have
    changed since, and then the answer names the field)."""
    data = {k: v for k, v in revision.data.items() if k not in _NOT_INPUT}
    serializer = JobInputSerializer(data=data)
    try:
        serializer.is_valid(raise_exception=True)
    except serializers.ValidationError as exc:
        details = exc.detail if isinstance(exc.detail, dict) else {}
        raise DomainError(
            f"revision {revision.number} cannot be restored: {validation_message(exc)}",
            {k: str(v) for k, v in details.items()},
        ) from None
    return dict(serializer.validated_data)
