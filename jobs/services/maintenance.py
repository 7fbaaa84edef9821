"""The scheduler's sweep: close runs of dead agents, republish lost messages, move orphans.

Redis keeps nothing on disk and agents can die mid-run; this sweep is what guarantees that no
execution stays `queued` or `running` forever. It runs on the active scheduler only.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Q
from django.db.models.expressions import RawSQL

from jobs import broker, dispatch, timeutil
from jobs.models import ACTIVE_STATUSES, Agent, Execution, ExecutionStatus
from jobs.services import agents as agent_services
from jobs.services import capacity
from jobs.services.counters import counter_add
from jobs.services.executions import execution_finish
from jobs.targeting import NodeInfo, parse_tags, select_nodes

log = logging.getLogger("dkronweb.maintenance")


@dataclass
class SweepReport:
    closed: int = 0
    republished: int = 0
    moved: int = 0
    failed: int = 0
    purged: int = 0
    keys: set[str] = field(default_factory=set)  # keys whose runs the sweep closed


def _close_dead_runs(now: datetime, report: SweepReport) -> None:
    # The agents' rule (AGENT_DEAD_AFTER), stretched after a database outage: see alive_cutoff.
    # No ordering: the model's (-id) would let the planner walk the primary key, the whole
    # table, instead of the running rows of exec_active_idx.
    stale = Execution.objects.filter(
        status=ExecutionStatus.RUNNING, heartbeat_at__lt=agent_services.alive_cutoff(now)
    ).order_by()
    local = agent_services.local_agent()
    if local is not None:
        # Runs of the agent in this process are alive while it is (agent_local_started);
        # what a previous instance of it left, it closed when it started (close_orphaned_runs).
        stale = stale.exclude(node_name=local.name)
    for pk, node, key in stale.values_list("pk", "node_name", "concurrency_key"):
        if key:
            report.keys.add(key)  # its slot under the key is free now
        retry = execution_finish(
            execution_id=pk,
            status=ExecutionStatus.FAILED,
            output=f"agent {node} stopped responding while running this execution\n",
            reason=f"agent {node} died",
        )
        report.closed += 1
        log.warning("execution %s: agent %s stopped responding; closed as failed", pk, node)
        if retry is not None:
            delay = max(0.0, ((retry.not_before or now) - now).total_seconds())
            dispatch.publish_on_commit(retry, countdown=delay)


def _gone_reason(agents: dict[str, Agent], node: str, now: datetime) -> str:
    agent = agents.get(node)
    if agent is None:
        return f"node {node} is gone"
    state = agent_services.agent_state(agent, now=now)
    return {"leaving": f"agent {node} is leaving", "left": f"agent {node} left"}.get(
        state, f"agent {node} died"
    )


def _queued_nodes() -> set[str]:
    """The node names that have queued executions, one index probe per name.

    A loose index scan of exec_active_idx (status, node_name): each step asks for the first
    name after the previous one, so the cost is the number of names (agents, live or gone),
    not the number of queued rows. It finds queued work of nodes with no Agent row at all
    too, which a walk from the Agent table would miss. The condition of exec_active_idx is
    repeated so that SQLite, which proves a partial index usable only from the same terms,
    takes it as well."""
    table = connection.ops.quote_name(Execution._meta.db_table)
    active = f'{table}."status" = %s AND {table}."status" IN (%s, %s)'
    first = f'SELECT "node_name" FROM {table} WHERE {active} ORDER BY "node_name" LIMIT 1'
    after = (
        f'SELECT "node_name" FROM {table} WHERE {active} AND "node_name" > nodes.name '
        'ORDER BY "node_name" LIMIT 1'
    )
    sql = (
        f"WITH RECURSIVE nodes(name) AS (SELECT ({first}) UNION ALL SELECT ({after}) "
        "FROM nodes WHERE nodes.name IS NOT NULL) SELECT name FROM nodes WHERE name IS NOT NULL"
    )
    statuses = [str(ExecutionStatus.QUEUED), *(str(s) for s in ACTIVE_STATUSES)]
    with transaction.atomic(), connection.cursor() as cursor:
        saved = _planner_without_sorts(cursor)
        try:
            cursor.execute(sql, statuses * 2)
            return {row[0] for row in cursor.fetchall()}
        finally:
            _planner_restore(cursor, saved)


_PLANNER_KNOBS = ("enable_sort", "enable_bitmapscan")


def _planner_without_sorts(cursor: Any) -> list[str]:
    """On PostgreSQL, make an ordered index scan the only cheap plan for the statement.

    Each probe of the loose scan is `ORDER BY node_name LIMIT 1` over the queued rows after a
    name: with statistics taken while few rows were queued (autovacuum analyzes after a tenth
    of the table changed), a bitmap scan and a sort of "one row" look as cheap as walking the
    index, and that plan reads every queued row after the name. With sorts and bitmap scans
    off for this transaction only, the walk is the plan. Returns the settings to restore (an
    enclosing transaction, as in the tests, would keep a SET LOCAL past this statement)."""
    if connection.vendor != "postgresql":
        return []
    cursor.execute("SELECT " + ", ".join(f"current_setting('{k}')" for k in _PLANNER_KNOBS))
    saved = list(cursor.fetchone())
    cursor.execute("SELECT " + ", ".join(f"set_config('{k}', 'off', true)" for k in _PLANNER_KNOBS))
    return saved


def _planner_restore(cursor: Any, saved: list[str]) -> None:
    if saved:
        knobs = ", ".join(f"set_config('{k}', %s, true)" for k in _PLANNER_KNOBS)
        cursor.execute("SELECT " + knobs, saved)


def _rows(ids: list[int]) -> list[Execution]:
    """The executions with their runs (publish needs the snapshot), each table read by
    primary key: a join, in this statement or the one that chose the rows, lets statistics
    that say the tables are small pick a nested loop that walks the whole runs table."""
    if not ids:
        return []
    return list(Execution.objects.filter(pk__in=ids).prefetch_related("run").order_by())


def _move_from_gone(
    now: datetime, report: SweepReport, alive: dict[str, NodeInfo], stranded_nodes: set[str]
) -> None:
    """Queued work of agents that are dead, leaving or gone moves now, not after
    QUEUED_REPUBLISH_AFTER: "any" placements to a live matching agent, "node" ones (that
    node was the point) fail at once with the reason.

    `stranded_nodes` are the names with queued work that are not alive (`_queued_nodes`), so
    the rows read are theirs alone, through exec_active_idx: the live agents' backlog, however
    long, is never read here."""
    stranded_nodes = stranded_nodes - {""}  # runs waiting for a slot have no node yet
    if not stranded_nodes:
        return
    ids: list[int] = []
    for name in sorted(stranded_nodes):
        # One node at a time: an equality on both columns of exec_active_idx is a bounded
        # index read; an IN list on the second column is planned as a filter over every
        # queued row.
        ids += (
            Execution.objects.filter(status=ExecutionStatus.QUEUED, node_name=name)
            .order_by()[: 1000 - len(ids)]
            .values_list("pk", flat=True)
        )
        if len(ids) >= 1000:
            break
    stranded = _rows(ids)
    if not stranded:
        return
    agents = {a.name: a for a in Agent.objects.filter(name__in={e.node_name for e in stranded})}
    for execution in stranded:
        gone = _gone_reason(agents, execution.node_name, now)
        if execution.placement == "any":
            target = parse_tags(execution.run.snapshot.get("tags") or {})
            nodes = select_nodes(type(target)(required=target.required, count=1), alive.values())
            if nodes:
                node = nodes[0].name
                moved = Execution.objects.filter(
                    pk=execution.pk, status=ExecutionStatus.QUEUED, node_name=execution.node_name
                ).update(node_name=node, queue=dispatch.node_queue(node))
                if moved:
                    log.warning(
                        "execution %s: %s before it started this run; moved to %s",
                        execution.pk,
                        gone,
                        node,
                    )
                    execution.node_name, execution.queue = node, dispatch.node_queue(node)
                    report.moved += 1
                    if execution.waiting:
                        continue  # held for its key: published when admitted, to its new node
                    countdown = 0.0
                    if execution.not_before is not None and execution.not_before > now:
                        countdown = (execution.not_before - now).total_seconds()
                    dispatch.publish(execution, countdown=countdown)
                continue
        output = f"{gone} before it started this run; no matching live agent took it\n"
        if execution.placement != "any":
            output = f"{gone} before it started this run (the run was for that node)\n"
        execution_finish(
            execution_id=execution.pk,
            status=ExecutionStatus.FAILED,
            output=output,
            reason=f"{gone} before it started this run",
            retryable=False,
        )
        log.warning("execution %s: %s", execution.pk, output.strip())
        report.failed += 1


# The node queues this scheduler process has purged: name -> (instance id, state).
_purged: dict[str, tuple[str, str]] = {}


def purge_node_queue(name: str) -> int:
    """Drop the messages waiting in an agent's node queue (a passive declare first: on
    RabbitMQ a purge of a missing queue is an error). Works on Redis and RabbitMQ."""
    from celery import current_app as app
    from kombu import Queue

    with app.connection_for_write() as conn:
        channel = conn.channel()
        try:
            queue: Any = Queue(dispatch.node_queue(name), channel=channel, no_declare=True)
            try:
                queue.queue_declare(passive=True)
            except conn.channel_errors:  # type: ignore[attr-defined]
                return 0  # never declared: nothing waits in it
            return int(queue.purge() or 0)
        finally:
            with contextlib.suppress(Exception):
                channel.close()


def _purge_gone_queues(now: datetime, report: SweepReport, alive: dict[str, NodeInfo]) -> None:
    """Once an agent is known dead, leaving or left, its node queue is drained: its queued
    rows moved (or failed) above, so what waits there is stale, and a restarted agent of the
    same name must not run it again."""
    for agent in Agent.objects.exclude(name__in=list(alive)).defer("metrics"):
        if agent_services.is_scheduler_only(agent.tags):
            continue
        key = (agent.instance_id, agent_services.agent_state(agent, now=now))
        if key[1] == "alive" or _purged.get(agent.name) == key:
            continue
        try:
            purged = purge_node_queue(agent.name)
        except Exception:
            log.warning("could not purge the queue of agent %s", agent.name, exc_info=True)
            continue
        _purged[agent.name] = key
        report.purged += purged
        if purged:
            log.warning(
                "agent %s is %s: purged %d stale message(s) from its queue %s",
                agent.name,
                key[1],
                purged,
                dispatch.node_queue(agent.name),
            )


# Republished per sweep at most; a larger loss is taken over the next sweeps.
REPUBLISH_BATCH = 1000
# A node queue holding this many messages or more is draining, not lost: the sweep reads none
# of its rows (the lost ones behind it, if any, are found once it is shallower than this).
DEEP_QUEUE = REPUBLISH_BATCH


def _queued(**filters: Any) -> Any:
    """Queued executions, the status compared to `(SELECT 'queued')`: a value the planner
    sees only when the statement runs, so it cannot pick exec_active_idx (status, node_name),
    which planner statistics cost as one row and which holds a node's whole backlog, over the
    index the caller's other conditions select (as jobs.services.runs._unpublished)."""
    queued = RawSQL("SELECT %s", (str(ExecutionStatus.QUEUED),), output_field=CharField())
    return Execution.objects.filter(status=queued, finished_at__isnull=True, **filters)


def _never_published(now: datetime, alive: dict[str, NodeInfo], limit: int) -> list[Execution]:
    """Queued executions of live agents that were committed and never published (a publish
    that failed after the commit): no message of theirs can be waiting anywhere. Read
    through exec_unpublished_idx by not_before, which leaves out catch-ups whose publish slot
    is still to come and never holds the published backlog."""
    cutoff = now - timedelta(seconds=settings.DKRON["QUEUED_REPUBLISH_AFTER"])
    return _rows(
        list(
            _queued(published_at__isnull=True, node_name__in=list(alive), waiting="")
            .filter(Q(not_before__isnull=True) | Q(not_before__lt=cutoff))
            .filter(queued_at__lt=now - timedelta(seconds=5))
            .order_by()
            .values_list("pk", flat=True)[:limit]
        )
    )


def _reserved_by(node: NodeInfo) -> int:
    """Messages the node's agent may hold taken off its queue and not started: Celery
    prefetches up to concurrency x CELERY_WORKER_PREFETCH_MULTIPLIER of them, and a reserved
    message is in no queue depth (neither Redis' LLEN nor RabbitMQ's ready count). An agent
    with a free slot starts what it reserves at once, so only a busy agent holds any.
    (Messages held for their ETA are left out by the callers' not_before condition.)"""
    if agent_services.running_on(node.name) < node.concurrency:
        return 0
    multiplier = int(getattr(settings, "CELERY_WORKER_PREFETCH_MULTIPLIER", 4) or 1)
    return node.concurrency * multiplier


def _lost_on(
    node: NodeInfo, depth: int, *, read_at: datetime, now: datetime, limit: int
) -> list[Execution]:
    """The node's queued executions whose message is lost, given its queue's depth.

    Messages leave a queue in the order they were published (the sweep never republishes
    into a queue that is not short), so the `depth` messages waiting are those of the node's
    most recently published queued executions, and the next ones (up to `_reserved_by`) may be
    in the agent's hands; every older queued execution of the node has no message any more.
    The rows are read newest publish first past those (exec_published_idx), so the cost is
    the queue's depth plus the batch, bounded by DEEP_QUEUE, whatever the backlog. Stale
    messages in the queue (a run finished before its message came) only make this believe
    fewer are lost: they are found once the queue drains. Rows published after the depth was
    read are not counted (their messages were not in it); ETA messages (retries waiting for
    their not_before) are held by the agent, not in the queue, so those rows are left out
    until QUEUED_REPUBLISH_AFTER past their time."""
    cutoff = now - timedelta(seconds=settings.DKRON["QUEUED_REPUBLISH_AFTER"])
    skip = depth + _reserved_by(node)
    rows = (
        _queued(node_name=node.name, published_at__isnull=False, published_at__lt=read_at)
        .filter(Q(not_before__isnull=True) | Q(not_before__lt=cutoff))
        .order_by("-published_at", "-id")
        .values_list("pk", "published_at", "queued_at")[skip : skip + limit]
    )
    early = now - timedelta(seconds=5)
    return _rows([pk for pk, published, queued in rows if published < cutoff and queued < early])


def _queue_depths(nodes: list[NodeInfo]) -> dict[str, int]:
    """The depth of each node's queue; 0 for all when the broker cannot say (a transport this
    does not read, or a broker that does not answer): then the sweep republishes as it did
    before it read depths, so a lost message is never kept waiting on a reading."""
    queues = {n.name: dispatch.node_queue(n.name) for n in nodes}
    try:
        depths = broker.queue_depths(queues.values(), discover=False)
    except Exception as exc:
        log.warning("could not read the agents' queue depths (%s); taking them as empty", exc)
        depths = None
    return {name: (depths or {}).get(queue, 0) for name, queue in queues.items()}


def _recover_queued(now: datetime, report: SweepReport) -> None:
    """Move the work of gone agents, drain their queues, and republish lost messages.

    1. The names with queued work come from a loose index scan (`_queued_nodes`); those not
       alive are stranded and move or fail at once (`_move_from_gone`).
    2. Executions committed and never published are republished (`_never_published`).
    3. For each live agent with queued work, its queue's depth says which of its queued
       executions still have a message (`_lost_on`): a long queue is a backlog, not a loss,
       and is left alone; a queue emptied behind the database's back (a broker restart, a
       FLUSHDB) leaves its executions republished one QUEUED_REPUBLISH_AFTER after their
       publish, on the next sweep.

    Run messages go to the node's queue only (Execution.queue is dispatch.node_queue of its
    node, and moves with it): the default queue carries notifications, not runs, so it has
    no part in this.
    """
    alive = {n.name: n for n in agent_services.alive_nodes(now=now)}
    queued_nodes = _queued_nodes()
    _move_from_gone(now, report, alive, queued_nodes - set(alive))
    _purge_gone_queues(now, report, alive)
    unpublished = _never_published(now, alive, REPUBLISH_BATCH)
    lost: list[Execution] = []
    busy = [alive[name] for name in sorted(queued_nodes & set(alive))]
    read_at = timeutil.now()
    depths = _queue_depths(busy) if busy else {}
    for node in busy:
        left = REPUBLISH_BATCH - len(unpublished) - len(lost)
        depth = depths[node.name]
        if depth >= DEEP_QUEUE:
            log.debug("agent %s: %d message(s) wait in its queue; left to drain", node.name, depth)
            continue
        if left <= 0:
            break
        found = _lost_on(node, depth, read_at=read_at, now=now, limit=left)
        if found:
            log.warning(
                "agent %s: %d queued execution(s) published over %ss ago have no message in "
                "its queue %s (%d waiting there); republishing them",
                node.name,
                len(found),
                settings.DKRON["QUEUED_REPUBLISH_AFTER"],
                dispatch.node_queue(node.name),
                depth,
            )
        lost += found
    if unpublished:
        log.warning(
            "republishing %d queued execution(s) of live agents that were never published",
            len(unpublished),
        )
    for execution in unpublished + lost:
        dispatch.publish(execution)
    republished = len(unpublished) + len(lost)
    if republished:
        report.republished += republished
        counter_add("scheduler_republished:sweep", republished)


def sweep(*, now: datetime | None = None) -> SweepReport:
    now = now or timeutil.now()
    report = SweepReport()
    _close_dead_runs(now, report)
    if report.keys:  # a dead agent's slots under its keys go to what waits for them now
        capacity.admit(report.keys, now=now)
    _recover_queued(now, report)
    if report.closed or report.moved or report.failed or report.purged:
        log.info(
            "sweep: closed %d run(s) of dead agents, moved %d, failed %d, republished %d, "
            "purged %d stale message(s)",
            report.closed,
            report.moved,
            report.failed,
            report.republished,
            report.purged,
        )
    return report
