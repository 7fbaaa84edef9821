"""The scheduler's sweep: close runs of dead agents, republish lost messages, move orphans.

Redis keeps nothing on disk and agents can die mid-run; this sweep is what guarantees that no
execution stays `queued` or `running` forever. It runs on the active scheduler only.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q

from jobs import dispatch, timeutil
from jobs.models import Agent, Execution, ExecutionStatus
from jobs.services import agents as agent_services
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


def _close_dead_runs(now: datetime, report: SweepReport) -> None:
    # The agents' rule (AGENT_DEAD_AFTER), stretched after a database outage: see alive_cutoff.
    stale = Execution.objects.filter(
        status=ExecutionStatus.RUNNING, heartbeat_at__lt=agent_services.alive_cutoff(now)
    )
    local = agent_services.local_agent()
    if local is not None:
        # Runs of the agent in this process are alive while it is (agent_local_started);
        # what a previous instance of it left, it closed when it started (close_orphaned_runs).
        stale = stale.exclude(node_name=local.name)
    for pk, node in stale.values_list("pk", "node_name"):
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


def _move_from_gone(now: datetime, report: SweepReport, alive: dict[str, NodeInfo]) -> None:
    """Queued work of agents that are dead, leaving or gone moves now, not after
    QUEUED_REPUBLISH_AFTER: "any" placements to a live matching agent, "node" ones (that
    node was the point) fail at once with the reason."""
    stranded = list(
        Execution.objects.filter(status=ExecutionStatus.QUEUED)
        .exclude(node_name__in=list(alive))
        .select_related("run")[:1000]
    )
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
                    countdown = 0.0
                    if execution.not_before is not None and execution.not_before > now:
                        countdown = (execution.not_before - now).total_seconds()
                    dispatch.publish(execution, countdown=countdown)
                    report.moved += 1
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


def _recover_queued(now: datetime, report: SweepReport) -> None:
    republish_after = timedelta(seconds=settings.DKRON["QUEUED_REPUBLISH_AFTER"])
    alive = {n.name: n for n in agent_services.alive_nodes(now=now)}
    _move_from_gone(now, report, alive)
    _purge_gone_queues(now, report, alive)
    lost = list(
        Execution.objects.filter(status=ExecutionStatus.QUEUED, node_name__in=list(alive))
        .filter(Q(published_at__lt=now - republish_after) | Q(published_at__isnull=True))
        .filter(queued_at__lt=now - timedelta(seconds=5))
        .filter(Q(not_before__isnull=True) | Q(not_before__lt=now - republish_after))
        .select_related("run")[:1000]
    )
    for execution in lost:
        dispatch.publish(execution)
    if lost:
        report.republished += len(lost)
        counter_add("scheduler_republished:sweep", len(lost))
        log.warning(
            "republished %d queued execution(s) whose message was lost (queued over %ss)",
            len(lost),
            settings.DKRON["QUEUED_REPUBLISH_AFTER"],
        )


def sweep(*, now: datetime | None = None) -> SweepReport:
    now = now or timeutil.now()
    report = SweepReport()
    _close_dead_runs(now, report)
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
