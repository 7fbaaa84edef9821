"""Prometheus metrics, read from the database (and the broker) when scraped.

Every process of a cluster (web, schedulers, agents) writes its state to the database, so a
collector that reads it there at scrape time gives the same figures whichever web process
answers, without a multi-process metrics directory shared between hosts or a push gateway.

What only agents see (executions by status, durations, fire skew, notification failures) is
counted in the agent's processes (jobs.telemetry) and reaches the database as a snapshot
written with the agent's heartbeat; here each agent's snapshot becomes its series, labelled
with the agent. Queue depths are read from the broker; a broker that does not answer gives
`dkronweb_broker_up 0`, never a failed scrape.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count, Sum
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from jobs import telemetry
from jobs.broker import queue_depths
from jobs.dispatch import node_queue
from jobs.models import Agent, Execution, ExecutionStatus, Job, JobStatus, Lease
from jobs.services import agents as agent_services
from jobs.services import capacity, counters, sla
from jobs.services.lease import SCHEDULER, lease_holder, shard_holders
from jobs.services.runs import catchup_backlog

log = logging.getLogger("dkronweb.metrics")


def counter_families() -> Iterator[Metric]:
    """The cluster-wide counters (jobs.services.counters), one family each."""
    families: dict[str, CounterMetricFamily] = {}
    for name, value in sorted(counters.counter_values().items()):
        family_name, _, label_value = name.partition(":")
        label = counters.LABELS.get(family_name)
        family = families.get(family_name)
        if family is None:
            family = families[family_name] = CounterMetricFamily(
                f"dkronweb_{family_name}",
                counters.HELP.get(family_name, family_name),
                labels=[label[0]] if label else None,
            )
        family.add_metric([label_value] if label else [], float(value))
    yield from families.values()


def catchup_families() -> Iterator[Metric]:
    """The catch-up backlog: runs of a misfire policy waiting for their CATCHUP_RATE slot."""
    waiting = GaugeMetricFamily(
        "dkronweb_scheduler_catchup_waiting",
        "Catch-up executions committed and waiting for their publish slot (CATCHUP_RATE)",
    )
    waiting.add_metric([], float(catchup_backlog()))
    yield waiting


def shard_families() -> Iterator[Metric]:
    """Several active schedulers (DKRON_SCHEDULER_SHARDS > 1): the shards each holds, and
    the shards nobody holds (their jobs are not fired until a scheduler takes them)."""
    count = int(settings.DKRON["SHARDS"])
    if count <= 1:
        return
    holders = shard_holders(shards=count)
    unheld = GaugeMetricFamily(
        "dkronweb_scheduler_shards_unheld",
        f"Shards of the {count} (DKRON_SCHEDULER_SHARDS) held by no scheduler",
    )
    unheld.add_metric([], float(sum(1 for h in holders.values() if not h)))
    yield unheld
    held = GaugeMetricFamily(
        "dkronweb_scheduler_shards_held", "Shards each scheduler holds", labels=["holder"]
    )
    for holder, n in sorted(Counter(h for h in holders.values() if h).items()):
        held.add_metric([holder], float(n))
    yield held


def sla_family() -> Metric:
    """Open SLA alerts per job and kind (jobs.services.sla); alerts opened so far are the
    cluster-wide counter `dkronweb_alerts_total{kind}`."""
    family = GaugeMetricFamily(
        "dkronweb_alerts_open", "Open SLA alerts, per job and kind", labels=["job", "kind"]
    )
    for (job, kind), n in sorted(sla.open_alert_counts().items()):
        family.add_metric([job, kind], float(n))
    return family


class ClusterCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from self._scheduler()
        members = Agent.objects.only(
            "name", "tags", "left", "last_heartbeat", "metrics", "slots", "concurrency"
        )
        # Scheduler-only members are listed in /v1/members but are not agents: no queue, no
        # agent metrics, and not in the agent counts.
        agents = [a for a in members if not agent_services.is_scheduler_only(a.tags)]
        yield self._agent_states(agents)
        yield from self._slots(agents)
        yield self._active_executions()
        yield from self._jobs()
        yield sla_family()
        yield from agent_families(agents)
        yield from queue_families([a.name for a in agents])

    def _scheduler(self) -> Iterator[Metric]:
        lease = Lease.objects.filter(name=SCHEDULER).first()
        changes = CounterMetricFamily(
            "dkronweb_scheduler_leadership_changes",
            "Times the scheduler lease changed hands (a standby took over or a first start)",
        )
        changes.add_metric([], float(lease.changes if lease else 0))
        yield changes
        yield from counter_families()

        holder = lease_holder()
        active = GaugeMetricFamily(
            "dkronweb_scheduler_active",
            "1 while a scheduler holds the lease, labelled with the holder",
            labels=["holder"],
        )
        active.add_metric([holder.holder if holder else ""], 1.0 if holder else 0.0)
        yield active
        yield from catchup_families()
        yield from shard_families()

    def _agent_states(self, agents: list[Agent]) -> Metric:
        family = GaugeMetricFamily(
            "dkronweb_agents", "Registered agents by state", labels=["state"]
        )
        states: dict[str, int] = {"alive": 0, "leaving": 0, "failed": 0, "left": 0}
        # `leaving` in one query, not one per agent (the rows come without it).
        leaving = set(
            Agent.objects.filter(pk__in=[a.pk for a in agents], leaving=True).values_list(
                "pk", flat=True
            )
        )
        for agent in agents:
            agent.leaving = agent.pk in leaving
            state = agent_services.agent_state(agent)
            states[state] = states.get(state, 0) + 1
        for state, n in sorted(states.items()):
            family.add_metric([state], float(n))
        return family

    def _slots(self, agents: list[Agent]) -> Iterator[Metric]:
        """Each live agent's slots and how many run now (issue 16)."""
        total = GaugeMetricFamily(
            "dkronweb_agent_slots", "Executions the agent runs at once", labels=["agent"]
        )
        used = GaugeMetricFamily(
            "dkronweb_agent_slots_used", "Of the agent's slots, those running now", labels=["agent"]
        )
        running = agent_services.slots_used()
        for agent in agents:
            if agent.left:
                continue
            total.add_metric([agent.name], float(agent_services.slot_count(agent)))
            used.add_metric([agent.name], float(running.get(agent.name, 0)))
        yield total
        yield used
        keys = capacity.key_states()
        limit = GaugeMetricFamily(
            "dkronweb_concurrency_key_limit", "A concurrency key's limit", labels=["key"]
        )
        by_state = GaugeMetricFamily(
            "dkronweb_concurrency_key_executions",
            "A concurrency key's executions: running, queued (admitted) and waiting",
            labels=["key", "state"],
        )
        for key in keys:
            if key.limit is not None:
                limit.add_metric([key.key], float(key.limit))
            for state in ("running", "queued", "waiting"):
                by_state.add_metric([key.key, state], float(getattr(key, state)))
        yield limit
        yield by_state

    def _active_executions(self) -> Metric:
        family = GaugeMetricFamily(
            "dkronweb_executions_active", "Executions queued or running", labels=["status"]
        )
        counts = dict(
            Execution.objects.filter(status__in=[ExecutionStatus.QUEUED, ExecutionStatus.RUNNING])
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        for status in (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING):
            family.add_metric([str(status)], float(counts.get(status, 0)))
        return family

    def _jobs(self) -> Iterator[Metric]:
        by_status: dict[str, int] = {str(s.value) or "untriggered": 0 for s in JobStatus}
        disabled = missed = 0
        rows = (
            Job.objects.values("status", "disabled")
            .annotate(n=Count("id"), missed=Sum("missed_count"))
            .values_list("status", "disabled", "n", "missed")
        )
        for status, is_disabled, n, missed_n in rows:
            label = status or "untriggered"
            by_status[label] = by_status.get(label, 0) + n
            disabled += n if is_disabled else 0
            missed += missed_n or 0
        jobs = GaugeMetricFamily(
            "dkronweb_jobs", "Jobs by the status of their last run", labels=["status"]
        )
        for status, n in sorted(by_status.items()):
            jobs.add_metric([status], float(n))
        yield jobs
        off = GaugeMetricFamily("dkronweb_jobs_disabled", "Jobs that are disabled")
        off.add_metric([], float(disabled))
        yield off

        total = CounterMetricFamily(
            "dkronweb_missed_fires",
            "Scheduled fire times skipped by the misfire rules, all jobs together",
        )
        total.add_metric([], float(missed))
        yield total
        per_job = CounterMetricFamily(
            "dkronweb_job_missed_fires",
            "Scheduled fire times skipped by the misfire rules, per job (jobs with any only)",
            labels=["job"],
        )
        if missed:
            for name, n in (
                Job.objects.filter(missed_count__gt=0)
                .order_by("name")
                .values_list("name", "missed_count")
            ):
                per_job.add_metric([name], float(n))
        yield per_job


# --- agent snapshots ----------------------------------------------------------------------


def agent_families(agents: Iterable[Agent]) -> list[Metric]:
    """The agent-side families, one series per agent (label `agent`) and label set."""
    families: dict[str, Any] = {}
    for fam in telemetry.FAMILIES:
        labels = ["agent", *fam.labels]
        if fam.kind == "counter":
            families[fam.name] = CounterMetricFamily(fam.name, fam.help, labels=labels)
        else:
            families[fam.name] = HistogramMetricFamily(fam.name, fam.help, labels=labels)
    for agent in agents:
        for name, rows in telemetry.parse_snapshot(agent.metrics).items():
            family = telemetry.BY_NAME.get(name)
            if family is None or not isinstance(rows, list):
                continue
            for row in rows:
                try:
                    _add_row(families[name], family, agent.name, row)
                except (TypeError, ValueError, IndexError):
                    log.debug("agent %s: bad %s row %r", agent.name, name, row)
    return list(families.values())


def _add_row(metric: Any, family: telemetry.Family, agent: str, row: list[Any]) -> None:
    n = len(family.labels)
    labels = [agent, *(str(v) for v in row[:n])]
    if len(labels) != n + 1:
        raise ValueError("missing labels")
    if family.kind == "counter":
        metric.add_metric(labels, float(row[n]))
        return
    total, counts = float(row[n]), row[n + 1]
    bounds = [*family.buckets, float("inf")]
    if len(counts) != len(bounds):
        raise ValueError("buckets differ")
    buckets = [(floatToGoString(b), float(c)) for b, c in zip(bounds, counts, strict=True)]
    metric.add_metric(labels, buckets, total)


# --- broker queues ------------------------------------------------------------------------


def queue_families(agent_names: Iterable[str]) -> list[Metric]:
    up = GaugeMetricFamily(
        "dkronweb_broker_up", "1 when the broker answered this scrape's queue-depth reads"
    )
    depth = GaugeMetricFamily(
        "dkronweb_queue_depth", "Messages waiting in a broker queue", labels=["queue"]
    )
    queues = {settings.CELERY_TASK_DEFAULT_QUEUE, *(node_queue(n) for n in agent_names)}
    try:
        sizes = queue_depths(queues)
    except Exception as exc:
        log.warning("broker unreachable while scraping queue depths: %s", exc)
        up.add_metric([], 0.0)
        return [up, depth]
    if sizes is None:  # a transport this does not know how to read
        return [depth]
    up.add_metric([], 1.0)
    for queue, n in sorted(sizes.items()):
        depth.add_metric([queue], float(n))
    return [up, depth]


def registry() -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ClusterCollector())
    return reg
