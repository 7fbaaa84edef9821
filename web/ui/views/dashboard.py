"""The dashboard: jobs by status, running work, recent failures, agents, the scheduler, fire skew.

`?fragment=running` returns only the running section, which the page refreshes live.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jobs import selectors
from jobs.models import Agent, Execution, ExecutionStatus, Job
from jobs.services import agents as agent_services
from jobs.services import health as health_services
from jobs.services import lease as lease_services
from jobs.services.runs import catchup_backlog
from web.filters import JOB_STATUS_FILTERS
from web.ui import access

RUNNING_SHOWN = 50
SLA_ALERTS_SHOWN = 20
FAILURES_SHOWN = 10
SKEW_SAMPLE = 100
# Recent failures and fire skew look at the newest executions only (by id, an index range),
# so the dashboard stays cheap with millions of executions.
RECENT_WINDOW = 50_000
FAILED_STATUSES = (ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, ExecutionStatus.KILLED)
STATUS_CARDS = tuple((name, name.replace("_", " ").capitalize()) for name in JOB_STATUS_FILTERS)


def job_counts() -> list[dict[str, Any]]:
    """Total, each status (as /v1/jobs?status= filters them) and disabled, with list links."""
    by_status = dict(Job.objects.values_list("status").annotate(n=Count("id")).order_by())
    total = sum(by_status.values())
    cards = [{"key": "total", "label": "Jobs", "n": total, "query": ""}]
    for key, label in STATUS_CARDS:
        n = by_status.get(JOB_STATUS_FILTERS[key], 0)
        cards.append({"key": key, "label": label, "n": n, "query": f"?status={key}"})
    disabled = Job.objects.filter(disabled=True).count()
    cards.append({"key": "disabled", "label": "Disabled", "n": disabled, "query": "?disabled=true"})
    return cards


def _recent_executions() -> Any:
    newest = Execution.objects.order_by("-id").values_list("id", flat=True).first()
    return Execution.objects.filter(id__gt=(newest or 0) - RECENT_WINDOW)


def running_context() -> dict[str, Any]:
    running = selectors.running_executions()
    return {
        "running": list(running.defer("output")[:RUNNING_SHOWN]),
        "running_total": running.count(),
        "queued_total": Execution.objects.filter(status=ExecutionStatus.QUEUED).count(),
        **catchup_context(),
    }


def catchup_context() -> dict[str, Any]:
    """The catch-up backlog (runs waiting for their CATCHUP_RATE slot), refreshed with the
    running fragment so that it is seen draining."""

    waiting = catchup_backlog()
    rate = float(settings.DKRON["CATCHUP_RATE"])
    return {
        "catchup_waiting": waiting,
        "catchup_rate": rate,
        "catchup_left": format_seconds(waiting / rate) if waiting and rate > 0 else "",
    }


def recent_failures() -> list[Execution]:
    rows = _recent_executions().filter(status__in=FAILED_STATUSES).defer("output")
    return list(rows.order_by("-id")[:FAILURES_SHOWN])


def _percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def format_seconds(value: float) -> str:
    if abs(value) < 1:
        return f"{value * 1000:.0f} ms"
    if abs(value) < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def fire_skew() -> dict[str, Any]:
    """Start minus scheduled time of the last scheduled executions, and missed fires."""
    rows = (
        _recent_executions()
        .filter(scheduled_at__isnull=False, started_at__isnull=False)
        .order_by("-id")
        .values_list("scheduled_at", "started_at")[:SKEW_SAMPLE]
    )
    skews = sorted((started - scheduled).total_seconds() for scheduled, started in rows)
    missed = Job.objects.aggregate(n=Sum("missed_count"))["n"] or 0
    if not skews:
        return {"sample": 0, "missed": missed}
    return {
        "sample": len(skews),
        "p50": format_seconds(_percentile(skews, 50)),
        "p99": format_seconds(_percentile(skews, 99)),
        "max": format_seconds(skews[-1]),
        "missed": missed,
    }


def agents() -> list[dict[str, Any]]:
    return [
        {"agent": agent, "state": agent_services.agent_state(agent)}
        for agent in Agent.objects.defer("metrics")
    ]


@access.page
def dashboard(request: HttpRequest) -> HttpResponse:
    if request.GET.get("fragment") == "running":
        return render(request, "ui/partials/dashboard_running.html", running_context())
    agent_rows = agents()
    context = {
        "counts": job_counts(),
        **running_context(),
        "failures": recent_failures(),
        "agents": agent_rows,
        "alive_agents": sum(1 for row in agent_rows if row["state"] == "alive"),
        "scheduler": lease_services.lease_holder(),
        "skew": fire_skew(),
        # The alert-worthy states /health reports (no scheduler, no agent, jobs no agent
        # matches, a queue backlog), with the unmatched job names for signed-in users.
        "health": health_services.cluster_report(),
        # Open SLA alerts, newest first (jobs.services.sla).
        "sla_alerts": list(selectors.alert_list(state="open")[:SLA_ALERTS_SHOWN]),
        "sla_open_total": selectors.alert_list(state="open").count(),
    }
    return render(request, "ui/dashboard.html", context)
