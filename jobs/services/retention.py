"""Retention: delete finished executions past the global age limit or their job's history_limit.

Run by the `dkronweb.retention` periodic task (hourly by default; a django-celery-beat row
that the scheduler creates at start, so operators can change or disable it in the admin).

Cheap at millions of rows:
1. old rows are found oldest first through the partial index on `finished_at` (queued and
   running rows have none, so they are not even in it), `RETENTION_BATCH` ids at a time;
2. each batch is one DELETE by primary key in its own short transaction, so locks are brief
   and an interrupted run keeps what it did;
3. runs whose executions are all gone are deleted with the batch (found by the batch's run
   ids, never by scanning the run table);
4. the loop stops when nothing is left or after `RETENTION_TIME_BUDGET` seconds; the next
   run carries on.
Queued and running executions are never deleted, whatever their age or their job's limit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet, Value
from django.db.models.functions import Coalesce
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from jobs import timeutil
from jobs.models import ACTIVE_STATUSES, Execution, Job, Run

log = logging.getLogger("dkronweb.retention")

TASK_NAME = "dkronweb.retention"
PERIODIC_TASK_NAME = "dkronweb: retention (history age and limits)"
# Hourly at minute 17: away from the top of the hour, when cron jobs crowd.
CRONTAB = {"minute": "17", "hour": "*", "day_of_week": "*", "day_of_month": "*"}


@dataclass
class RetentionReport:
    expired: int = 0  # executions older than HISTORY_MAX_AGE
    trimmed: int = 0  # executions beyond their job's history_limit
    runs: int = 0  # runs left without executions
    jobs_trimmed: int = 0
    complete: bool = True  # False when the time budget ran out first


def retention_apply(
    *,
    max_age: float | None = None,
    batch: int | None = None,
    budget: float | None = None,
) -> RetentionReport:
    """Apply the age limit, then each over-limit job's history_limit (settings by default)."""
    conf = settings.DKRON
    max_age = conf["HISTORY_MAX_AGE"] if max_age is None else max_age
    batch = max(1, conf["RETENTION_BATCH"] if batch is None else batch)
    budget = conf["RETENTION_TIME_BUDGET"] if budget is None else budget
    deadline = time.monotonic() + budget
    report = RetentionReport()
    if max_age > 0:
        cutoff = timeutil.now() - timedelta(seconds=max_age)
        expired = Execution.objects.filter(finished_at__lt=cutoff)
        report.expired = _delete_in_batches(expired, "finished_at", batch, deadline, report)
    for job_id, limit in _jobs_over_limit():
        if not report.complete:
            break
        trimmed = _trim_job(job_id, limit, batch, deadline, report)
        report.trimmed += trimmed
        report.jobs_trimmed += bool(trimmed)
    if report.expired or report.trimmed or not report.complete:
        log.info(
            "retention deleted %d expired execution(s), %d beyond the history_limit of %d "
            "job(s) and %d emptied run(s)%s",
            report.expired,
            report.trimmed,
            report.jobs_trimmed,
            report.runs,
            "" if report.complete else "; time budget used, the next run continues",
        )
    return report


def _jobs_over_limit() -> list[tuple[int, int]]:
    """(job id, limit) of jobs holding more executions than their history_limit.

    One aggregate over the executions' job index per retention run. The per-run trimming in
    `run_settle` keeps active jobs near their limit; this catches the others (a lowered limit,
    a job that stopped running).
    """
    default = int(settings.DKRON["HISTORY_LIMIT"])
    rows = (
        Job.objects.annotate(n=Count("executions"), limit=Coalesce("history_limit", Value(default)))
        .filter(n__gt=Coalesce("history_limit", Value(default)))
        .order_by("pk")
        .values_list("pk", "limit")
    )
    return [(pk, int(limit)) for pk, limit in rows]


def _trim_job(job_id: int, limit: int, batch: int, deadline: float, report: RetentionReport) -> int:
    """Delete the job's finished executions older than its `limit` newest (as trim_history)."""
    newest = Execution.objects.filter(job_id=job_id).order_by("-id").values_list("id", flat=True)
    boundary = list(newest[limit : limit + 1])
    if not boundary:
        return 0
    older = Execution.objects.filter(job_id=job_id, id__lte=boundary[0])
    return _delete_in_batches(older, "id", batch, deadline, report)


def _delete_in_batches(
    rows: QuerySet[Execution], key: str, batch: int, deadline: float, report: RetentionReport
) -> int:
    """Delete the finished rows of `rows` in `key` order, `batch` ids per DELETE.

    Each batch starts where the last one ended (`key` >= its last value) rather than at the
    start of the index again, which after a large delete is full of dead entries.
    """
    rows = rows.exclude(status__in=ACTIVE_STATUSES).order_by(key)
    deleted = 0
    position = None
    while True:
        if time.monotonic() >= deadline:
            report.complete = False
            return deleted
        page = rows if position is None else rows.filter(**{f"{key}__gte": position})
        found = list(page.values_list("id", "run_id", key)[:batch])
        if not found:
            return deleted
        with transaction.atomic():
            # The status guard again: a row is never deleted if it became active meanwhile.
            n, _ = (
                Execution.objects.filter(id__in=[pk for pk, _, _ in found])
                .exclude(status__in=ACTIVE_STATUSES)
                .delete()
            )
            report.runs += _delete_empty_runs({run_id for _, run_id, _ in found})
        deleted += n
        position = found[-1][2]
        if len(found) < batch:
            return deleted


def _delete_empty_runs(run_ids: set[int]) -> int:
    """Delete those finished runs that have no execution left.

    A raw delete (one statement): the rows have no executions (checked in the same
    statement), so Django's collector, which would load every run and issue a cascade DELETE
    on executions for each hundred, has nothing to do.
    """
    empty = Run.objects.filter(pk__in=run_ids, finished=True).filter(
        ~Exists(Execution.objects.filter(run_id=OuterRef("pk")))
    )
    return int(empty._raw_delete(empty.db))


def retention_schedule_ensure() -> tuple[PeriodicTask, bool]:
    """Create the retention periodic task unless it exists; True when created now.

    Keyed by name and never updated: an operator's changes in the admin (schedule, enabled)
    survive restarts. A deleted task comes back at the next scheduler start; disable it to
    stop it. Two schedulers starting together may both create the crontab row (it has no
    unique key), which is harmless; the task's unique name lets only one task in.
    """
    crontab = CrontabSchedule.objects.filter(**CRONTAB, timezone="UTC").order_by("pk").first()
    if crontab is None:
        crontab = CrontabSchedule.objects.create(**CRONTAB, timezone="UTC")
    return PeriodicTask.objects.get_or_create(
        name=PERIODIC_TASK_NAME,
        defaults={
            "task": TASK_NAME,
            "crontab": crontab,
            "description": (
                "Deletes finished executions older than DKRON_HISTORY_MAX_AGE and beyond each "
                "job's history_limit, in batches (jobs.services.retention)."
            ),
        },
    )
