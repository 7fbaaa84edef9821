"""Execution lifecycle: claim, progress, finish (with retries), kill, and settling a run.

Every transition is a conditional UPDATE on the current status, so a redelivered message,
a second agent or the dead-agent sweep racing the agent changes a row at most once.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, Exists, F, OuterRef, Q, Value, When
from django.db.models.expressions import RawSQL

from jobs import dispatch, timeutil
from jobs.errors import Conflict
from jobs.models import ACTIVE_STATUSES, Execution, ExecutionStatus, Job, JobStatus, Run
from jobs.services import agents as agent_services
from jobs.services import execution_sql, notifications
from jobs.services.audit import SYSTEM, Actor, audit_record
from jobs.targeting import parse_tags, select_nodes

log = logging.getLogger("dkronweb.executions")

FINAL_STATUSES = (
    ExecutionStatus.SUCCESS,
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMEOUT,
    ExecutionStatus.KILLED,
)


def execution_claim(*, execution_id: int, node_name: str) -> Execution | None:
    """Take a queued execution for this agent; None when someone else has (or it is gone).

    An execution without a concurrency key is claimed in one conditional UPDATE; one with a
    key only under its key's lock, while the key has room (capacity.claim_keyed)."""
    claimed = _claim(execution_id=execution_id, node_name=node_name, keyed=False)
    if claimed is not None:
        return claimed
    row = (
        Execution.objects.filter(pk=execution_id, status=ExecutionStatus.QUEUED, waiting="")
        .values_list("concurrency_key", flat=True)
        .first()
    )
    if not row:
        return None  # taken by another delivery, killed while queued, deleted, or held
    from jobs.services import capacity

    return capacity.claim_keyed(
        execution_id=execution_id,
        key=row,
        claim=lambda: _claim(execution_id=execution_id, node_name=node_name, keyed=True),
    )


def _claim(*, execution_id: int, node_name: str, keyed: bool) -> Execution | None:
    """queued -> running; only an execution without a key unless `keyed` (its lock held)."""
    now = timeutil.now()
    if execution_sql.available():
        return execution_sql.claim(
            execution_id=execution_id,
            node_name=node_name,
            queue=dispatch.node_queue(node_name),
            now=now,
            keyed=keyed,
        )
    rows = Execution.objects.filter(pk=execution_id, status=ExecutionStatus.QUEUED, waiting="")
    if not keyed:
        rows = rows.filter(concurrency_key="")
    taken = rows.update(
        status=ExecutionStatus.RUNNING,
        node_name=node_name,
        queue=dispatch.node_queue(node_name),
        started_at=now,
        heartbeat_at=now,
    )
    if not taken:
        return None
    return Execution.objects.select_related("run").get(pk=execution_id)


def execution_progress(*, execution_id: int, output: str | None, truncated: bool) -> bool:
    """Store live output and the heartbeat; False when the run must stop (killed or gone)."""
    fields: dict[str, object] = {"heartbeat_at": timeutil.now()}
    if output is not None:
        fields.update(output=output, output_truncated=truncated)
    # The status as `(SELECT 'running')` (issue 15, see execution_sql.claim): the row by its
    # key, never through exec_active_idx's 'running' range and its dead entries.
    running = RawSQL("SELECT %s", (str(ExecutionStatus.RUNNING),), output_field=CharField())
    updated = Execution.objects.filter(
        pk=execution_id, status=running, kill_requested=False
    ).update(**fields)
    return bool(updated)


def retry_delay(*, base: float, attempt: int) -> float:
    """Exponential backoff: base, 2*base, 4*base... capped (attempt = the one that failed)."""
    return float(min(base * (2 ** (attempt - 1)), settings.DKRON["RETRY_BACKOFF_MAX"]))


def _retry_node(execution: Execution) -> str:
    if execution.placement != "any":
        return execution.node_name
    target = parse_tags(execution.run.snapshot.get("tags") or {})
    target = type(target)(required=target.required, count=1)
    nodes = select_nodes(target, agent_services.alive_nodes())
    return nodes[0].name if nodes else execution.node_name


@dataclass(frozen=True)
class Closed:
    """What `execution_close` recorded: the status it wrote ("" when it closed nothing: the
    row was closed or deleted meanwhile) and the next attempt, if one was queued."""

    status: str
    retry: Execution | None = None
    # Executions wait for an agent slot: the caller that freed one places them.
    slot_waiters: bool = False


def execution_finish(
    *,
    execution_id: int,
    status: str,
    output: str,
    truncated: bool = False,
    reason: str = "",
    retryable: bool = True,
    claimed: Execution | None = None,
) -> Execution | None:
    """Close an execution; returns the next attempt (queued, not yet published) if any."""
    return execution_close(
        execution_id=execution_id,
        status=status,
        output=output,
        truncated=truncated,
        reason=reason,
        retryable=retryable,
        claimed=claimed,
    ).retry


def execution_close(
    *,
    execution_id: int,
    status: str,
    output: str,
    truncated: bool = False,
    reason: str = "",
    retryable: bool = True,
    claimed: Execution | None = None,
) -> Closed:
    """Close an execution: `execution_finish`, also saying which status was recorded.

    `claimed` is the row as the agent claimed it (with its run): then the usual case costs one
    conditional UPDATE. Without it, or when the row changed meanwhile (a kill request, the
    dead-agent sweep), the row is locked and read first.
    """
    # The common case: the row is closed without a lock or a read, and the run settled in the
    # same commit (on PostgreSQL in one statement).
    if claimed is not None and not _needs_retry(claimed, status=status, retryable=retryable):
        fast = _close_claimed(
            claimed,
            status=status,
            output=output,
            truncated=truncated,
            reason=reason,
            retryable=retryable,
        )
        if fast is not None:
            return fast
    with transaction.atomic():
        # Locked by primary key alone, the status checked here (issue 15): with
        # `status__in=ACTIVE_STATUSES` in the query, stale planner statistics could send the
        # lookup through exec_active_idx, every active row of the cluster.
        execution = (
            Execution.objects.select_for_update(of=("self",))
            .select_related("run")
            .filter(pk=execution_id)
            .first()
        )
        if execution is None or execution.status not in ACTIVE_STATUSES:
            return Closed("")  # deleted with its job, or already closed by the dead-agent sweep
        if execution.kill_requested and status != ExecutionStatus.SUCCESS:
            status, retryable = ExecutionStatus.KILLED, False
        retry = _needs_retry(execution, status=status, retryable=retryable)
        _close(
            execution,
            status=status,
            output=output,
            truncated=truncated,
            reason=reason,
            retryable=retryable,
            retry=retry,
            guard=False,
        )
        retried = _after_close(execution, status=status, retry=retry)
    return Closed(status, retried, _slot_waiters())


def _slot_waiters() -> bool:
    return Execution.objects.filter(waiting="slot", finished_at__isnull=True).order_by().exists()


def _close_claimed(
    claimed: Execution, *, status: str, output: str, truncated: bool, reason: str, retryable: bool
) -> Closed | None:
    """Close a final result if the row is as claimed; None when it changed meanwhile."""
    if execution_sql.available():
        return _finish_in_one_statement(
            claimed,
            status=status,
            output=output,
            truncated=truncated,
            reason=reason,
            retryable=retryable,
        )
    with transaction.atomic():
        closed = _close(
            claimed,
            status=status,
            output=output,
            truncated=truncated,
            reason=reason,
            retryable=retryable,
            retry=False,
            guard=True,
        )
        if closed:
            _after_close(claimed, status=status, retry=False)
    return Closed(status, None, _slot_waiters()) if closed else None


def _finish_in_one_statement(
    claimed: Execution, *, status: str, output: str, truncated: bool, reason: str, retryable: bool
) -> Closed | None:
    """PostgreSQL's fast path; None when the row changed since the claim (use the ORM path).

    Without dependents or ephemeral deletion to follow, the statement commits on its own; with
    them, it shares one transaction with the follow-up so a crash cannot lose a dependent fire.
    """
    snapshot = claimed.run.snapshot
    follow_up = snapshot.get("has_dependents", True) or snapshot.get("ephemeral", True)
    with transaction.atomic() if follow_up else nullcontext():
        done = execution_sql.finish(
            execution=claimed,
            status=status,
            output=output,
            truncated=truncated,
            reason=reason,
            retryable=retryable,
            now=timeutil.now(),
        )
        if not done.closed:
            return None
        if done.settled:
            _after_settle(claimed.run, done.run_status)
    if done.active_siblings:
        with transaction.atomic():  # committed now: whoever finishes last settles the run
            run_settle(run_id=claimed.run_id)
    return Closed(status, None, done.slot_waiters)


def _needs_retry(execution: Execution, *, status: str, retryable: bool) -> bool:
    attempts = int(execution.run.snapshot.get("retries") or 0) + 1
    return (
        status not in (ExecutionStatus.SUCCESS, ExecutionStatus.KILLED)
        and retryable
        and execution.attempt < attempts
    )


def _close(
    execution: Execution,
    *,
    status: str,
    output: str,
    truncated: bool,
    reason: str,
    retryable: bool,
    retry: bool,
    guard: bool,
) -> bool:
    """Write the result; with `guard`, only if still running and nobody asked for a kill."""
    now = timeutil.now()
    rows = Execution.objects.filter(pk=execution.pk)
    if guard:
        rows = rows.filter(status=ExecutionStatus.RUNNING, kill_requested=False)
    success = status == ExecutionStatus.SUCCESS
    closed = rows.update(
        status=status,
        success=success,
        output=output,
        output_truncated=truncated,
        reason=reason[:255],
        retryable=retryable,
        finished_at=now,
        started_at=execution.started_at or now,
        final=not retry,
        waiting="",  # a held execution closed (moved off a gone agent, failed) waits no more
    )
    if not closed:
        return False
    counter = {"success_count": F("success_count") + 1, "last_success": now}
    if not success:
        counter = {"error_count": F("error_count") + 1, "last_error": now}
    Job.objects.filter(pk=execution.job_id).update(**counter)
    return True


def _after_close(execution: Execution, *, status: str, retry: bool) -> Execution | None:
    if not retry:
        run = execution.run
        if not run_settle(run_id=run.pk, run=run):
            # Another node's execution looked active from inside this transaction: check
            # again once committed (whoever commits last sees every result).
            transaction.on_commit(lambda: run_settle(run_id=run.pk, run=run))
        return None
    snapshot = execution.run.snapshot
    node = _retry_node(execution)
    delay = retry_delay(base=float(snapshot.get("retry_backoff", 1.0)), attempt=execution.attempt)
    return Execution.objects.create(
        run=execution.run,
        job_id=execution.job_id,
        job_name=execution.job_name,
        attempt=execution.attempt + 1,
        node_name=node,
        placement=execution.placement,
        queue=dispatch.node_queue(node),
        scheduled_at=execution.scheduled_at,
        not_before=timeutil.now() + timedelta(seconds=delay),
        status=ExecutionStatus.QUEUED,
        # A retry keeps its key: its claim is held to the key's limits like the first's.
        concurrency_key=execution.concurrency_key,
    )


def execution_kill(
    *, execution: Execution, reason: str = "killed by user", actor: Actor = SYSTEM
) -> Execution:
    """Kill a queued execution at once, or ask its agent to stop a running one."""
    now = timeutil.now()
    if execution.status == ExecutionStatus.QUEUED:
        done = Execution.objects.filter(pk=execution.pk, status=ExecutionStatus.QUEUED).update(
            status=ExecutionStatus.KILLED,
            reason=reason,
            started_at=now,
            finished_at=now,
            final=True,
            waiting="",
        )
        if done:
            transaction.on_commit(lambda: run_settle(run_id=execution.run_id))
    elif execution.status == ExecutionStatus.RUNNING:
        Execution.objects.filter(pk=execution.pk, status=ExecutionStatus.RUNNING).update(
            kill_requested=True, reason=reason
        )
    else:
        raise Conflict(f"execution {execution.pk} is not running (status {execution.status})")
    audit_record(
        actor=actor,
        action="kill",
        target=execution.job_name,
        detail={"execution": execution.pk, "status": execution.status},
    )
    execution.refresh_from_db()
    return execution


def group_status(finals: list[str]) -> str:
    """A run's status from the final attempt of each node (skipped rows aside)."""
    finals = [s for s in finals if s != ExecutionStatus.SKIPPED]
    if not finals:
        return ExecutionStatus.SKIPPED
    ok = sum(1 for s in finals if s == ExecutionStatus.SUCCESS)
    if ok == len(finals):
        return JobStatus.SUCCESS
    if ok == 0:
        return JobStatus.FAILED
    return JobStatus.PARTIALLY_FAILED


# History is trimmed on every TRIM_EVERY-th run of a job, not on each one: a job may briefly
# hold a few runs more than its limit, and the common path saves two queries.
TRIM_EVERY = 10


def run_settle(*, run_id: int, run: Run | None = None) -> bool:
    """When the last execution of a run is final: job status, dependents, ephemeral, history.

    The `finished=False -> True` update happens once per run, so dependents fire once per
    run (not once per node) even when several agents finish at the same moment. Whether the
    job has dependents and is ephemeral is read from the run's snapshot (taken at fire time).
    Returns False while some execution of the run is still active.
    """
    # No ORDER BY (the model's default is -id): with it, stale statistics can plan a walk of
    # the primary key backwards, through the whole history, instead of the run's few rows.
    rows = list(Execution.objects.filter(run_id=run_id).order_by().values_list("status", "final"))
    if any(s in ACTIVE_STATUSES for s, _ in rows):
        return False
    if run is None:
        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            return True
    status = group_status([s for s, final in rows if final])
    if not Run.objects.filter(pk=run_id, finished=False).update(finished=True, status=status):
        return True
    if status != ExecutionStatus.SKIPPED:
        still_active = Exists(
            Execution.objects.filter(job_id=OuterRef("pk"), status__in=ACTIVE_STATUSES)
        )
        Job.objects.filter(pk=run.job_id).update(
            status=Case(When(still_active, then=Value(JobStatus.RUNNING)), default=Value(status))
        )
    _after_settle(run, status)
    return True


def _after_settle(run: Run, status: str) -> None:
    """Notifications, dependents, ephemeral deletion and history trimming once a run settled."""
    notifications.notify_enqueue(run=run, status=status)
    run_id = run.pk
    snapshot = run.snapshot
    chained = status == JobStatus.SUCCESS and snapshot.get("has_dependents", True)
    ephemeral = status == JobStatus.SUCCESS and snapshot.get("ephemeral", True)
    if not (chained or ephemeral or run_id % TRIM_EVERY == 0):
        return
    with transaction.atomic(savepoint=False):
        _follow_up(run, chained=chained, ephemeral=ephemeral)


def _follow_up(run: Run, *, chained: bool, ephemeral: bool) -> None:
    from jobs.services.runs import fire_dependents

    run_id = run.pk
    job = Job.objects.filter(pk=run.job_id).first()
    if job is None:
        return
    if run_id % TRIM_EVERY == 0:
        trim_history(job=job)
    if chained:
        fire_dependents(job=job)
    if ephemeral and job.ephemeral:
        from jobs.services.jobs import job_delete

        try:
            job_delete(job=job)
        except Conflict:
            log.warning("ephemeral job %s kept: it has dependents", job.name)


def trim_history(*, job: Job) -> int:
    """Keep the newest `history_limit` finished executions of a job (setting by default)."""
    limit = job.history_limit or settings.DKRON["HISTORY_LIMIT"]
    cutoff = (
        Execution.objects.filter(job=job)
        .order_by("-id")
        .values_list("id", flat=True)[limit : limit + 1]
    )
    ids = list(cutoff)
    if not ids:
        return 0
    doomed = Execution.objects.filter(job=job, id__lte=ids[0]).filter(
        ~Q(status__in=ACTIVE_STATUSES)
    )
    # Issue 15: only the runs of the rows deleted here can have become empty. Asking for every
    # empty run of the job walked all its runs (and probed each one's executions) on every
    # TRIM_EVERY-th run.
    run_ids = set(doomed.values_list("run_id", flat=True))
    deleted, _ = doomed.delete()
    Run.objects.filter(pk__in=run_ids, finished=True, executions__isnull=True).delete()
    return deleted


def close_orphaned_runs(*, node_name: str) -> int:
    """A starting agent closes what its dead predecessor of the same name left running."""
    now = timeutil.now()
    ids = list(
        Execution.objects.filter(status=ExecutionStatus.RUNNING, node_name=node_name).values_list(
            "pk", flat=True
        )
    )
    for pk in ids:
        retry = execution_finish(
            execution_id=pk,
            status=ExecutionStatus.FAILED,
            output=f"agent {node_name} restarted while this execution was running\n",
            reason=f"agent {node_name} restarted",
        )
        if retry is not None:
            delay = max(0.0, ((retry.not_before or now) - now).total_seconds())
            dispatch.publish_on_commit(retry, countdown=delay)
    return len(ids)
