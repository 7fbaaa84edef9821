"""Minimal UI pages: a dashboard of jobs and agents, and a job page with its executions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from jobs import selectors
from jobs.models import Agent, Job
from jobs.schedule import ScheduleError, describe
from jobs.services import agents as agent_services
from jobs.services import lease as lease_services
from jobs.services.jobs import parse_job_schedule


def _maybe_login(view: Any) -> Any:
    """Login is required unless auth is explicitly off."""
    protected = login_required(view)

    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.AUTH_ENABLED:
            return view(request, *args, **kwargs)
        return protected(request, *args, **kwargs)

    return wrapper


@_maybe_login
def dashboard(request: HttpRequest) -> HttpResponse:
    counts = {
        row["status"] or "untriggered": row["n"]
        for row in Job.objects.values("status").annotate(n=Count("id"))
    }
    agents = [(a, agent_services.agent_state(a)) for a in Agent.objects.all()]
    return render(
        request,
        "ui/dashboard.html",
        {
            "jobs": Job.objects.order_by("name")[:200],
            "counts": counts,
            "total": sum(counts.values()),
            "agents": agents,
            "leader": lease_services.lease_holder(),
            "running": selectors.running_executions()[:50],
        },
    )


@_maybe_login
def job_detail(request: HttpRequest, name: str) -> HttpResponse:
    job = get_object_or_404(Job, name=name)
    try:
        schedule = parse_job_schedule(job)
        description = describe(schedule) if schedule else "runs after its parent succeeds"
    except ScheduleError as exc:
        description = f"invalid schedule: {exc}"
    executions = job.executions.order_by("-id")[:50]
    return render(
        request,
        "ui/job.html",
        {"job": job, "description": description, "executions": executions},
    )
