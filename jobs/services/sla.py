"""The SLA check (issue 17): open an alert when a job breaks one of its `sla` rules (jobs.sla),
resolve it when the breach clears, and tell the job's notification channels once each time.

The scheduler leader calls `check` every CHECK_EVERY seconds (scheduler.beat). Its cost
follows the jobs that have rules and the alerts that are open, never the history:

1. open alerts, a rotating batch of OPEN_BATCH by the partial index `alert_open_idx`: each
   is resolved when its breach cleared (its run started, its execution ended, a success
   came) or its rule was removed; the lookups are one query per kind, by primary key or by
   the run's executions;
2. jobs with rules, a rotating batch of JOB_BATCH by the partial index `job_sla_idx` (jobs
   without rules are not read at all): `late` and `overdue` read the batch's active
   executions through `exec_job_active_idx`, at most NEW_PER_CHECK of each; `no_success`
   reads the job row; `failing` reads the job's last N runs (`run_job_idx`), only when the
   job's latest execution failed and that failure was not looked at already.

Exactly once, with two schedulers too: an alert opens by an INSERT that the partial unique
index `alert_open_unique` (job, kind, subject WHERE state = 'open') lets only one writer make,
and resolves by `UPDATE ... WHERE state = 'open'` whose row count says who flipped it. Only
the transaction that wrote the row sends the notification, after its commit; the scheduler
sends it in a background thread, so a slow webhook never delays firing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import CharField, Q, QuerySet
from django.db.models.expressions import RawSQL

from jobs import sla as job_sla
from jobs import timeutil
from jobs.models import (
    ACTIVE_STATUSES,
    Alert,
    AlertKind,
    AlertState,
    Execution,
    ExecutionStatus,
    Job,
    Run,
)
from jobs.services import counters
from jobs.services.audit import SYSTEM
from jobs.services.executions import execution_kill
from jobs.services.notifications import notify_alert

log = logging.getLogger("dkronweb.sla")

CHECK_EVERY = 1.0  # seconds between two checks of the leader
JOB_BATCH = 500
OPEN_BATCH = 500
NEW_PER_CHECK = 500  # late runs and overdue executions looked at per check
RECOVERED = "recovered"
FAILED_RUN_STATUSES = ("failed", "partially_failed")

# How a notification leaves once its alert's change committed: (alert id, event).
Deliver = Callable[[int, str], None]


@dataclass
class CheckReport:
    opened: int = 0
    resolved: int = 0
    killed: int = 0
    active: bool = False  # jobs with rules or open alerts exist: check again soon


@dataclass
class _Cursor:
    """Where the rotating batches go on (process-local: a new leader starts from the top)."""

    jobs: int = 0
    alerts: int = 0


_cursor = _Cursor()
# job id -> the last_error already judged for `failing`, so a job that keeps failing below
# its threshold costs its runs' query once per failure, not once per check.
_failing_seen: dict[int, datetime | None] = {}


# --- delivering -------------------------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def in_background(alert_id: int, event: str) -> None:
    """The scheduler's way: a small pool of threads, so a slow webhook never delays a tick."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dkronweb-alerts")
    _pool.submit(_with_own_connection, alert_id, event)


def _with_own_connection(alert_id: int, event: str) -> None:
    try:
        deliver_now(alert_id, event)
    finally:
        connection.close()  # a pool thread's own: alerts are rare, keep no idle session


def deliver_now(alert_id: int, event: str) -> None:
    """Send at once, in this thread (tests, and the pool's threads)."""
    try:
        notify_alert(alert_id=alert_id, event=event)
    except Exception:  # a notification never breaks the check
        log.exception("alert %s: its %s notification failed", alert_id, event)


def _send(alert_id: int, event: str, deliver: Deliver) -> None:
    transaction.on_commit(lambda: deliver(alert_id, event))


# --- the check --------------------------------------------------------------------------------


def check(*, now: datetime | None = None, deliver: Deliver | None = None) -> CheckReport:
    """One pass: resolve what cleared, then open what breached (see the module doc).

    `deliver(alert_id, event)` sends a notification after its commit: by default in a
    background thread (`in_background`); `deliver_now` sends in this one."""
    now = now or timeutil.now()
    deliver = in_background if deliver is None else deliver
    report = CheckReport()
    _resolve_cleared(now, report, deliver)
    _open_breaches(now, report, deliver)
    return report


def _ago(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _open(
    *,
    job: dict[str, Any],
    kind: str,
    subject: str,
    detail: dict[str, Any],
    now: datetime,
    deliver: Deliver,
) -> bool:
    """Insert the open alert; False when one is open already (another check won)."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                job_id=job["id"],
                job_name=job["name"],
                kind=kind,
                subject=subject,
                detail=detail,
                opened_at=now,
            )
            counters.counter_add(f"alerts:{kind}")
            _send(alert.pk, kind, deliver)
    except IntegrityError:
        return False
    log.warning("job %s: SLA alert %s opened %s", job["name"], kind, subject)
    return True


def _resolve(alert: Alert, why: str, now: datetime, deliver: Deliver) -> bool:
    with transaction.atomic():
        done = Alert.objects.filter(pk=alert.pk, state=AlertState.OPEN).update(
            state=AlertState.RESOLVED,
            resolved_at=now,
            detail={**(alert.detail or {}), "resolution": why},
        )
        if done:
            _send(alert.pk, RECOVERED, deliver)
    if done:
        log.info("job %s: SLA alert %s resolved: %s", alert.job_name, alert.kind, why)
    return bool(done)


def _subject_id(subject: str) -> int | None:
    _, _, number = subject.partition(" ")
    return int(number) if number.isdigit() else None


def _hidden(status: str) -> RawSQL:
    """A status compared as `(SELECT %s)`, a value the planner sees only when the statement
    runs: it cannot pick exec_active_idx (status, node_name), which statistics taken before a
    burst cost as one row and which holds the whole backlog, over the run's or the primary
    key's index (as jobs.services.maintenance._queued)."""
    return RawSQL("SELECT %s", (status,), output_field=CharField())


def _subject_ids(alerts: list[Alert]) -> set[int]:
    return {n for a in alerts if (n := _subject_id(a.subject)) is not None}


def _resolve_cleared(now: datetime, report: CheckReport, deliver: Deliver) -> None:
    alerts = list(
        Alert.objects.filter(state=AlertState.OPEN, pk__gt=_cursor.alerts).order_by("pk")[
            :OPEN_BATCH
        ]
    )
    _cursor.alerts = alerts[-1].pk if len(alerts) == OPEN_BATCH else 0
    if not alerts:
        return
    report.active = True
    jobs: dict[int, dict[str, Any]] = {
        row["id"]: dict(row)
        for row in Job.objects.filter(pk__in={a.job_id for a in alerts}).values(
            "id", "sla", "last_success", "created_at"
        )
    }
    by_kind: dict[str, list[Alert]] = {}
    for alert in alerts:
        by_kind.setdefault(alert.kind, []).append(alert)
    late_runs = _subject_ids(by_kind.get(AlertKind.LATE, []))
    still_late = set(
        Execution.objects.filter(run_id__in=late_runs, status=_hidden(ExecutionStatus.QUEUED))
        .order_by()
        .values_list("run_id", flat=True)
    )
    running = _subject_ids(by_kind.get(AlertKind.OVERDUE, []))
    still_running = set(
        Execution.objects.filter(pk__in=running, status=_hidden(ExecutionStatus.RUNNING))
        .order_by()
        .values_list("pk", flat=True)
    )
    for alert in alerts:
        job = jobs.get(alert.job_id)
        if job is None:
            continue  # deleted meanwhile: the alert went with it
        why = _cleared(alert, job, now, still_late=still_late, still_running=still_running)
        if why and _resolve(alert, why, now, deliver):
            report.resolved += 1


def _cleared(
    alert: Alert,
    job: dict[str, Any],
    now: datetime,
    *,
    still_late: set[int],
    still_running: set[int],
) -> str:
    """Why the alert's breach is over ("" while it lasts)."""
    rules = job_sla.safe_parse(job["sla"])
    last_success = job["last_success"]
    if alert.kind == AlertKind.LATE:
        if rules.start_within is None:
            return "the start_within rule was removed"
        if _subject_id(alert.subject) not in still_late:
            return "the run started (or ended)"
    elif alert.kind == AlertKind.OVERDUE:
        if rules.max_duration is None:
            return "the max_duration rule was removed"
        if _subject_id(alert.subject) not in still_running:
            return "the execution ended"
    elif alert.kind == AlertKind.NO_SUCCESS:
        if rules.success_within is None:
            return "the success_within rule was removed"
        if last_success is not None and last_success >= _ago(now, rules.success_within):
            return "the job succeeded"
    elif alert.kind == AlertKind.FAILING:
        if rules.consecutive_failures is None:
            return "the consecutive_failures rule was removed"
        # The next success: after the failure that opened it (the check's clock may run
        # ahead of the agents' by a little; their own times are compared).
        failed = alert.detail.get("last_error") if isinstance(alert.detail, dict) else None
        since = datetime.fromisoformat(failed) if isinstance(failed, str) else alert.opened_at
        if last_success is not None and last_success > since:
            return "the job succeeded"
    return ""


def _open_breaches(now: datetime, report: CheckReport, deliver: Deliver) -> None:
    jobs: list[dict[str, Any]] = [
        dict(row)
        for row in Job.objects.filter(has_sla=True, pk__gt=_cursor.jobs)
        .order_by("pk")
        .values("id", "name", "sla", "disabled", "last_success", "last_error", "created_at")[
            :JOB_BATCH
        ]
    ]
    _cursor.jobs = jobs[-1]["id"] if len(jobs) == JOB_BATCH else 0
    if not jobs:
        return
    report.active = True
    rules = {job["id"]: job_sla.safe_parse(job["sla"]) for job in jobs}
    by_id = {job["id"]: job for job in jobs}
    open_now = set(
        Alert.objects.filter(state=AlertState.OPEN, job_id__in=list(by_id))
        .order_by()
        .values_list("job_id", "kind", "subject")
    )

    def opened(job: dict[str, Any], kind: str, subject: str, detail: dict[str, Any]) -> None:
        if (job["id"], kind, subject) in open_now:
            return
        if _open(job=job, kind=kind, subject=subject, detail=detail, now=now, deliver=deliver):
            report.opened += 1
            open_now.add((job["id"], kind, subject))

    _late(now, by_id, rules, opened)
    report.killed += _overdue(now, by_id, rules, opened)
    for job in jobs:
        rule = rules[job["id"]]
        if rule.success_within is not None and not job["disabled"]:
            since = job["last_success"] or job["created_at"]
            if since < _ago(now, rule.success_within):
                opened(
                    job,
                    AlertKind.NO_SUCCESS,
                    "",
                    {
                        "last_success": _iso(job["last_success"]),
                        "success_within": job["sla"].get("success_within"),
                    },
                )
        if rule.consecutive_failures is not None:
            _failing(job, rule.consecutive_failures, open_now, opened)


def _by_threshold(rules: dict[int, job_sla.Rules], attribute: str) -> dict[float, list[int]]:
    """Job ids by the value of one rule, so that a query has one clause per distinct value."""
    groups: dict[float, list[int]] = {}
    for job_id, rule in rules.items():
        seconds = getattr(rule, attribute)
        if seconds is not None:
            groups.setdefault(seconds, []).append(job_id)
    return groups


def _active(rules: dict[int, job_sla.Rules], attribute: str) -> QuerySet[Execution]:
    """The active executions of the jobs with the rule, through exec_job_active_idx (its
    very condition, so the planner can use it whatever its statistics say): never their
    history, nor the cluster's other active rows. No ORDER BY: with one, stale statistics can
    plan a walk of the primary key instead (jobs.services.executions.run_settle)."""
    ids = [job_id for job_id, rule in rules.items() if getattr(rule, attribute) is not None]
    return Execution.objects.filter(job_id__in=ids, status__in=ACTIVE_STATUSES).order_by()


def _late(
    now: datetime,
    jobs: dict[int, dict[str, Any]],
    rules: dict[int, job_sla.Rules],
    opened: Callable[[dict[str, Any], str, str, dict[str, Any]], None],
) -> None:
    """Runs with an execution queued and not started `start_within` after it was due: its
    scheduled time, or later when it was queued later (jitter, catch-up) or waits out a
    retry's backoff. One alert per run."""
    match = Q()
    for seconds, ids in _by_threshold(rules, "start_within").items():
        cutoff = _ago(now, seconds)
        match |= (
            Q(job_id__in=ids, queued_at__lt=cutoff)
            & (Q(scheduled_at__isnull=True) | Q(scheduled_at__lt=cutoff))
            & (Q(not_before__isnull=True) | Q(not_before__lt=cutoff))
        )
    if not match:
        return
    rows = (
        _active(rules, "start_within")
        .filter(match, status=ExecutionStatus.QUEUED)
        .values("job_id", "run_id", "scheduled_at", "queued_at")[:NEW_PER_CHECK]
    )
    seen: set[int] = set()
    for row in rows:
        if row["run_id"] in seen:
            continue
        seen.add(row["run_id"])
        job = jobs[row["job_id"]]
        opened(
            job,
            AlertKind.LATE,
            f"run {row['run_id']}",
            {
                "run": row["run_id"],
                "scheduled_at": _iso(row["scheduled_at"]),
                "queued_at": _iso(row["queued_at"]),
                "start_within": job["sla"].get("start_within"),
            },
        )


def _overdue(
    now: datetime,
    jobs: dict[int, dict[str, Any]],
    rules: dict[int, job_sla.Rules],
    opened: Callable[[dict[str, Any], str, str, dict[str, Any]], None],
) -> int:
    """Executions running longer than `max_duration`; past `kill_after`, a kill request
    (once: the execution's kill_requested flag). Returns the kills requested."""
    match = Q()
    for seconds, ids in _by_threshold(rules, "max_duration").items():
        match |= Q(job_id__in=ids, started_at__lt=_ago(now, seconds))
    if not match:
        return 0
    rows = list(
        _active(rules, "max_duration")
        .filter(match, status=ExecutionStatus.RUNNING)
        .defer("output")[:NEW_PER_CHECK]
    )
    killed = 0
    for execution in rows:
        job = jobs[execution.job_id]
        rule = rules[execution.job_id]
        opened(
            job,
            AlertKind.OVERDUE,
            f"execution {execution.pk}",
            {
                "execution": execution.pk,
                "run": execution.run_id,
                "node": execution.node_name,
                "started_at": _iso(execution.started_at),
                "max_duration": job["sla"].get("max_duration"),
            },
        )
        started = execution.started_at
        if (
            rule.kill_after is not None
            and started is not None
            and started < _ago(now, rule.kill_after)
            and not execution.kill_requested
        ):
            with transaction.atomic():
                execution_kill(
                    execution=execution,
                    reason=f"killed: ran longer than its sla.kill_after "
                    f"({job['sla'].get('kill_after')})",
                    actor=SYSTEM,
                )
            killed += 1
    return killed


def _failing(
    job: dict[str, Any],
    threshold: int,
    open_now: set[tuple[int, str, str]],
    opened: Callable[[dict[str, Any], str, str, dict[str, Any]], None],
) -> None:
    """The job's last `threshold` settled runs all failed (skipped ones do not count)."""
    last_error, last_success = job["last_error"], job["last_success"]
    if last_error is None or (last_success is not None and last_success >= last_error):
        _failing_seen.pop(job["id"], None)
        return  # its latest execution succeeded: not failing
    if (job["id"], AlertKind.FAILING, "") in open_now:
        return
    if _failing_seen.get(job["id"]) == last_error:
        return  # this failure was judged already
    # The job's newest runs through run_job_idx (job_id, -id), whatever the statistics: the
    # job compared as a range (not `=`, which makes the planner drop job_id from the order)
    # and ordered as the index is, so no walk of the primary key backwards (through other
    # jobs' runs, when this job's newest are far back) can serve the ORDER BY.
    statuses = list(
        Run.objects.filter(job_id__gte=job["id"], job_id__lte=job["id"], finished=True)
        .exclude(status__in=["", "skipped"])
        .order_by("job_id", "-pk")
        .values_list("status", flat=True)[:threshold]
    )
    if len(statuses) == threshold and all(s in FAILED_RUN_STATUSES for s in statuses):
        opened(
            job,
            AlertKind.FAILING,
            "",
            {"failed_runs": threshold, "last_error": _iso(last_error)},
        )
    _failing_seen[job["id"]] = last_error


def reset() -> None:
    """Forget the process-local cursors and memo (tests; a new leader)."""
    _cursor.jobs = _cursor.alerts = 0
    _failing_seen.clear()


# --- reads ------------------------------------------------------------------------------------


def open_alert_counts() -> dict[tuple[str, str], int]:
    """(job name, kind) -> open alerts, for /metrics and /health (the open alerts only)."""
    counts: dict[tuple[str, str], int] = {}
    for name, kind in (
        Alert.objects.filter(state=AlertState.OPEN).order_by().values_list("job_name", "kind")
    ):
        counts[(name, kind)] = counts.get((name, kind), 0) + 1
    return counts
