"""Agent membership: registration, heartbeats, leaving, and who is alive."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q
from django.db.models.expressions import RawSQL

from jobs import timeutil
from jobs.models import ACTIVE_STATUSES, Agent, Execution, ExecutionStatus
from jobs.targeting import NodeInfo

# The tag of a member that only schedules: listed in /v1/members (and can be /v1/leader),
# never given work, not counted as an agent.
ROLE_TAG = "dkronweb_role"
SCHEDULER_ROLE = "scheduler"


def is_scheduler_only(tags: dict[str, Any] | None) -> bool:
    return (tags or {}).get(ROLE_TAG) == SCHEDULER_ROLE


def builtin_tags(*, server: bool = True) -> dict[str, str]:
    """Dkron's built-in node tags, so `"server": "true:1"` and `role=dkron` work unchanged."""
    tags: dict[str, str] = {
        "role": "dkron",
        "dc": settings.DKRON["DC"],
        "region": settings.DKRON["REGION"],
        "version": settings.VERSION,
    }
    if server:
        tags["server"] = "true"
    return tags


def agent_register(
    *,
    name: str,
    instance_id: str,
    tags: dict[str, str],
    address: str = "",
    port: int = 0,
    concurrency: int = 1,
    slots: int = 0,
) -> Agent:
    now = timeutil.now()
    agent, _ = Agent.objects.update_or_create(
        name=name,
        defaults={
            "instance_id": instance_id,
            "tags": tags,
            "address": address,
            "port": port,
            "version": settings.VERSION,
            "concurrency": concurrency,
            "slots": slots,
            "running": 0,
            "started_at": now,
            "last_heartbeat": now,
            "left": False,
            "leaving": False,
            "metrics": {},  # a new instance counts from zero
        },
    )
    return agent


def scheduler_register(*, name: str, instance_id: str) -> Agent:
    """Register a scheduler-only process as a member (Dkron's leader is always a member).

    Dkron's built-in tags (a Dkron leader is a server) plus `dkronweb_role=scheduler`; a
    concurrency of 0, and `alive_nodes` leaves it out, so it is never given work.
    """
    tags = {**builtin_tags(server=True), ROLE_TAG: SCHEDULER_ROLE}
    return agent_register(name=name, instance_id=instance_id, tags=tags, concurrency=0)


def agent_heartbeat(
    *, name: str, instance_id: str, running: int, metrics: dict[str, Any] | None = None
) -> bool:
    """Refresh the heartbeat; False if another instance took the name (re-register then).

    `metrics`, the agent's metrics snapshot (jobs.telemetry), is stored by the same UPDATE;
    None leaves the stored one as it is.
    """
    fields: dict[str, Any] = {"last_heartbeat": timeutil.now(), "running": running, "left": False}
    if metrics is not None:
        fields["metrics"] = metrics
    return bool(Agent.objects.filter(name=name, instance_id=instance_id).update(**fields))


def agent_leave(*, name: str, instance_id: str = "") -> int:
    """The agent has stopped and finished its work: `left`."""
    qs = Agent.objects.filter(name=name)
    if instance_id:
        qs = qs.filter(instance_id=instance_id)
    return qs.update(left=True, leaving=False, running=0)


def agent_leaving(*, name: str, instance_id: str) -> int:
    """The agent is stopping: no new work from now on, it finishes what it runs (`leaving`)."""
    return Agent.objects.filter(name=name, instance_id=instance_id).update(
        leaving=True, last_heartbeat=timeutil.now()
    )


def agent_died(*, name: str, instance_id: str) -> int:
    """The agent is known dead (its reaper saw it die): `failed` at once, not after
    AGENT_DEAD_AFTER, so no placement picks it and the sweep moves its queued work now."""
    return Agent.objects.filter(name=name, instance_id=instance_id, left=False).update(
        last_heartbeat=None, leaving=False, running=0
    )


def slots_used() -> dict[str, int]:
    """Running executions per agent, from the database (one grouped read of exec_active_idx's
    running rows, which the agents' slots bound): the `used` of each agent's slots."""
    rows = (
        Execution.objects.filter(status=ExecutionStatus.RUNNING)
        .order_by()
        .values_list("node_name")
        .annotate(n=Count("pk"))
    )
    return {name: n for name, n in rows}


def slot_count(agent: Agent) -> int:
    """The agent's slots: `--slots`, else its pool concurrency (0 for a scheduler member)."""
    return agent.slots or agent.concurrency


def running_on(name: str) -> int:
    """Executions the database says are running on this agent."""
    return Execution.objects.filter(node_name=name, status=ExecutionStatus.RUNNING).count()


@dataclass(frozen=True)
class LocalAgent:
    """The agent running in this process (the embedded default: `manage.py serve`)."""

    name: str
    instance_id: str
    pid: int


_local: LocalAgent | None = None


def agent_local_started(*, name: str, instance_id: str) -> None:
    """Note that this process runs the agent `name`, so it is alive while the process is.

    In the one-process default the scheduler judges the agent that shares its process. A
    heartbeat is evidence that another process lives; here the scheduler asking is itself the
    evidence. A busy process (a long request holding the GIL, or the database's write lock)
    ages the heartbeat without the agent being gone, and the scheduler then failed every fire
    with "no target nodes found". The pid guards against a forked child (celery's embedded
    beat under prefork) inheriting the note for a parent it cannot vouch for.
    """
    global _local
    _local = LocalAgent(name=name, instance_id=instance_id, pid=os.getpid())


def agent_local_stopped() -> None:
    """The in-process agent stopped: from now on its heartbeat decides, as for any agent."""
    global _local
    _local = None


def local_agent() -> LocalAgent | None:
    """The agent running in this very process, if any."""
    return _local if _local is not None and _local.pid == os.getpid() else None


def _is_local(agent: Agent) -> bool:
    local = local_agent()
    return local is not None and (agent.name, agent.instance_id) == (
        local.name,
        local.instance_id,
    )


@dataclass
class _Outage:
    """The last database outage seen by this process (the scheduler, which judges liveness)."""

    last_ok: datetime | None = None  # the last time the database answered before it
    recovered: datetime | None = None  # when it answered again (None: not yet)


_outage = _Outage()


def _in_grace(now: datetime, dead_after: timedelta) -> bool:
    return _outage.last_ok is not None and (
        _outage.recovered is None or now < _outage.recovered + dead_after
    )


def database_unreachable(*, last_ok: datetime, now: datetime | None = None) -> None:
    """Note that the database stopped answering (after answering at `last_ok`).

    Agents cannot write heartbeats while the database is down, so when it comes back every
    agent looks dead until it writes the next one, and the scheduler would fail fires with
    "no target nodes" and close live runs as "agent stopped responding". Until AGENT_DEAD_AFTER
    has passed since the database came back, a heartbeat that was fresh when it went away
    still counts (see `alive_cutoff`). An outage within that grace extends it.
    """
    dead_after = timedelta(seconds=settings.DKRON["AGENT_DEAD_AFTER"])
    if not _in_grace(now or timeutil.now(), dead_after):
        _outage.last_ok = last_ok
    _outage.recovered = None


def database_reachable(*, now: datetime | None = None) -> None:
    """Note that the database answers again (ends an outage noted by database_unreachable)."""
    if _outage.last_ok is not None and _outage.recovered is None:
        _outage.recovered = now or timeutil.now()


def alive_cutoff(now: datetime | None = None) -> datetime:
    """Heartbeats older than this are dead: AGENT_DEAD_AFTER ago, of reachable database time."""
    now = now or timeutil.now()
    dead_after = timedelta(seconds=settings.DKRON["AGENT_DEAD_AFTER"])
    cutoff = now - dead_after
    if _in_grace(now, dead_after):
        assert _outage.last_ok is not None
        cutoff = min(cutoff, _outage.last_ok - dead_after)
    return cutoff


def agent_state(agent: Agent, *, now: datetime | None = None) -> str:
    """Dkron's statusText: alive, leaving (stopping, finishing its runs), failed (heartbeat
    too old, or its reaper reported it dead) or left."""
    if agent.left:
        return "left"
    if _is_local(agent):
        return "leaving" if agent.leaving else "alive"
    if agent.last_heartbeat is None or agent.last_heartbeat < alive_cutoff(now):
        return "failed"
    return "leaving" if agent.leaving else "alive"


# The placement load of an agent counts its queued and running executions up to this many
# per slot of its concurrency. Every fire batch asks, so an uncapped count read the whole
# backlog each time (100,000 queued rows: 100,000 index entries per batch of fires); capped,
# the cost is bounded by the agents' slots, whatever the backlog. Agents past the cap are
# ranked as equally busy per slot, and `start_runs` gives them work in turn.
LOAD_CAP_PER_SLOT = 500


def _capped_load() -> RawSQL:
    """Per agent row: its queued and running executions (exec_active_idx), at most
    LOAD_CAP_PER_SLOT x concurrency of them (a LIMIT inside the count, which the ORM cannot
    write). SQLite refuses a LIMIT that refers to the outer row: there (the embedded mode,
    one agent, a small backlog) the count is exact."""
    ex, agent = Execution._meta.db_table, Agent._meta.db_table
    limit, cap = "", []
    if connection.vendor == "postgresql":
        limit, cap = f' LIMIT %s * "{agent}"."concurrency"', [LOAD_CAP_PER_SLOT]
    sql = (
        f'SELECT COUNT(*) FROM (SELECT 1 FROM "{ex}" e WHERE e."status" IN (%s, %s) '
        f'AND e."node_name" = "{agent}"."name"{limit}) capped'
    )
    return RawSQL(sql, (*(str(s) for s in ACTIVE_STATUSES), *cap))


def alive_nodes(*, now: datetime | None = None) -> list[NodeInfo]:
    """The live agents, each with its load: the executions queued for or running on it.

    A leaving agent (stopping) is not alive here: it gets no new work from the moment it
    said so. Only agents: scheduler-only members are left out, so no placement, retry or move of an
    orphaned run (all of which choose from this list) can pick one, whatever a job's tags.

    The load is counted in the database, not taken from the heartbeat: a prefork agent's
    heartbeat thread lives in the parent process and cannot see what its pool children run,
    so it reports 0 and "least busy first" would send all the work to the first agent by name.
    It is counted up to LOAD_CAP_PER_SLOT per slot, so the cost does not grow with the backlog.
    """
    alive = Q(last_heartbeat__gte=alive_cutoff(now))
    local = local_agent()
    if local is not None:  # alive while this process is: see agent_local_started
        alive |= Q(name=local.name, instance_id=local.instance_id)
    queue_per_slot = int(settings.DKRON["SLOT_QUEUE"])
    rows = list(
        Agent.objects.filter(alive, left=False, leaving=False)
        .annotate(load=_capped_load())
        .values("name", "tags", "running", "concurrency", "slots", "load")
    )
    return [
        NodeInfo(
            name=r["name"],
            tags={k: str(v) for k, v in (r["tags"] or {}).items()},
            running=max(r["running"], r["load"] or 0),
            concurrency=r["concurrency"],
            slots=r["slots"],
            queue_per_slot=queue_per_slot,
        )
        for r in rows
        if not is_scheduler_only(r["tags"])  # members that only schedule run nothing
    ]
