"""The concurrency page: every concurrency key (issue 16) with its limits and what runs, is
queued and waits under it, and the jobs that hold it (read only: a key's limits are its jobs'
`concurrency_limit` and `rate_limit`, edited on the jobs)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jobs.models import Job
from jobs.services import capacity
from web.ui import access

JOBS_SHOWN = 20  # per key; the rest are counted


def key_jobs() -> dict[str, list[str]]:
    """The names of the jobs holding each key, as their runs render it."""
    holders: dict[str, list[str]] = {}
    keyed = Job.objects.exclude(concurrency_key="").only("name", "concurrency_key", "metadata")
    for job in keyed.order_by("name"):
        key = capacity.job_key(job)
        if key:
            holders.setdefault(key, []).append(job.name)
    return holders


@access.page
def concurrency(request: HttpRequest) -> HttpResponse:
    holders = key_jobs()
    rows = [
        {
            "state": state,
            "jobs": holders.get(state.key, [])[:JOBS_SHOWN],
            "more": max(0, len(holders.get(state.key, [])) - JOBS_SHOWN),
        }
        for state in capacity.key_states()
    ]
    return render(request, "ui/concurrency.html", {"rows": rows})
