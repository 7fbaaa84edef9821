"""Starting runs: scheduled fires (exactly once per fire key), run now, dependents, retries.

A run is one `Run` row (Dkron's execution group) plus one `queued` execution per target node;
the Celery message for each execution is published after the transaction commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from executors.registry import get_executor
from jobs import dispatch, timeutil
from jobs.errors import Conflict
from jobs.models import ACTIVE_STATUSES, Concurrency, Execution, ExecutionStatus, Job, Run
from jobs.services import agents as agent_services
from jobs.services.jobs import compute_next_run, parse_job_schedule
from jobs.targeting import parse_tags, select_nodes

log = logging.getLogger("dkronweb.runs")

# Missed fires counted (and caught up) per job and tick at most.
MAX_COUNTED = 10_000

SNAPSHOT_FIELDS = ("executor", "executor_config", "retries", "retry_backoff", "concurrency", "tags")


def snapshot_of(job: Job) -> dict[str, Any]:
    snap: dict[str, Any] = {f: getattr(job, f) for f in SNAPSHOT_FIELDS}
    snap["processors"] = job.processors
    try:
        executor = get_executor(job.executor)
        timeout = executor.timeout_seconds(executor.validate(job.executor_config))
    except Exception:
        timeout = None  # the agent reports the config error as the run's failure
    snap["timeout_seconds"] = timeout
    return snap


def has_active_run(job: Job) -> bool:
    """Forbid's test, answered by the database: queued, running or waiting for a retry."""
    return Execution.objects.filter(job=job, status__in=ACTIVE_STATUSES).exists()


def _record_execution(
    run: Run, job: Job, *, node: str, status: str, reason: str = "", placement: str = "node"
) -> Execution:
    now = timeutil.now()
    finished = status not in ACTIVE_STATUSES
    if status == ExecutionStatus.FAILED:  # counted like any failed execution record
        Job.objects.filter(pk=job.pk).update(error_count=F("error_count") + 1, last_error=now)
    return Execution.objects.create(
        run=run,
        job=job,
        job_name=job.name,
        node_name=node,
        placement=placement,
        queue=dispatch.node_queue(node) if node else "",
        scheduled_at=run.scheduled_at,
        status=status,
        reason=reason,
        output=reason + ("\n" if reason else ""),
        started_at=now if finished else None,
        finished_at=now if finished else None,
        final=finished,
    )


def _start(job: Job, *, scheduled_at: datetime | None, trigger: str) -> Run | None:
    """Create the run and its executions; None when this fire key already exists."""
    from jobs.services import executions as execution_services

    try:
        with transaction.atomic():
            run = Run.objects.create(
                job=job, scheduled_at=scheduled_at, trigger=trigger, snapshot=snapshot_of(job)
            )
    except IntegrityError:
        return None  # another scheduler (or an earlier tick) fired this key already
    if trigger != Run.Trigger.MANUAL or job.concurrency == Concurrency.REPLACE:
        active = has_active_run(job)
        if active and job.concurrency == Concurrency.FORBID:
            _record_execution(
                run,
                job,
                node="",
                status=ExecutionStatus.SKIPPED,
                reason="skipped: concurrency is forbid and the previous run is still going",
            )
            execution_services.run_settle(run_id=run.pk)
            return run
        if active and job.concurrency == Concurrency.REPLACE:
            for execution in Execution.objects.filter(job=job, status__in=ACTIVE_STATUSES):
                if execution.run_id != run.pk:
                    execution_services.execution_kill(execution=execution, reason="replaced")
    target = parse_tags(job.tags)
    nodes = select_nodes(
        target,
        agent_services.alive_nodes(),
        untagged_default=settings.DKRON["UNTAGGED_TARGET"],
    )
    if not nodes:
        wanted = ", ".join(f"{k}={v}" for k, v in target.required.items()) or "any"
        _record_execution(
            run,
            job,
            node="",
            status=ExecutionStatus.FAILED,
            reason=f"no target nodes found to run job {job.name} (tags: {wanted})",
        )
        execution_services.run_settle(run_id=run.pk)
        return run
    placement = "any" if target.count is not None else "node"
    for node in nodes:
        execution = _record_execution(
            run, job, node=node.name, status=ExecutionStatus.QUEUED, placement=placement
        )
        dispatch.publish_on_commit(execution)
    if job.status != "running":
        Job.objects.filter(pk=job.pk).update(status="running")
    return run


@transaction.atomic
def run_now(*, job: Job, force: bool = False) -> Run:
    """Run a job at once, whatever its schedule or `disabled`; forbid answers 409 unless forced."""
    if job.concurrency == Concurrency.FORBID and not force and has_active_run(job):
        raise Conflict(
            f"job '{job.name}' is still running and its concurrency is forbid; "
            "use ?force=true to run it anyway"
        )
    run = _start(job, scheduled_at=None, trigger=Run.Trigger.MANUAL)
    assert run is not None  # manual runs have no fire key, so they never collide
    return run


def fire_dependents(*, job: Job) -> None:
    for child in Job.objects.filter(parent=job):
        with transaction.atomic():
            _start(child, scheduled_at=None, trigger=Run.Trigger.PARENT)


@dataclass
class FireReport:
    fired: int = 0
    missed: int = 0
    skipped_keys: int = 0
    runs: list[int] = field(default_factory=list)


def _plan(job: Job, now: datetime) -> tuple[list[tuple[datetime, str]], int, datetime | None]:
    """Decide which fire times of a due job run now, how many are missed, and the next time.

    1. A fire late by less than the grace period always runs (failover, broker restart).
    2. Later than that it is a misfire: `skip` drops it, `run_once` runs the latest missed
       time inside the catch-up window, `run_all` runs each of them oldest first.
    3. Fire times outside starts_at/expires_at never run and are not misfires.
    """
    due = job.next_run
    times: list[tuple[datetime, str]]
    assert due is not None
    schedule = parse_job_schedule(job)
    grace = timedelta(seconds=settings.DKRON["MISFIRE_GRACE"])
    if schedule is None or schedule.kind == "manual":
        return [], 0, None
    if now - due <= grace:
        times, missed = [(due, Run.Trigger.SCHEDULE)], 0
        upto = due
    else:
        # Late fire times, split at the catch-up window. Both lists are bounded (MAX_COUNTED)
        # so a per-second job that was down for days costs no more than a few ms here.
        window_start = max(due, now - timedelta(seconds=job.catchup_window))
        head = [
            due,
            *schedule.fires_between(due, window_start, anchor=job.anchor, limit=MAX_COUNTED),
        ]
        before = [t for t in head if t < window_start]
        catchable = [t for t in head if t >= window_start]
        catchable += schedule.fires_between(
            window_start, now - grace, anchor=job.anchor, limit=MAX_COUNTED
        )
        recent = schedule.fires_between(now - grace, now, anchor=job.anchor)
        if job.misfire_policy == "run_all":
            chosen = catchable
        elif job.misfire_policy == "run_once":
            chosen = catchable[-1:]
        else:
            chosen = []
        missed = len(before) + len(catchable) - len(chosen)
        times = [(t, Run.Trigger.CATCHUP) for t in chosen]
        times += [(t, Run.Trigger.SCHEDULE) for t in recent]
        upto = now
    times = [
        (t, trig)
        for t, trig in times
        if not (job.starts_at and t < job.starts_at) and not (job.expires_at and t > job.expires_at)
    ]
    if schedule.kind == "at":
        return times, missed, None
    next_run = schedule.next_after(upto, anchor=job.anchor)
    if next_run is not None and job.expires_at and next_run > job.expires_at:
        next_run = None
    return times, missed, next_run


def fire_due_jobs(*, now: datetime | None = None, limit: int | None = None) -> FireReport:
    """Fire every enabled job whose next_run has come; the per-tick cost follows due jobs only.

    Advancing `next_run` is a conditional update on its old value, and each fire is a unique
    (job, scheduled_at) row, so two schedulers running this at once fire each key once.
    """
    now = now or timeutil.now()
    limit = limit or settings.DKRON["FIRE_BATCH"]
    report = FireReport()
    due = list(
        Job.objects.filter(disabled=False, next_run__isnull=False, next_run__lte=now).order_by(
            "next_run"
        )[:limit]
    )
    for job in due:
        try:
            times, missed, next_run = _plan(job, now)
        except Exception:
            log.exception("job %s: cannot compute its schedule; not firing it", job.name)
            Job.objects.filter(pk=job.pk, next_run=job.next_run).update(next_run=None)
            continue
        with transaction.atomic():
            claimed = Job.objects.filter(pk=job.pk, next_run=job.next_run).update(
                next_run=next_run, missed_count=F("missed_count") + missed
            )
            if not claimed:
                report.skipped_keys += 1
                continue
            report.missed += missed
            for scheduled_at, trigger in times:
                run = _start(job, scheduled_at=scheduled_at, trigger=trigger)
                if run is None:
                    report.skipped_keys += 1
                else:
                    report.fired += 1
                    report.runs.append(run.pk)
    return report


def seconds_until_next_due(*, now: datetime | None = None) -> float | None:
    now = now or timeutil.now()
    nxt = (
        Job.objects.filter(disabled=False, next_run__isnull=False)
        .order_by("next_run")
        .values_list("next_run", flat=True)
        .first()
    )
    if nxt is None:
        return None
    return max(0.0, (nxt - now).total_seconds())


def job_refresh_next(*, job: Job) -> None:
    """Recompute next_run from now (used after a run of an @at job, or an admin repair)."""
    Job.objects.filter(pk=job.pk).update(next_run=compute_next_run(job, after=timeutil.now()))
