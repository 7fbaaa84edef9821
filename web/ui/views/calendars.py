"""The calendars page: every calendar, what it holds, and the jobs that name it (read only;
calendars are edited through /v1/calendars or the admin)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jobs.models import Calendar, Job
from web.ui import access


@access.page
def calendars(request: HttpRequest) -> HttpResponse:
    users: dict[str, list[str]] = {}
    named = (
        Job.objects.exclude(exclude_calendars=[], only_calendars=[])
        .order_by("name")
        .values_list("name", "exclude_calendars", "only_calendars")
    )
    for job, exclude, only in named:
        for name in {*(exclude or []), *(only or [])}:
            users.setdefault(name, []).append(job)
    rows = [{"calendar": c, "jobs": users.get(c.name, [])} for c in Calendar.objects.all()]
    return render(request, "ui/calendars.html", {"rows": rows})
