"""Reads: job and execution queries with Dkron's filters, sorting and paging.

The filters come typed (`JobFilters`, `ExecutionFilters`): the web layer parses requests
(web/filters.py), so a selector never sees a raw parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import F, Q, QuerySet, TextField, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, StrIndex

from jobs.models import ACTIVE_STATUSES, Alert, Execution, ExecutionStatus, Job

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


def _order(column: str, descending: bool) -> list[str]:
    primary = f"-{column}" if descending else column
    tiebreak = "-id" if descending else "id"
    return [primary] if column in UNIQUE_SORTS else [primary, tiebreak]


def _json_text(field: str, key: str) -> Cast:
    """The text of `field`'s `key`, compared as plain text on every backend: on SQLite an
    `exact` lookup on a bare key transform wraps the value in JSON_EXTRACT, which fails
    ("malformed JSON") on any value that is not itself JSON."""
    return Cast(KeyTextTransform(key, field), output_field=TextField())


@dataclass(frozen=True)
class JobFilters:
    """Dkron's GET /v1/jobs filters, parsed (web.filters.JobListFilter)."""

    metadata: list[tuple[str, str]] = field(default_factory=list)  # every pair must match
    q: str = ""  # a case-sensitive substring of the name or the displayname
    status: str | None = None  # a JobStatus value ("" for untriggered); None: any
    disabled: bool | None = None
    executor: str = ""
    sort: str = "name"  # a key of JOB_SORTS
    descending: bool = False


@dataclass(frozen=True)
class PageSlice:
    """react-admin's `_start`/`_end` ([start, end)); `end` None means to the last row."""

    start: int = 0
    end: int | None = None
    given: bool = False  # whether the request asked for a slice at all


@dataclass(frozen=True)
class ExecutionFilters:
    """GET /v1/jobs/{name}/executions, parsed (web.filters.ExecutionListFilter)."""

    sort: str = "id"  # a key of EXECUTION_SORTS
    descending: bool = True
    group: int | None = None  # the run (Dkron's group)
    page: PageSlice = PageSlice()
    output_limit: int | None = None  # keep the last N bytes of each output


def job_list(filters: JobFilters) -> QuerySet[Job]:
    """The jobs matching `filters`, in their order."""
    qs = Job.objects.all()
    for n, (name, value) in enumerate(filters.metadata, 1):
        # A key transform, not a `metadata__<key>` lookup: a key may contain "__".
        alias = f"meta_{n}"
        qs = qs.alias(**{alias: _json_text("metadata", name)})
        qs = qs.filter(**{alias: value})
    if filters.q:
        # Dkron's q is a case-sensitive substring (strings.Contains). `__contains` is LIKE,
        # which SQLite folds to case-insensitive; INSTR / STRPOS compare exactly on both.
        q = Value(filters.q)
        qs = qs.alias(q_name=StrIndex("name", q), q_display=StrIndex("displayname", q))
        qs = qs.filter(Q(q_name__gt=0) | Q(q_display__gt=0))
    if filters.status is not None:
        qs = qs.filter(status=filters.status)
    if filters.disabled is not None:
        qs = qs.filter(disabled=filters.disabled)
    if filters.executor:
        qs = qs.filter(executor=filters.executor)
    return qs.order_by(*_order(JOB_SORTS[filters.sort], filters.descending))


# What job_page sets on each job it answers, read by the wire format (jobs.wire) instead of
# `job.parent` and `job.dependents`: a name is all it shows of either.
PARENT_NAME = "parent_name"
DEPENDENT_NAMES = "dependent_names"


def job_page(
    qs: QuerySet[Job], start: int | None, end: int | None, *, total: int | None = None
) -> list[Job]:
    """The jobs of one page with their parent's and dependents' names (PARENT_NAME,
    DEPENDENT_NAMES).

    The page is cut from the bare, ordered query (ids only, no join), then its rows are read
    by id: OFFSET walks only an index, and the joins touch only the page's rows. Given `total`
    (the count of `qs`), a page nearer the end is cut from the reversed order, counting from
    the end: OFFSET then walks at most half the rows, and PostgreSQL keeps to the index (past
    about three quarters of 100,000 jobs it sorted the whole table instead, 50 ms a page).
    """
    if start is None:
        return _with_family(list(qs.annotate(**{PARENT_NAME: F("parent__name")})))
    if end is not None and start >= end:
        return []
    if total is not None and end is not None and end <= total and total - end < start:
        ids = list(qs.reverse().values_list("id", flat=True)[total - end : total - start])
        ids.reverse()
    else:
        ids = list(qs.values_list("id", flat=True)[start:end])
    rows = Job.objects.filter(pk__in=ids).order_by().annotate(**{PARENT_NAME: F("parent__name")})
    by_id = {job.pk: job for job in rows}
    return _with_family([by_id[pk] for pk in ids if pk in by_id])


def _with_family(jobs: list[Job]) -> list[Job]:
    """`jobs`, each given the names of its dependents (by name) in one query of names."""
    names: dict[int, list[str]] = {job.pk: [] for job in jobs}
    if names:
        # A page's ids as parameters; a long list's children all (no query has 100,000 ids).
        children = Job.objects.filter(parent__isnull=False)
        if len(names) <= 500:
            children = children.filter(parent_id__in=list(names))
        for parent_id, name in children.order_by("name").values_list("parent_id", "name"):
            if parent_id in names:
                names[parent_id].append(name)
    for job in jobs:
        setattr(job, DEPENDENT_NAMES, names[job.pk])
    return jobs


def page_bounds(page: PageSlice, total: int) -> tuple[int, int]:
    """The slice's [start, end), clamped to `total` rows."""
    end = total if page.end is None else page.end
    return page.start, max(page.start, min(end, total))


# The run's parameters on each execution of a list (jobs.wire.execution_params): one key of
# the run's snapshot, read in the same query, not the whole snapshot per row.
RUN_PARAMS = "run_params"
# And the job revision the run ran (jobs.wire.execution_revision), from the same join.
RUN_REVISION = "run_revision"


def with_run_params(qs: QuerySet[Execution]) -> QuerySet[Execution]:
    return qs.annotate(
        **{RUN_PARAMS: KeyTransform("params", "run__snapshot"), RUN_REVISION: F("run__revision")}
    )


def execution_list(job: Job, filters: ExecutionFilters) -> QuerySet[Execution]:
    """The job's executions matching `filters` (all of them: the caller slices the page)."""
    qs = Execution.objects.filter(job=job)
    if filters.group is not None:
        qs = qs.filter(run_id=filters.group)
    return with_run_params(qs).order_by(*_order(EXECUTION_SORTS[filters.sort], filters.descending))


def running_executions() -> QuerySet[Execution]:
    qs = Execution.objects.filter(status=ExecutionStatus.RUNNING)
    return with_run_params(qs).order_by("started_at")


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


def alert_list(*, job: str = "", state: str = "", kind: str = "") -> QuerySet[Alert]:
    """SLA alerts (jobs.services.sla), newest first, filtered by job name, state and kind:
    by `alert_job_idx` for one job, `alert_open_idx` for the open ones."""
    qs = Alert.objects.all()
    if job:
        qs = qs.filter(job__name=job)
    if state:
        qs = qs.filter(state=state)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-pk")
