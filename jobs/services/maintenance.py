"""The scheduler's sweep: close runs of dead agents, republish lost messages, move orphans.

Redis keeps nothing on disk and agents can die mid-run; this sweep is what guarantees that no
execution stays `queued` or `running` forever. It runs on the active scheduler only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from jobs import dispatch, timeutil
from jobs.models import Execution, ExecutionStatus
from jobs.services import agents as agent_services
from jobs.services.executions import execution_finish
from jobs.targeting import parse_tags, select_nodes

log = logging.getLogger("dkronweb.maintenance")


@dataclass
class SweepReport:
    closed: int = 0
    republished: int = 0
    moved: int = 0
    failed: int = 0


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


def _recover_queued(now: datetime, report: SweepReport) -> None:
    republish_after = timedelta(seconds=settings.DKRON["QUEUED_REPUBLISH_AFTER"])
    alive = {n.name: n for n in agent_services.alive_nodes(now=now)}
    lost = (
        Execution.objects.filter(status=ExecutionStatus.QUEUED)
        .filter(Q(published_at__lt=now - republish_after) | Q(published_at__isnull=True))
        .filter(queued_at__lt=now - timedelta(seconds=5))
        .filter(Q(not_before__isnull=True) | Q(not_before__lt=now - republish_after))
        .select_related("run")[:1000]
    )
    for execution in lost:
        if execution.node_name in alive:
            dispatch.publish(execution)
            report.republished += 1
            continue
        if execution.placement == "any":
            target = parse_tags(execution.run.snapshot.get("tags") or {})
            nodes = select_nodes(type(target)(required=target.required, count=1), alive.values())
            if nodes:
                node = nodes[0].name
                moved = Execution.objects.filter(
                    pk=execution.pk, status=ExecutionStatus.QUEUED
                ).update(node_name=node, queue=dispatch.node_queue(node))
                if moved:
                    execution.node_name, execution.queue = node, dispatch.node_queue(node)
                    dispatch.publish(execution)
                    report.moved += 1
                continue
        execution_finish(
            execution_id=execution.pk,
            status=ExecutionStatus.FAILED,
            output=f"node {execution.node_name} is gone; no matching node took this run\n",
            reason=f"node {execution.node_name} is gone",
            retryable=False,
        )
        report.failed += 1


def sweep(*, now: datetime | None = None) -> SweepReport:
    now = now or timeutil.now()
    report = SweepReport()
    _close_dead_runs(now, report)
    _recover_queued(now, report)
    return report
