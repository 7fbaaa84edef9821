"""The cluster: what runs now with its live output (busy), and the agents (members)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import QuerySet
from django.db.models.functions import Length, Right
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jobs import selectors
from jobs.models import Agent, Execution, ExecutionStatus
from jobs.services import agents as agent_services
from web.ui import access

TAIL_CHARS = 4096
BUSY_SHOWN = 100


def busy_executions() -> QuerySet[Execution]:
    """Running executions, oldest first, with the last 4 KB of output read in the database."""
    return (
        selectors.running_executions()
        .defer("output")
        .annotate(tail=Right("output", TAIL_CHARS), output_length=Length("output"))
    )


def busy_context() -> dict[str, Any]:
    rows = busy_executions()
    return {
        "executions": list(rows[:BUSY_SHOWN]),
        "running_total": rows.count(),
        "queued_total": Execution.objects.filter(status=ExecutionStatus.QUEUED).count(),
        "tail_chars": TAIL_CHARS,
    }


@access.page
def busy(request: HttpRequest) -> HttpResponse:
    return render(request, "ui/busy.html", busy_context())


@access.page
def busy_fragment(request: HttpRequest) -> HttpResponse:
    return render(request, "ui/partials/busy_executions.html", busy_context())


@access.page
def members(request: HttpRequest) -> HttpResponse:
    running: dict[str, list[dict[str, Any]]] = defaultdict(list)
    active = selectors.running_executions().values("id", "job_name", "node_name")
    for row in active:
        running[row["node_name"]].append(dict(row))
    used = agent_services.slots_used()  # running executions per agent, one grouped read
    rows: list[dict[str, Any]] = [
        {
            "agent": agent,
            "slots": agent_services.slot_count(agent),
            "slots_used": used.get(agent.name, 0),
            "state": agent_services.agent_state(agent),
            "executions": running.get(agent.name, []),
            # A prefork agent's heartbeat cannot see its children's runs: count them too.
            "running": max(agent.running, len(running.get(agent.name, []))),
        }
        for agent in Agent.objects.defer("metrics")
    ]
    known = {row["agent"].name for row in rows}
    orphans = {node: ex for node, ex in running.items() if node not in known}
    return render(request, "ui/members.html", {"rows": rows, "orphans": orphans})
