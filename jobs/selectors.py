"""Reads: job and execution queries with Dkron's filters, sorting and paging."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import Q, QuerySet, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, StrIndex

from jobs.errors import DomainError
from jobs.models import ACTIVE_STATUSES, Execution, ExecutionStatus, Job

JOB_SORTS = {
    "name": "name",
    "id": "name",
    "displayname": "displayname",
    "schedule": "schedule",
    "success_count": "success_count",
    "error_count": "error_count",
    "last_success": "last_success",
    "last_error": "last_error",
    "next": "next_run",
    "status": "status",
}
EXECUTION_SORTS = {
    "id": "id",
    "started_at": "started_at",
    "finished_at": "finished_at",
    "attempt": "attempt",
    "group": "run_id",
}


# Unique columns need no tie-break; without one PostgreSQL reads a page straight off the
# column's index instead of sorting every row before it (the job list at 100,000 jobs).
UNIQUE_SORTS = {"id", "name"}


def _order(field: str, order: str) -> list[str]:
    desc = order.upper() == "DESC"
    primary = f"-{field}" if desc else field
    tiebreak = "-id" if desc else "id"
    return [primary] if field in UNIQUE_SORTS else [primary, tiebreak]


def _json_text(field: str, key: str) -> Cast:
    """The text of `field`'s `key`, compared as plain text on every backend: on SQLite an
    `exact` lookup on a bare key transform wraps the value in JSON_EXTRACT, which fails
    ("malformed JSON") on any value that is not itself JSON."""
    return Cast(KeyTextTransform(key, field), output_field=TextField())


def _refuse_nul(params: Mapping[str, Any]) -> None:
    """The database cannot compare with NUL characters; such a parameter is a 400."""
    for key in params:
        values = params.getlist(key) if hasattr(params, "getlist") else [params[key]]
        if "\x00" in key or any("\x00" in str(v) for v in values):
            raise DomainError("query parameters must not contain NUL characters", {key: "NUL"})


def job_list(params: Mapping[str, Any]) -> QuerySet[Job]:
    """Dkron's GET /v1/jobs filters: metadata[k]=v (AND), q, status, disabled, _sort/_order."""
    _refuse_nul(params)
    qs = Job.objects.all()
    n = 0
    for key in params:
        if key.startswith("metadata[") and key.endswith("]"):
            name = key[len("metadata[") : -1]
            for value in params.getlist(key) if hasattr(params, "getlist") else [params[key]]:
                # A key transform, not a `metadata__<key>` lookup: a key may contain "__".
                n += 1
                alias = f"meta_{n}"
                qs = qs.alias(**{alias: _json_text("metadata", name)})
                qs = qs.filter(**{alias: value})
    q = params.get("q")
    if q:
        # Dkron's q is a case-sensitive substring (strings.Contains). `__contains` is LIKE,
        # which SQLite folds to case-insensitive; INSTR / STRPOS compare exactly on both.
        qs = qs.alias(
            q_name=StrIndex("name", Value(q)), q_display=StrIndex("displayname", Value(q))
        )
        qs = qs.filter(Q(q_name__gt=0) | Q(q_display__gt=0))
    status = params.get("status")
    if status:
        if status not in {"success", "failed", "partially_failed", "untriggered", "running"}:
            raise DomainError(
                "status must be success, failed, partially_failed, running or untriggered"
            )
        qs = qs.filter(status="" if status == "untriggered" else status)
    disabled = params.get("disabled")
    if disabled not in (None, ""):
        if disabled not in {"true", "false"}:
            raise DomainError("disabled must be true or false")
        qs = qs.filter(disabled=disabled == "true")
    executor = params.get("executor")
    if executor:
        qs = qs.filter(executor=executor)
    sort = params.get("_sort") or "name"
    if sort not in JOB_SORTS:
        raise DomainError(f"cannot sort by '{sort}'; use one of {', '.join(sorted(JOB_SORTS))}")
    return qs.order_by(*_order(JOB_SORTS[sort], params.get("_order", "ASC")))


def job_page(qs: QuerySet[Job], start: int | None, end: int | None) -> list[Job]:
    """The jobs of one page with their parent and dependents.

    The page is cut from the bare, ordered query (ids only, no join), then its rows are read
    by id: OFFSET walks only an index, and the joins touch only the page's rows.
    """
    if start is None:
        ids = None
        rows = qs
    else:
        ids = list(qs.values_list("id", flat=True)[start:end])
        rows = Job.objects.filter(pk__in=ids)
    rows = rows.select_related("parent").prefetch_related("dependents")
    if ids is None:
        return list(rows)
    by_id = {job.pk: job for job in rows}
    return [by_id[pk] for pk in ids if pk in by_id]


def page_bounds(params: Mapping[str, Any], total: int) -> tuple[int, int]:
    """react-admin's _start/_end slice ([start, end)), clamped; bad numbers are a 400."""
    try:
        start = int(params.get("_start") or 0)
        end = int(params.get("_end") or total)
    except ValueError:
        raise DomainError("_start and _end must be integers") from None
    if start < 0 or end < 0:
        raise DomainError("_start and _end must not be negative")
    return start, max(start, min(end, total))


def execution_list(job: Job, params: Mapping[str, Any]) -> QuerySet[Execution]:
    sort = params.get("_sort") or "id"
    if sort not in EXECUTION_SORTS:
        raise DomainError(f"cannot sort executions by '{sort}'")
    return Execution.objects.filter(job=job).order_by(
        *_order(EXECUTION_SORTS[sort], params.get("_order", "DESC"))
    )


def running_executions() -> QuerySet[Execution]:
    return Execution.objects.filter(status=ExecutionStatus.RUNNING).order_by("started_at")


def active_executions() -> QuerySet[Execution]:
    return Execution.objects.filter(status__in=ACTIVE_STATUSES)


def job_tag_filter(qs: QuerySet[Job], tags: Iterable[tuple[str, str]]) -> QuerySet[Job]:
    """Jobs whose targeting tags ask for `key` = `value` (stored as "value" or "value:count"),
    every pair matching; an empty value matches any job that has the key."""
    for n, (key, value) in enumerate(tags, 1):
        if value == "":
            qs = qs.filter(tags__has_key=key)
            continue
        alias = f"tag_{n}"
        # Exact prefix test (INSTR/STRPOS = 1): LIKE would fold case on SQLite.
        qs = qs.alias(**{alias: _json_text("tags", key)})
        qs = qs.alias(**{f"{alias}_at": StrIndex(alias, Value(f"{value}:"))})
        qs = qs.filter(Q(**{alias: value}) | Q(**{f"{alias}_at": 1}))
    return qs
