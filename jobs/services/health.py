"""What /health reports: the probe checks (database, broker, an active scheduler) and the
alert-worthy states.

The database, the broker and the scheduler fail the probe: with the lease enabled and no
scheduler holding it, no job is fired, so /health answers 503 with `"status": "unhealthy"`
and `"scheduler": "no active scheduler"` (a load balancer, probe or monitor can act on it).
`/health?scope=process` leaves the scheduler out of the verdict (still reported in the body):
a liveness probe of a web process, which restarting cannot bring a scheduler back to, uses it.
No live agent, jobs whose tags no live agent matches, jobs that cannot run (restored with
problems, or their executor disabled), a queue backlog and open SLA alerts (jobs.services.sla:
a job breaking its own rules, not the cluster failing) are reported in the body and in
`alerts` only. docs/scheduler.md and docs/monitoring.md say more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q

from jobs import timeutil
from jobs.models import Alert, AlertKind, AlertState, Execution, ExecutionStatus, Job
from jobs.services import agents as agent_services
from jobs.services import lease as lease_services
from jobs.targeting import NodeInfo, TagError, parse_tags, select_nodes

UNMATCHED_NAMES_SHOWN = 10


@dataclass
class HealthReport:
    checks: dict[str, str] = field(default_factory=dict)
    scheduler: str = "unknown"
    agents_alive: int | None = None
    unmatched_jobs: int | None = None
    unmatched_names: list[str] = field(default_factory=list)  # the first few, by name
    backlog: int | None = None
    backlog_after: float = 0.0
    cannot_run: int | None = None
    sla_open: dict[str, int] | None = None  # open SLA alerts by kind
    alerts: list[str] = field(default_factory=list)
    scheduler_required: bool = True  # False for ?scope=process

    @property
    def healthy(self) -> bool:
        if self.scheduler_required and self.scheduler not in ("ok", "lease disabled"):
            return False
        return all(v == "ok" for v in self.checks.values())

    def public(self) -> dict[str, Any]:
        """The /health body: counts only, no job names (it needs no credentials)."""
        return {
            "status": "healthy" if self.healthy else "unhealthy",
            **self.checks,
            "scheduler": self.scheduler,
            "agents": {"alive": self.agents_alive},
            "tags": {"unmatched_jobs": self.unmatched_jobs},
            "backlog": {"queued": self.backlog, "older_than_seconds": self.backlog_after},
            "jobs": {"cannot_run": self.cannot_run},
            "sla": {"open_alerts": self.sla_open},
            "alerts": self.alerts,
        }


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"
    return "ok"


def check_broker() -> str:
    from celery import current_app as app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"
    return "ok"


SCOPES = ("cluster", "process")


def health_report(*, scope: str = "cluster") -> HealthReport:
    """`scope="process"` judges this process only (database, broker), not the scheduler."""
    report = HealthReport(checks={"database": check_database(), "broker": check_broker()})
    report.scheduler_required = scope != "process"
    report.backlog_after = float(settings.DKRON["BACKLOG_ALERT_SECONDS"])
    if report.checks["database"] != "ok":
        report.alerts.append("database unavailable: cluster state unknown")
    else:
        _cluster_state(report)
    if report.checks["broker"] != "ok":
        report.alerts.append("broker unavailable: runs cannot be published")
    return report


def cluster_report() -> HealthReport:
    """The cluster's alert-worthy states alone, without probing the database and the broker
    (for pages that have just used the database and must not wait on a broker timeout)."""
    report = HealthReport(checks={})
    report.backlog_after = float(settings.DKRON["BACKLOG_ALERT_SECONDS"])
    _cluster_state(report)
    return report


def _cluster_state(report: HealthReport) -> None:
    if not settings.DKRON["LEASE_ENABLED"]:
        report.scheduler = "lease disabled"
    elif lease_services.lease_holder() is None:
        report.scheduler = "no active scheduler"
        report.alerts.append("no active scheduler: no job is being fired")
    else:
        report.scheduler = "ok"
        shards = int(settings.DKRON["SHARDS"])
        if shards > 1:
            # Several active schedulers: a shard nobody holds is jobs nobody fires (for up
            # to LEASE_TTL after a scheduler's death, until another takes it).
            unowned = [k for k, h in lease_services.shard_holders(shards=shards).items() if not h]
            if unowned:
                report.alerts.append(
                    f"scheduler shard(s) {', '.join(map(str, unowned))} of {shards} held by "
                    "no scheduler: their jobs are not being fired"
                )

    nodes = agent_services.alive_nodes()
    report.agents_alive = len(nodes)
    if not nodes:
        report.alerts.append("no live agent: no execution can run")

    report.unmatched_jobs, report.unmatched_names = unmatched_jobs(nodes)
    if report.unmatched_jobs:
        report.alerts.append(
            f"{report.unmatched_jobs} enabled job(s) target tags that no live agent has"
        )

    report.cannot_run = jobs_that_cannot_run()
    if report.cannot_run:
        report.alerts.append(
            f"{report.cannot_run} enabled job(s) fail every run before executing: stored "
            "with problems by a restore or import, or their executor is disabled (see the "
            "job pages)"
        )

    report.sla_open = open_sla_alerts()
    if any(report.sla_open.values()):
        total = sum(report.sla_open.values())
        kinds = ", ".join(f"{n} {kind}" for kind, n in report.sla_open.items() if n)
        report.alerts.append(f"{total} open SLA alert(s): {kinds} (GET /v1/alerts?state=open)")

    report.backlog = queued_backlog(seconds=report.backlog_after)
    if report.backlog:
        report.alerts.append(
            f"{report.backlog} execution(s) queued for more than {report.backlog_after:g} s"
        )


def unmatched_jobs(nodes: list[NodeInfo]) -> tuple[int, list[str]]:
    """Enabled tagged jobs that no live agent matches: how many, and the first few names.

    Jobs are grouped by their tags first, so the cost follows the number of distinct tag sets
    (a handful), not the number of jobs. Untagged jobs run on any agent: "no live agent"
    covers them.
    """
    enabled = Job.objects.filter(disabled=False).exclude(tags={})
    groups = enabled.values("tags").annotate(n=Count("id")).order_by()
    unmatched: list[dict[str, Any]] = []
    count = 0
    for group in groups:
        try:
            matched = bool(select_nodes(parse_tags(group["tags"]), nodes))
        except TagError:
            matched = False  # an invalid stored rule cannot match any node
        if not matched:
            unmatched.append(group["tags"])
            count += group["n"]
    if not unmatched:
        return 0, []
    match_any = Q()
    for tags in unmatched:
        match_any |= Q(tags=tags)
    names = enabled.filter(match_any).order_by("name").values_list("name", flat=True)
    return count, list(names[:UNMATCHED_NAMES_SHOWN])


def jobs_that_cannot_run() -> int:
    """Enabled jobs whose runs the agent refuses (`agent.runner.run_refusal`): stored with
    problems, or using an executor disabled since they were saved."""
    refused = ~Q(problems={}) | Q(executor="")
    disabled = settings.DKRON["DISABLED_EXECUTORS"]
    if disabled:
        refused |= Q(executor__in=sorted(disabled))
    return Job.objects.filter(refused, disabled=False).count()


def queued_backlog(*, seconds: float) -> int:
    """Executions queued (and due: a retry waiting out its backoff is not late) for too long."""
    cutoff = timeutil.now() - timedelta(seconds=seconds)
    return Execution.objects.filter(
        Q(not_before__isnull=True) | Q(not_before__lt=cutoff),
        status=ExecutionStatus.QUEUED,
        queued_at__lt=cutoff,
    ).count()


def open_sla_alerts() -> dict[str, int]:
    """Open SLA alerts by kind (every kind listed, 0 when none): `alert_open_idx`."""
    counts = {kind: 0 for kind in AlertKind.values}
    rows = (
        Alert.objects.filter(state=AlertState.OPEN)
        .values_list("kind")
        .annotate(n=Count("id"))
        .values_list("kind", "n")
        .order_by()
    )
    counts.update(dict(rows))
    return counts
