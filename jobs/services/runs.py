"""Starting runs: scheduled fires (exactly once per fire key), run now, dependents, retries.

A run is one `Run` row (Dkron's execution group) plus one `queued` execution per target node;
the Celery message for each execution is published after the transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import CharField, F, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Mod

from executors.registry import get_executor
from jobs import calendars, dispatch, timeutil, timing, tracing
from jobs import params as job_params
from jobs import secrets as job_secrets
from jobs.errors import Conflict, DomainError, Forbidden
from jobs.models import (
    ACTIVE_STATUSES,
    Concurrency,
    Execution,
    ExecutionStatus,
    Job,
    JobStatus,
    MisfirePolicy,
    Run,
)
from jobs.services import agents as agent_services
from jobs.services import capacity
from jobs.services.audit import SYSTEM, Actor, audit_record
from jobs.targeting import NodeInfo, Target, matches, parse_tags, select_nodes
from jobs.timing import compute_next_run, parse_job_schedule

log = logging.getLogger("dkronweb.runs")

# Missed fires counted (and caught up) per job and tick at most.
MAX_COUNTED = 10_000

SNAPSHOT_FIELDS = ("executor", "executor_config", "retries", "retry_backoff", "concurrency", "tags")


def snapshot_of(job: Job) -> dict[str, Any]:
    snap: dict[str, Any] = {f: getattr(job, f) for f in SNAPSHOT_FIELDS}
    snap["processors"] = job.processors
    snap["ephemeral"] = job.ephemeral
    # Who to tell when the run settles (read there without a query when nothing is set).
    snap["notify"] = job.notify or {}
    snap["owner_email"] = job.owner_email
    # Findings a restore stored the job with: the agent fails the run with them (agent.runner).
    snap["problems"] = job.problems or {}
    try:
        executor = get_executor(job.executor)
        plain = job_secrets.decrypt_config(job.executor, job.executor_config, strict=False)
        timeout = executor.timeout_seconds(executor.validate(plain))
    except Exception:
        timeout = None  # the agent reports the config error as the run's failure
    snap["timeout_seconds"] = timeout
    return snap


def has_active_run(job: Job) -> bool:
    """Forbid's test, answered by the database: queued, running or waiting for a retry."""
    return Execution.objects.filter(job=job, status__in=ACTIVE_STATUSES).exists()


def _execution(
    run: Run, job: Job, *, node: str, status: str, reason: str = "", placement: str = "node"
) -> Execution:
    """An unsaved execution row; closed at once unless it is queued."""
    now = timeutil.now()
    finished = status not in ACTIVE_STATUSES
    return Execution(
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


@dataclass
class Fire:
    """One run to start: a job and its scheduled time (None for manual and dependent runs).

    `not_before` (catch-up fires under CATCHUP_RATE) is the run's publish slot: its queued
    executions are committed unpublished with that time, and the active scheduler publishes
    them when it comes (`publish_due_catchups`).
    """

    job: Job
    scheduled_at: datetime | None
    trigger: str
    not_before: datetime | None = None
    # A run now's parameter values, checked (jobs.params.resolve); None: the defaults.
    params: dict[str, Any] | None = None


def active_job_ids(job_ids: list[int]) -> set[int]:
    """Jobs with a queued, running or retry-pending execution (forbid and replace ask this)."""
    if not job_ids:
        return set()
    # Through exec_job_active_idx: the jobs' active rows, never their history. No ordering:
    # the model's default (-id) would make DISTINCT keep one row per execution.
    return set(
        Execution.objects.filter(job_id__in=job_ids, status__in=ACTIVE_STATUSES)
        .order_by()
        .values_list("job_id", flat=True)
        .distinct()
    )


def _insert_runs(fires: list[Fire]) -> list[tuple[Fire, Run]]:
    """Insert the runs in one statement; on a fire-key clash, one by one, dropping the clashes."""
    job_ids = {f.job.pk for f in fires}
    parents = set(Job.objects.filter(parent_id__in=job_ids).values_list("parent_id", flat=True))
    runs = []
    for fire in fires:
        snapshot = snapshot_of(fire.job)
        snapshot["has_dependents"] = fire.job.pk in parents
        if fire.job.params:
            _snapshot_params(snapshot, fire)
        runs.append(
            Run(
                job=fire.job,
                scheduled_at=fire.scheduled_at,
                trigger=fire.trigger,
                snapshot=snapshot,
                revision=fire.job.revision,  # what the executions ran (jobs.services.revisions)
            )
        )
    try:
        with transaction.atomic():
            return list(zip(fires, Run.objects.bulk_create(runs), strict=True))
    except IntegrityError:
        pass
    created = []
    for fire, run in zip(fires, runs, strict=True):
        try:
            with transaction.atomic():
                run.save(force_insert=True)
        except IntegrityError:
            continue  # another scheduler (or an earlier tick) fired this key already
        created.append((fire, run))
    return created


def _snapshot_params(snapshot: dict[str, Any], fire: Fire) -> None:
    """The values this run runs with, kept in its snapshot (the agent reads them there, the
    execution pages show them). A run nobody gave values to takes the defaults; when a
    required parameter has none, the run fails with that finding (agent.runner.run_refusal)."""
    if fire.params is not None:
        snapshot["params"] = fire.params
        return
    try:
        snapshot["params"] = job_params.resolve(fire.job.params, None)
    except job_params.InvalidParams as exc:
        snapshot["params"] = {}
        snapshot["problems"] = {**snapshot["problems"], "params": exc.errors}


def start_runs(fires: list[Fire]) -> list[Run]:
    """Create runs and their executions in a few statements; publish the queued ones on commit.

    Call inside a transaction. Forbid and replace are decided from the database (active
    executions), targets from the live agents, both read once for the whole batch.
    """
    from jobs.services import executions as execution_services

    if not fires:
        return []
    fire_started = tracing.now()
    created = _insert_runs(fires)
    nodes = agent_services.alive_nodes()
    guarded = [f.job.pk for f, _ in created if f.job.concurrency != Concurrency.ALLOW]
    active = active_job_ids(guarded)
    untagged = settings.DKRON["UNTAGGED_TARGET"]
    executions: list[Execution] = []
    settle: list[int] = []
    started_jobs: set[int] = set()
    failed_jobs: dict[int, int] = {}
    calendar_missed: dict[int, int] = {}
    keyed: dict[str, Job] = {}
    for fire, run in created:
        job = fire.job
        # A scheduled or catch-up time inside an excluded calendar stretch: recorded as a
        # missed fire with the calendar's name, and never run (its fire key is taken).
        if fire.trigger != Run.Trigger.MANUAL and (
            reason := calendars.exclusion_reason(job, fire.scheduled_at)
        ):
            executions.append(_execution(run, job, node="", status="skipped", reason=reason))
            calendar_missed[job.pk] = calendar_missed.get(job.pk, 0) + 1
            settle.append(run.pk)
            continue
        checks = fire.trigger != Run.Trigger.MANUAL or job.concurrency == Concurrency.REPLACE
        if checks and job.pk in active and job.concurrency == Concurrency.FORBID:
            reason = "skipped: concurrency is forbid and the previous run is still going"
            executions.append(_execution(run, job, node="", status="skipped", reason=reason))
            settle.append(run.pk)
            continue
        if checks and job.pk in active and job.concurrency == Concurrency.REPLACE:
            others = Execution.objects.filter(job=job, status__in=ACTIVE_STATUSES)
            for execution in others.exclude(run=run):
                execution_services.execution_kill(execution=execution, reason="replaced")
        key = capacity.job_key(job)
        if key and checks and job.concurrency == Concurrency.FORBID and capacity.key_busy(key):
            reason = f"skipped: concurrency is forbid and key '{key}' is at its limit"
            executions.append(_execution(run, job, node="", status="skipped", reason=reason))
            settle.append(run.pk)
            continue
        target = parse_tags(job.tags)
        # A node picked among several (a tag count, or an untagged job under
        # UNTAGGED_TARGET=one) is not the run's target: the sweep may move the run, and its
        # retries, to another matching node when that one dies. Only agents with a free
        # slot are picked; when every matching one is full, the run waits for a slot.
        one_of = target.count is not None or (not target.required and untagged == "one")
        placement = "any" if one_of else "node"
        candidates = [n for n in nodes if n.free_slots > 0] if one_of and not key else nodes
        chosen = select_nodes(target, candidates, untagged_default=untagged)
        if not chosen and not (one_of and _matching(target, nodes)):
            wanted = ", ".join(f"{k}={v}" for k, v in target.required.items()) or "any"
            reason = f"no target nodes found to run job {job.name} (tags: {wanted})"
            executions.append(
                _execution(run, job, node="", status=ExecutionStatus.FAILED, reason=reason)
            )
            failed_jobs[job.pk] = failed_jobs.get(job.pk, 0) + 1
            settle.append(run.pk)
            continue
        if key:
            # Held for the key, on no agent yet (so no agent counts it as its load): a run
            # for every matching node keeps its node in `queue`; one for one of several gets
            # its agent when admitted (capacity.admit).
            keyed[key] = job
            for node in chosen:
                held = _execution(
                    run, job, node="", status=ExecutionStatus.QUEUED, placement=placement
                )
                held.queue = "" if one_of else dispatch.node_queue(node.name)
                held.concurrency_key, held.waiting = key, capacity.WAIT_KEY
                held.not_before = fire.not_before
                executions.append(held)
            started_jobs.add(job.pk)
            active.add(job.pk)
            continue
        wanted_count = min(target.count or 1, _matching(target, nodes)) if one_of else 0
        for node in chosen:
            execution = _execution(
                run, job, node=node.name, status=ExecutionStatus.QUEUED, placement=placement
            )
            execution.not_before = fire.not_before
            executions.append(execution)
        for _ in range(wanted_count - len(chosen)) if one_of else ():
            # Fewer matching agents with a free slot than the run asks for: the rest wait,
            # queued without a node, for the first slot that frees (capacity.place_waiting).
            held = _execution(run, job, node="", status=ExecutionStatus.QUEUED, placement="any")
            held.waiting = capacity.WAIT_SLOT
            held.not_before = fire.not_before
            executions.append(held)
        if one_of:  # the next fire of the batch sees these nodes one execution busier
            nodes = _with_one_more(nodes, {node.name for node in chosen})
        started_jobs.add(job.pk)
        active.add(job.pk)  # a second fire of this job in the batch (run_all) sees this one
    Execution.objects.bulk_create(executions)
    if keyed:  # held when created; admitted now in fire order while their keys have room
        for job in keyed.values():
            capacity.key_sync(job=job)
        capacity.admit(keyed)
    if started_jobs:
        Job.objects.filter(pk__in=started_jobs).exclude(status=JobStatus.RUNNING).update(
            status=JobStatus.RUNNING
        )
    now = timeutil.now()
    for job_id, count in failed_jobs.items():  # counted like any failed execution record
        Job.objects.filter(pk=job_id).update(error_count=F("error_count") + count, last_error=now)
    for job_id, count in calendar_missed.items():
        Job.objects.filter(pk=job_id).update(missed_count=F("missed_count") + count)
    for run_id in settle:
        execution_services.run_settle(run_id=run_id)
    if tracing.ENABLED:  # before the publish below, so each fire span ends before its publish
        ended = {e.run_id: str(e.status) for e in executions if e.status != ExecutionStatus.QUEUED}
        tracing.fired([(run, ended.get(run.pk, "")) for _, run in created], start=fire_started)
    dispatch.publish_on_commit(
        [
            e
            for e in executions
            if e.status == ExecutionStatus.QUEUED and e.not_before is None and not e.waiting
        ]
    )
    return [run for _, run in created]


def _matching(target: Target, nodes: list[NodeInfo]) -> int:
    return sum(1 for n in nodes if matches(n, target))


def _with_one_more(nodes: list[NodeInfo], names: set[str]) -> list[NodeInfo]:
    return [replace(n, running=n.running + 1) if n.name in names else n for n in nodes]


def _start(
    job: Job,
    *,
    scheduled_at: datetime | None,
    trigger: str,
    params: dict[str, Any] | None = None,
) -> Run | None:
    """Start one run; None when this fire key already exists."""
    runs = start_runs([Fire(job=job, scheduled_at=scheduled_at, trigger=trigger, params=params)])
    return runs[0] if runs else None


def run_params(*, job: Job, given: Any, actor: Actor = SYSTEM) -> dict[str, Any] | None:
    """A run now's parameter values checked against the job's declaration (400 naming the
    parameter); None when the job declares none and none were given (today's run).

    A string value placed into the config of an executor that runs code would let whoever
    may run the job choose the code it runs: that needs the run-code permission, as editing
    the job does."""
    if not job.params and not given:
        return None
    try:
        values = job_params.resolve(job.params, given)
    except job_params.InvalidParams as exc:
        raise DomainError(
            f"invalid run parameters: {exc.first()}", {"params": exc.errors}
        ) from None
    if given and not actor.can_run_code and _runs_code(job):
        strings = {p["name"] for p in job.params if p.get("type", "string") == "string"}
        used = {name for _, name in job_params.placeholders(job.executor_config)}
        chosen = sorted(strings & used & set(given))
        if chosen:
            raise Forbidden(
                f"you may not set '{chosen[0]}': it is placed into the config of a "
                f"'{job.executor}' job, which runs code on hosts, and needs the 'run code "
                "jobs' permission (jobs.run_code_jobs)",
                {"params": {name: "permission required" for name in chosen}},
            )
    return values


def _runs_code(job: Job) -> bool:
    try:
        return bool(get_executor(job.executor).runs_code)
    except Exception:
        return True  # an executor that cannot be loaded is treated as the dangerous kind


@transaction.atomic
def run_now(
    *,
    job: Job,
    force: bool = False,
    actor: Actor = SYSTEM,
    params: dict[str, Any] | None = None,
    defaults: bool = False,
) -> Run:
    """Run a job at once, whatever its schedule or `disabled`; forbid answers 409 unless forced.

    `params`: the run's parameter values as given (a run body's `params`), checked here.
    `defaults`: run with the defaults as a scheduled run does, never refused for a missing
    value (`?runoncreate`: the job is saved already; the run fails saying what is missing)."""
    values = None if defaults else run_params(job=job, given=params, actor=actor)
    if job.concurrency == Concurrency.FORBID and not force and has_active_run(job):
        raise Conflict(
            f"job '{job.name}' is still running and its concurrency is forbid; "
            "use ?force=true to run it anyway"
        )
    run = _start(job, scheduled_at=None, trigger=Run.Trigger.MANUAL, params=values)
    assert run is not None  # manual runs have no fire key, so they never collide
    detail: dict[str, Any] = {"run": run.pk, "force": force}
    if values:
        detail["params"] = sorted(values)  # names only: values may be anything a user typed
    audit_record(actor=actor, action="run", target=job.name, detail=detail)
    return run


def fire_dependents(*, job: Job) -> None:
    for child in Job.objects.filter(parent=job):
        with transaction.atomic():
            _start(child, scheduled_at=None, trigger=Run.Trigger.PARENT)


@dataclass(frozen=True)
class Shards:
    """The shards one scheduler fires when several are active (DKRON_SCHEDULER_SHARDS): the
    jobs whose `id % count` is a key of `since`, and since when it has held each shard (the
    `active_since` of `_plan`, per shard: a shard taken over from a dead scheduler judges the
    fires nobody was there for as missed, as a new leader does)."""

    count: int
    since: dict[int, datetime | None]

    def filter(self, queryset: QuerySet[Any], field: str = "id") -> QuerySet[Any]:
        if self.count <= 1 or len(self.since) >= self.count:
            return queryset  # every shard: no filter (a lone scheduler of a sharded cluster)
        return queryset.annotate(_shard=Mod(field, self.count)).filter(_shard__in=list(self.since))

    def since_of(self, job: Job) -> datetime | None:
        return self.since.get(job.pk % self.count) if self.count > 1 else self.since.get(0)


@dataclass
class FireReport:
    fired: int = 0
    missed: int = 0
    skipped_keys: int = 0
    runs: list[int] = field(default_factory=list)
    more: bool = False  # more fires were due than one transaction takes: go again at once
    fenced: bool = False  # the lease was lost: nothing was fired
    catchup_waiting: int = 0  # catch-up runs of this batch given a later publish slot


def _plan(
    job: Job, now: datetime, budget: int | None = None, since: datetime | None = None
) -> tuple[list[tuple[datetime, str]], int, datetime | None]:
    """Decide which fire times of a due job run now, how many are missed, and the next time.

    1. A fire late by less than the grace period always runs (failover, broker restart).
    2. Later than that it is a misfire: `skip` drops it, `run_once` runs the latest missed
       time inside the catch-up window, `run_all` runs each of them oldest first.
    3. Fire times outside starts_at/expires_at never run and are not misfires.

    Lateness is counted up to `since` when it is earlier than `now`: the time from which this
    scheduler has been firing without a break. A fire due while it was at work was not missed,
    however long the work before it took (a top-of-the-hour burst of 100,000 takes minutes to
    fire): it runs, late; only fire times nobody was there for are misfires.

    With jitter (issue 16) the times returned, and the next one, are the schedule's own
    (the fire keys); lateness is counted from when each fire was to start, its offset added,
    and a fire whose start has not come yet is left for the next time.
    """
    assert job.next_run is not None
    due = timing.scheduled_next(job)
    times: list[tuple[datetime, str]]
    assert due is not None
    schedule = parse_job_schedule(job)
    grace = timedelta(seconds=settings.DKRON["MISFIRE_GRACE"])
    if schedule is None or schedule.kind == "manual":
        return [], 0, None
    cut = min(now, since or now) - grace  # fire times before it were missed
    if job.next_run >= cut:
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
        catchable += schedule.fires_between(window_start, cut, anchor=job.anchor, limit=MAX_COUNTED)
        recent = schedule.fires_between(cut, now, anchor=job.anchor)
        upto = now
        if job.jitter > 0:
            # Only the fires whose start has come; the first that has not is the next.
            started = [t for t in recent if timing.fire_start(job, t) <= now]
            if len(started) < len(recent):
                upto = recent[len(started)] - timedelta(microseconds=1)
                recent = recent[: len(started)]
        if job.misfire_policy == MisfirePolicy.RUN_ALL:
            chosen = catchable
        elif job.misfire_policy == MisfirePolicy.RUN_ONCE:
            # The latest missed time its calendars let through, not the latest of all.
            allowed = [t for t in catchable if not calendars.exclusion_reason(job, t)]
            chosen = allowed[-1:]
        else:
            chosen = []
        missed = len(before) + len(catchable) - len(chosen)
        times = [(t, Run.Trigger.CATCHUP) for t in chosen]
        times += [(t, Run.Trigger.SCHEDULE) for t in recent]
    times = [
        (t, trig)
        for t, trig in times
        if not (job.starts_at and t < job.starts_at) and not (job.expires_at and t > job.expires_at)
    ]
    if schedule.kind == "at":
        return times, missed, None
    if budget is not None and len(times) > max(budget, 1):
        # More fires than this transaction may take (run_all after a long outage): take the
        # oldest, and leave next_run at the first one not taken, for the next transaction.
        # The misses are counted now; from there the rest are catch-up or on time.
        keep = max(budget, 1)
        return times[:keep], missed, times[keep][0]
    next_run = schedule.next_after(upto, anchor=job.anchor)
    next_run = calendars.next_allowed(
        job, next_run, lambda t: schedule.next_after(t, anchor=job.anchor)
    )
    if next_run is not None and job.expires_at and next_run > job.expires_at:
        next_run = None
    return times, missed, next_run


def _advance(moves: list[tuple[Job, datetime | None, int]]) -> set[int]:
    """Move each job's next fire from its old value to the new one, if nobody did it first.

    Each move names the next scheduled time; `timing.set_next` turns it into the stored
    pair (the start with jitter, and the scheduled time). One statement on PostgreSQL
    (UPDATE ... FROM VALUES ... RETURNING); a loop elsewhere (the embedded SQLite mode fires
    few jobs at a time).
    """
    if not moves:
        return set()
    planned = [
        (job.pk, job.next_run, *timing.next_fields(job, scheduled), missed)
        for job, scheduled, missed in moves
    ]
    if connection.vendor == "postgresql":
        table = Job._meta.db_table
        rows = ", ".join(
            ["(%s::bigint, %s::timestamptz, %s::timestamptz, %s::timestamptz, %s::bigint)"]
            * len(planned)
        )
        params: list[Any] = [value for row in planned for value in row]
        sql = (
            f"UPDATE {table} AS j SET next_run = v.new, next_scheduled = v.scheduled, "
            "missed_count = j.missed_count + v.missed "
            f"FROM (VALUES {rows}) AS v(id, old, new, scheduled, missed) "
            "WHERE j.id = v.id AND j.next_run = v.old RETURNING j.id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}
    claimed = set()
    for pk, old, new, scheduled, missed in planned:
        if Job.objects.filter(pk=pk, next_run=old).update(
            next_run=new, next_scheduled=scheduled, missed_count=F("missed_count") + missed
        ):
            claimed.add(pk)
    return claimed


class Fenced(Exception):
    """The fence failed: this scheduler no longer holds the lease; its transaction rolls back."""


def fire_due_jobs(
    *,
    now: datetime | None = None,
    limit: int | None = None,
    fence: Callable[[], bool] | None = None,
    active_since: datetime | None = None,
    shards: Shards | None = None,
) -> FireReport:
    """Fire every enabled job whose next_run has come; the per-tick cost follows due jobs only.

    1. Read up to `limit` due jobs by the indexed next_run, and plan their fires in memory,
       at most `limit` fires in all (a run_all job after a long outage is split over several
       transactions), so that each transaction stays short.
    2. Advance their next_run with one conditional UPDATE: a job another scheduler advanced
       first is dropped, so two schedulers never both fire it.
    3. Insert the runs (unique (job, scheduled_at): the fence if step 2 were ever bypassed),
       their executions, and publish the queued ones after commit, all in batches. Catch-up
       fires get staggered publish slots under CATCHUP_RATE (`catchup_slots`).
    4. `fence`, the last statement of the transaction, renews the lease only if still held:
       when it fails everything rolls back, nothing is published and `report.fenced` is set.

    `active_since`: since when the caller has been firing without a break (see `_plan`).
    `shards`: only the jobs of these shards, each with its own `active_since`.
    """
    now = now or timeutil.now()
    limit = limit or settings.DKRON["FIRE_BATCH"]
    report = FireReport()
    due_jobs = Job.objects.filter(disabled=False, next_run__isnull=False, next_run__lte=now)
    if shards is not None:
        due_jobs = shards.filter(due_jobs)
    due = list(due_jobs.order_by("next_run")[:limit])
    calendars.attach(due)  # one query for the batch's calendars; none if no job has any
    moves: list[tuple[Job, datetime | None, int]] = []
    fires: list[Fire] = []
    for job in due:
        budget = limit - len(fires)
        if budget <= 0:
            report.more = True
            break
        try:
            since = active_since if shards is None else shards.since_of(job)
            times, missed, next_run = _plan(job, now, budget, since)
        except Exception:
            log.exception("job %s: cannot compute its schedule; not firing it", job.name)
            Job.objects.filter(pk=job.pk, next_run=job.next_run).update(
                next_run=None, next_scheduled=None
            )
            continue
        moves.append((job, next_run, missed))
        fires += [Fire(job=job, scheduled_at=t, trigger=trig) for t, trig in times]
        if next_run is not None and timing.fire_start(job, next_run) <= now:
            report.more = True
    if len(due) >= limit:
        report.more = True
    try:
        with transaction.atomic():
            claimed = _advance(moves)
            report.skipped_keys += len(moves) - len(claimed)
            report.missed += sum(missed for job, _, missed in moves if job.pk in claimed)
            chosen = [f for f in fires if f.job.pk in claimed]
            report.catchup_waiting = catchup_slots(chosen, now=now)
            runs = start_runs(chosen)
            if fence is not None and not fence():
                raise Fenced
    except Fenced:
        return FireReport(fenced=True)
    report.fired = len(runs)
    report.skipped_keys += sum(1 for f in fires if f.job.pk in claimed) - len(runs)
    report.runs = [r.pk for r in runs]
    return report


def _unpublished() -> Any:
    """Queued executions never published: through exec_unpublished_idx (rows never published
    and not finished), never the published backlog or the history.

    The status is compared to `(SELECT 'queued')`, a value the planner sees only when the
    statement runs: with a plain 'queued' it could prove exec_active_idx (status, node_name)
    usable too, and planner statistics, taken when few rows were queued, cost that index as
    one row whatever the backlog (it then read every queued row, on every tick)."""
    queued = RawSQL("SELECT %s", (str(ExecutionStatus.QUEUED),), output_field=CharField())
    return Execution.objects.filter(
        status=queued, published_at__isnull=True, finished_at__isnull=True, waiting=""
    )


def _waiting_catchups() -> Any:
    """Queued catch-up executions committed with a publish slot and not yet published.

    Read through exec_unpublished_idx (queued, never published, by not_before), which holds
    neither the history nor the published backlog; callers read it in not_before order and
    stop early (a MIN or MAX over the join with runs would read every waiting row)."""
    return _unpublished().filter(not_before__isnull=False, run__trigger=Run.Trigger.CATCHUP)


def catchup_slots(fires: list[Fire], *, now: datetime) -> int:
    """Give the catch-up fires publish slots CATCHUP_RATE apart, after the waiting ones.

    The slots are cluster-wide: they follow the latest slot already given (read from the
    database), so the backlog of several transactions, or of a previous leader, drains at the
    rate while on-time fires are published at once. CATCHUP_RATE 0 publishes them at once.
    """
    rate = float(settings.DKRON["CATCHUP_RATE"])
    catchups = sorted(
        (f for f in fires if f.trigger == Run.Trigger.CATCHUP),
        key=lambda f: f.scheduled_at or now,
    )
    if rate <= 0 or not catchups:
        return 0
    step = timedelta(seconds=1.0 / rate)
    last = _waiting_catchups().order_by("-not_before").values_list("not_before", flat=True).first()
    start = max(now, last + step) if last is not None else now
    for i, fire in enumerate(catchups):
        fire.not_before = start + step * i
    return len(catchups)


def catchup_backlog() -> int:
    """Catch-up executions waiting for their publish slot (the dashboard and /metrics)."""
    return int(_waiting_catchups().count())


def seconds_until_next_catchup(*, now: datetime | None = None) -> float | None:
    now = now or timeutil.now()
    nxt = _waiting_catchups().order_by("not_before").values_list("not_before", flat=True).first()
    if nxt is None:
        return None
    return max(0.0, (nxt - now).total_seconds())


def publish_due_catchups(*, limit: int, now: datetime | None = None) -> int:
    """Publish the waiting catch-up executions whose slot has come, oldest slot first, at most
    `limit` (the caller's rate budget); only the active scheduler calls this."""
    now = now or timeutil.now()
    if limit <= 0:
        return 0
    due = list(
        _waiting_catchups()
        .filter(not_before__lte=now)
        .select_related("run")
        .order_by("not_before", "pk")[:limit]
    )
    dispatch.publish_many(due)
    return len(due)


def publish_left_unpublished(
    *, now: datetime | None = None, chunk: int = 1000, shards: Shards | None = None
) -> int:
    """Publish the fires a previous scheduler committed and never published (a new leader's
    first act): queued executions of schedule, catch-up and backfill runs with no publish time
    and no publish slot of their own (catch-ups waiting for a slot are `publish_due_catchups`').

    Only schedulers create these runs, and the lease fence means the previous one cannot
    commit any more, so nobody else is about to publish them (a duplicate message would still
    be harmless: an agent runs an execution only from `queued`). With `shards`, only the
    executions of those shards' jobs: the other shards have live holders of their own.
    """
    now = now or timeutil.now()
    total = seen = 0
    unpublished = _unpublished()
    if shards is not None:
        unpublished = shards.filter(unpublished, "run__job_id")
    while True:
        batch = list(
            unpublished.filter(
                not_before__isnull=True,
                queued_at__lte=now,
                run__trigger__in=(Run.Trigger.SCHEDULE, Run.Trigger.CATCHUP, Run.Trigger.BACKFILL),
                pk__gt=seen,
            )
            .select_related("run")
            .order_by("pk")[:chunk]
        )
        if not batch:
            return total
        dispatch.publish_many(batch)
        total += len(batch)
        seen = batch[-1].pk


def seconds_until_next_due(
    *, now: datetime | None = None, shards: Shards | None = None
) -> float | None:
    now = now or timeutil.now()
    enabled = Job.objects.filter(disabled=False, next_run__isnull=False)
    if shards is not None:
        enabled = shards.filter(enabled)
    nxt = enabled.order_by("next_run").values_list("next_run", flat=True).first()
    if nxt is None:
        return None
    return max(0.0, (nxt - now).total_seconds())


def job_refresh_next(*, job: Job) -> None:
    """Recompute the next fire from now (used after a run of an @at job, or an admin repair)."""
    start, scheduled = timing.next_fields(job, compute_next_run(job, after=timeutil.now()))
    Job.objects.filter(pk=job.pk).update(next_run=start, next_scheduled=scheduled)
