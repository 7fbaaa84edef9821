"""Agent slots, concurrency keys and rate limits: which held executions may start, and when.

Two kinds of queued execution are held back, committed and unpublished, with `waiting` saying
why (issue 16):

- `slot`: a run for one of several agents (a tag count, or UNTAGGED_TARGET=one) when every
  matching agent's slots are taken (queued or running there). It has no node yet; the first
  agent to free a slot gets the oldest (`place_waiting`).
- `key`: an execution whose job has a concurrency key. Every keyed execution is held when
  created and admitted in fire order while its key has room (`admit`). Held, it is on no
  agent (a run for every matching node keeps its node in `queue`), so a key's waiting line
  never fills an agent's slots for other work; admitted, a run for one of several agents
  takes a live one with a free slot, or waits for a slot keeping its place under the key.

The limits are enforced by the claim, not by the admission: an agent claims a keyed
execution only under its key row's lock and only while fewer than `limit` of the key run and
fewer than the rate's count started inside its window (`claim_keyed`). Admissions keep the
messages in fire order and few; the claim makes two schedulers, a redelivered message or a
crashed agent unable to break a limit. A claim refused holds the execution again.

Slots and keys free up when an execution ends: the agent that ends one admits what its key
holds and places what waits for a slot (`after_finish`); the active scheduler does the same on
every tick (`tick`), which covers a dead agent's runs, closed by the sweep, and rate windows
that move on. Nothing here costs an unkeyed run on an agent with free slots a statement.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Min, Q

from jobs import concurrency, dispatch, timeutil
from jobs.models import ACTIVE_STATUSES, ConcurrencyKey, Execution, ExecutionStatus, Job
from jobs.services import agents as agent_services
from jobs.targeting import UNBOUNDED, NodeInfo, Target, matches, parse_tags

log = logging.getLogger("dkronweb.capacity")

WAIT_KEY = "key"
WAIT_SLOT = "slot"
# Held executions looked at per key admission or placement pass; the rest wait for the next.
BATCH = 1000


def job_key(job: Job) -> str:
    """The job's concurrency key as its runs hold it ("" for none or one that cannot render:
    the job was saved with a problem then, and its runs fail with it)."""
    if not job.concurrency_key:
        return ""
    try:
        return concurrency.render_key(job.concurrency_key, job.metadata)[: concurrency.MAX_KEY]
    except KeyError:
        return ""


def key_sync(*, job: Job) -> None:
    """Store the job's limits on its key's row (when it is saved, and when it fires): jobs
    sharing a key should declare the same limits; the key has those of the last one saved."""
    key = job_key(job)
    if not key:
        return
    values = {"limit": job.concurrency_limit, "rate_limit": job.rate_limit}
    updated = ConcurrencyKey.objects.filter(key=key).exclude(**values).update(**values)
    if updated or ConcurrencyKey.objects.filter(key=key).exists():
        return
    try:
        with transaction.atomic():
            ConcurrencyKey.objects.create(key=key, **values)
    except IntegrityError:
        ConcurrencyKey.objects.filter(key=key).update(**values)  # created meanwhile


def _lock(key: str) -> ConcurrencyKey | None:
    """Take the key row's lock for the rest of the transaction (an UPDATE: a row lock on
    PostgreSQL, the write lock on SQLite, where a SELECT ... FOR UPDATE would take none)."""
    assert transaction.get_connection().in_atomic_block
    # A no-op write (`updated_at` keeps saying when the limits last changed).
    if not ConcurrencyKey.objects.filter(key=key).update(limit=F("limit")):
        return None  # never declared through a save or a fire: its executions run unlimited
    return ConcurrencyKey.objects.get(key=key)


def _keyed(key: str) -> Any:
    return Execution.objects.filter(concurrency_key=key).order_by()


@dataclass(frozen=True)
class Usage:
    running: int  # claimed and not finished
    admitted: int  # published, not yet claimed (they hold their place under the limit)
    started_in_window: int  # starts inside the rate window (0 without a rate)
    rate: concurrency.Rate | None = None  # the key's rate, parsed once


def _usage(row: ConcurrencyKey, now: datetime) -> Usage:
    # exec_key_idx: the key's admitted (published, or waiting for a slot) and running rows.
    live = _keyed(row.key).filter(finished_at__isnull=True).exclude(waiting=WAIT_KEY)
    counts = live.aggregate(
        running=Count("pk", filter=Q(status=ExecutionStatus.RUNNING)),
        admitted=Count("pk", filter=Q(status=ExecutionStatus.QUEUED)),
    )
    started = 0
    rate = concurrency.parse_rate(row.rate_limit) if row.rate_limit else None
    if rate is not None:
        since = now - timedelta(seconds=rate.window)
        started = _keyed(row.key).filter(started_at__gt=since).count()
    return Usage(counts["running"] or 0, counts["admitted"] or 0, started, rate)


def _room(row: ConcurrencyKey, usage: Usage, *, claiming: bool) -> int:
    """How many more may start (claiming) or be admitted now."""
    held = usage.running if claiming else usage.running + usage.admitted
    room = UNBOUNDED
    if row.limit is not None:
        room = row.limit - held
    if usage.rate is not None:
        pending = 0 if claiming else usage.admitted
        room = min(room, usage.rate.count - usage.started_in_window - pending)
    return room


def claim_keyed(
    *, execution_id: int, key: str, claim: Any, now: datetime | None = None
) -> Execution | None:
    """Claim a keyed execution under its key's lock, or hold it again when the key is full.

    `claim` is the plain claim (queued -> running), called with the lock held; None when the
    execution is not this agent's to run (taken, killed, deleted, or held again here)."""
    now = now or timeutil.now()
    with transaction.atomic():
        row = _lock(key)
        if row is not None and _room(row, _usage(row, now), claiming=True) <= 0:
            # Full (another scheduler's admission, a redelivery, or a rate window): back to
            # the key's waiting line, where its place is its id, ahead of later fires.
            # Off its agent meanwhile (a run for every node keeps its node in `queue`).
            Execution.objects.filter(pk=execution_id, status=ExecutionStatus.QUEUED).update(
                waiting=WAIT_KEY, published_at=None, node_name=""
            )
            log.info("execution %s: key %r is at its limit; waiting", execution_id, key)
            return None
        claimed: Execution | None = claim()
        return claimed


def admit(keys: Iterable[str] | None = None, *, now: datetime | None = None) -> int:
    """Admit held executions of these keys (all keys with any held when None), oldest
    first, as far as each key's limit and rate allow; publish them on commit."""
    now = now or timeutil.now()
    if keys is None:
        keys = set(
            Execution.objects.filter(waiting=WAIT_KEY, finished_at__isnull=True)
            .order_by()
            .values_list("concurrency_key", flat=True)
            .distinct()
        )
    admitted = 0
    for key in sorted(set(keys)):
        with transaction.atomic():
            row = _lock(key)
            held = _keyed(key).filter(
                waiting=WAIT_KEY, status=ExecutionStatus.QUEUED, finished_at__isnull=True
            )
            held = held.filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            room = (
                BATCH if row is None else min(BATCH, _room(row, _usage(row, now), claiming=False))
            )
            if room <= 0:
                continue
            chosen = list(held.select_related("run").order_by("pk")[:room])
            if not chosen:
                continue
            ready = _place_admitted(chosen, now)
            dispatch.publish_on_commit(ready)
            admitted += len(chosen)
    return admitted


def _place_admitted(chosen: list[Execution], now: datetime) -> list[Execution]:
    """Give admitted executions their agent; returns those ready to publish.

    A run for every matching node goes to the node kept in its `queue`. A run for one of
    several takes the least busy matching live agent with a free slot (not the busiest
    agent of the moment it fired, nor one that died while it waited), or, when every one is
    full, waits for a slot: admitted, it keeps its place under the key meanwhile."""
    nodes: list[NodeInfo] | None = None
    free: dict[str, int] = {}
    ready = []
    for execution in chosen:
        waiting = ""
        if execution.placement != "any":
            node_name = dispatch.queue_node(execution.queue)
        else:
            if nodes is None:
                nodes = agent_services.alive_nodes(now=now)
                free = {n.name: n.free_slots for n in nodes}
            target = parse_tags(execution.run.snapshot.get("tags") or {})
            node = _least_busy(
                Target(required=target.required, count=1), nodes, free, _siblings(execution)
            )
            if node is None:
                node_name, waiting = "", WAIT_SLOT
            else:
                node_name = node.name
                free[node_name] -= 1
        queue = dispatch.node_queue(node_name) if node_name else ""
        Execution.objects.filter(pk=execution.pk, waiting=WAIT_KEY).update(
            node_name=node_name, queue=queue, waiting=waiting
        )
        execution.node_name, execution.queue, execution.waiting = node_name, queue, waiting
        if not waiting:
            ready.append(execution)
    return ready


def _siblings(execution: Execution) -> set[str]:
    """The nodes the run's other executions are on, when it asks for several (one per node)."""
    target = parse_tags(execution.run.snapshot.get("tags") or {})
    if (target.count or 1) <= 1:
        return set()
    return set(
        Execution.objects.filter(run_id=execution.run_id)
        .exclude(pk=execution.pk)
        .values_list("node_name", flat=True)
    )


def key_busy(key: str, *, now: datetime | None = None) -> bool:
    """Would an execution of this key wait now? (A forbid job's fire is skipped then.)"""
    row = ConcurrencyKey.objects.filter(key=key).first()
    if row is None:
        return False
    if _keyed(key).filter(waiting=WAIT_KEY, finished_at__isnull=True).exists():
        return True
    return _room(row, _usage(row, now or timeutil.now()), claiming=False) <= 0


def place_waiting(*, now: datetime | None = None) -> int:
    """Give the executions waiting for a slot, oldest first, to agents with a free slot."""
    waiters = list(
        Execution.objects.filter(
            waiting=WAIT_SLOT, status=ExecutionStatus.QUEUED, finished_at__isnull=True
        )
        .select_related("run")
        .order_by("pk")[:BATCH]
    )
    if not waiters:
        return 0
    nodes = agent_services.alive_nodes(now=now)
    free = {n.name: n.free_slots for n in nodes}
    ready: list[Execution] = []
    placed = 0
    with transaction.atomic():
        for execution in waiters:
            target = parse_tags(execution.run.snapshot.get("tags") or {})
            one = Target(required=target.required, count=1)
            node = _least_busy(one, nodes, free, _siblings(execution))
            if node is None:
                continue  # every matching agent is full: it waits on
            moved = Execution.objects.filter(
                pk=execution.pk, status=ExecutionStatus.QUEUED, waiting=WAIT_SLOT
            ).update(node_name=node.name, queue=dispatch.node_queue(node.name), waiting="")
            if not moved:
                continue
            free[node.name] -= 1
            placed += 1
            execution.node_name, execution.queue = node.name, dispatch.node_queue(node.name)
            execution.waiting = ""
            ready.append(execution)
        dispatch.publish_on_commit(ready)
    return placed


def _least_busy(
    target: Target, nodes: list[NodeInfo], free: dict[str, int], taken: set[str]
) -> NodeInfo | None:
    open_ = [n for n in nodes if free[n.name] > 0 and n.name not in taken and matches(n, target)]
    if not open_:
        return None

    def busy(n: NodeInfo) -> tuple[float, str]:  # per slot, counting this pass's placements
        return ((n.running + n.free_slots - free[n.name]) / max(n.slot_count, 1), n.name)

    return min(open_, key=busy)


def after_finish(*, key: str, slot_waiters: bool) -> None:
    """An execution ended on an agent: its key and its slot may let the next one start."""
    try:
        if key:
            admit([key])
        if slot_waiters:
            place_waiting()
    except Exception:  # the scheduler's tick does the same within a second or so
        log.warning("could not admit what waits after an execution ended", exc_info=True)


def anything_waiting() -> tuple[bool, bool]:
    """(slot waiters, key waiters), each one probe of exec_waiting_idx."""
    held = Execution.objects.filter(finished_at__isnull=True).order_by()
    return (
        held.filter(waiting=WAIT_SLOT).exists(),
        held.filter(waiting=WAIT_KEY).exists(),
    )


def tick(*, now: datetime | None = None) -> bool:
    """The active scheduler's pass: place and admit whatever may start now; True when
    executions were waiting (the scheduler comes back sooner then)."""
    slots, keys = anything_waiting()
    if slots:
        place_waiting(now=now)
    if keys:
        admit(now=now)
    return slots or keys


def rate_wait(*, now: datetime | None = None) -> float | None:
    """Seconds until the soonest full rate window of a key with held executions lets one
    more start (its oldest start leaves the window); None when no held one waits on a rate.

    The active scheduler comes back then rather than on its next CAPACITY_EVERY pass: a
    window frees a moment after a tick (the claims start a little after their admission),
    so waiting for the next pass would start a 5/s key 5 at a time every 1.5 s."""
    now = now or timeutil.now()
    keys = set(
        Execution.objects.filter(waiting=WAIT_KEY, finished_at__isnull=True)
        .order_by()
        .values_list("concurrency_key", flat=True)
        .distinct()
    )
    soonest: float | None = None
    for row in ConcurrencyKey.objects.filter(key__in=keys).exclude(rate_limit=""):
        rate = concurrency.parse_rate(row.rate_limit)
        assert rate is not None
        window = _keyed(row.key).filter(started_at__gt=now - timedelta(seconds=rate.window))
        found = window.aggregate(n=Count("pk"), oldest=Min("started_at"))
        if found["n"] < rate.count or found["oldest"] is None:
            continue  # the rate is not what holds this key back (its limit is, or nothing)
        wait = (found["oldest"] - now).total_seconds() + rate.window
        soonest = wait if soonest is None else min(soonest, wait)
    return None if soonest is None else max(0.0, soonest)


@dataclass(frozen=True)
class KeyState:
    key: str
    limit: int | None
    rate_limit: str
    running: int
    queued: int
    waiting: int


def declared_keys() -> set[str]:
    """The keys the jobs declare now, rendered (one read of the jobs that have one)."""
    jobs = Job.objects.exclude(concurrency_key="").only("concurrency_key", "metadata")
    return {key for job in jobs if (key := job_key(job))}


def key_states(keys: Iterable[str] | None = None) -> list[KeyState]:
    """Keys with their limits and what runs, is published and waits under each: these
    `keys`, or every key a job declares or an unfinished execution still holds (a key no job
    names any more is listed until its last execution ends, then no more)."""
    rows = list(ConcurrencyKey.objects.order_by("key"))
    if keys is not None:
        wanted = set(keys)
        rows = [row for row in rows if row.key in wanted]
    counts: dict[str, dict[str, Any]] = {}
    live = (
        Execution.objects.filter(~Q(concurrency_key=""), finished_at__isnull=True)
        .filter(status__in=ACTIVE_STATUSES)
        .order_by()
        .values("concurrency_key")
        .annotate(
            running=Count("pk", filter=Q(status=ExecutionStatus.RUNNING)),
            queued=Count("pk", filter=Q(status=ExecutionStatus.QUEUED, waiting="")),
            waiting=Count("pk", filter=Q(status=ExecutionStatus.QUEUED) & ~Q(waiting="")),
        )
    )
    if keys is not None:
        live = live.filter(concurrency_key__in=list(wanted))
    for entry in live:
        counts[entry["concurrency_key"]] = dict(entry)
    if keys is None:
        shown = declared_keys() | set(counts)
        rows = [row for row in rows if row.key in shown]
    return [
        KeyState(
            key=row.key,
            limit=row.limit,
            rate_limit=row.rate_limit,
            running=counts.get(row.key, {}).get("running", 0),
            queued=counts.get(row.key, {}).get("queued", 0),
            waiting=counts.get(row.key, {}).get("waiting", 0),
        )
        for row in rows
    ]
