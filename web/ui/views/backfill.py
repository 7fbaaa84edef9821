"""A job's backfills in the UI: the form (Dry run lists the fire times with why each is or is
not included; Start creates the backfill), a backfill's progress page (refreshed live) and
its Cancel. Starting and cancelling need the permission to run the job, as in the API."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from jobs.errors import DomainError, NotFound
from jobs.models import Backfill, BackfillItem, Job
from jobs.services import backfill as backfill_services
from jobs.services import jobs as job_services
from web.ui.access import OPERATE, action, actor, allowed, page

ITEMS_SHOWN = 200  # fire times a progress page lists (its counts cover all)
FIELDS = ("from", "to", "reprocess", "max_concurrency")


def _job(name: str) -> Job:
    try:
        return job_services.job_get(name)
    except NotFound:
        raise Http404(f"job '{name}' not found") from None


def _backfill(job: Job, pk: int) -> Backfill:
    found = Backfill.objects.filter(job=job, pk=pk).select_related("job").first()
    if found is None:
        raise Http404(f"backfill {pk} not found")
    return found


def _form_context(job: Job, values: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "job": job,
        "values": values,
        "zone": backfill_services.job_zone(job).key,
        "reprocess_choices": Backfill.Reprocess.values,
        "backfills": list(Backfill.objects.filter(job=job)[:20]),
        **extra,
    }


@page
def backfill_form(request: HttpRequest, name: str) -> HttpResponse:
    """GET: the form and the job's recent backfills. POST (run permission): `dry_run` lists
    the fire times; `start` creates the backfill and goes to its progress page."""
    job = _job(name)
    if request.method != "POST":
        values = {"reprocess": "missing", "max_concurrency": "1"}
        return render(request, "ui/backfill_form.html", _form_context(job, values))
    if not allowed(request, OPERATE):
        return render(
            request,
            "ui/forbidden.html",
            {"message": f"You do not have permission to do this ({OPERATE})."},
            status=403,
        )
    values = {f: request.POST.get(f, "").strip() for f in FIELDS}
    data: dict[str, Any] = {k: v for k, v in values.items() if v}
    try:
        checked = backfill_services.clean_request(job=job, data=data)
        if "start" in request.POST:
            created = backfill_services.backfill_start(
                job=job, request=checked, actor=actor(request)
            )
            messages.success(request, f"Backfill {created.pk} started: {created.total} time(s)")
            return redirect("ui-backfill", name=job.name, pk=created.pk)
        planned = backfill_services.backfill_plan(job=job, request=checked)
    except DomainError as exc:
        return render(
            request, "ui/backfill_form.html", _form_context(job, values, error=exc), status=400
        )
    zone = backfill_services.job_zone(job)
    plan = [backfill_services.planned_to_dict(p, zone) for p in planned]
    included = sum(1 for p in planned if p.included)
    return render(
        request,
        "ui/backfill_form.html",
        _form_context(job, values, plan=plan, included=included),
    )


def _progress(job: Job, backfill: Backfill) -> dict[str, Any]:
    items = list(BackfillItem.objects.filter(backfill=backfill)[:ITEMS_SHOWN])
    data = backfill_services.backfill_to_dict(backfill)
    return {
        "job": job,
        "backfill": backfill,
        "data": data,
        "items": items,
        "items_cut": backfill.total > len(items),
        "open": backfill.state in backfill_services.OPEN,
    }


@page
def backfill_page(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    job = _job(name)
    backfill = _backfill(job, pk)
    context = _progress(job, backfill)
    if request.GET.get("fragment") == "progress":
        return render(request, "ui/partials/backfill_progress.html", context)
    return render(request, "ui/backfill.html", context)


@action(OPERATE)
def backfill_cancel(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    job = _job(name)
    try:
        backfill_services.backfill_cancel(backfill=_backfill(job, pk), actor=actor(request))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Backfill {pk} cancelled: no further time starts")
    return redirect("ui-backfill", name=job.name, pk=pk)
