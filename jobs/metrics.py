"""Prometheus metrics, read from the database when scraped.

Every process of a cluster (web, schedulers, agents) writes its state to the database, so a
collector that reads it there at scrape time gives the same figures whichever web process
answers, without a multi-process metrics directory or a push gateway.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from jobs.models import Agent, Execution, ExecutionStatus, Lease
from jobs.services import agents as agent_services
from jobs.services.lease import SCHEDULER, lease_holder


class ClusterCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        lease = Lease.objects.filter(name=SCHEDULER).first()
        changes = CounterMetricFamily(
            "dkronweb_scheduler_leadership_changes",
            "Times the scheduler lease changed hands (a standby took over or a first start)",
        )
        changes.add_metric([], float(lease.changes if lease else 0))
        yield changes

        holder = lease_holder()
        active = GaugeMetricFamily(
            "dkronweb_scheduler_active",
            "1 while a scheduler holds the lease, labelled with the holder",
            labels=["holder"],
        )
        active.add_metric([holder.holder if holder else ""], 1.0 if holder else 0.0)
        yield active

        agents = GaugeMetricFamily(
            "dkronweb_agents", "Registered agents by state", labels=["state"]
        )
        states: dict[str, int] = {"alive": 0, "failed": 0, "left": 0}
        for agent in Agent.objects.all():
            state = agent_services.agent_state(agent)
            states[state] = states.get(state, 0) + 1
        for state, n in sorted(states.items()):
            agents.add_metric([state], float(n))
        yield agents

        active_execs = GaugeMetricFamily(
            "dkronweb_executions_active", "Executions queued or running", labels=["status"]
        )
        counts = dict(
            Execution.objects.filter(status__in=[ExecutionStatus.QUEUED, ExecutionStatus.RUNNING])
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        for status in (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING):
            active_execs.add_metric([str(status)], float(counts.get(status, 0)))
        yield active_execs


def registry() -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ClusterCollector())
    return reg
