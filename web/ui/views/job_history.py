"""A job's history: its revisions, one revision with its diff, and the Restore action.

The pages read what the API's /v1/jobs/{name}/revisions answers (jobs.services.revisions):
secrets masked, a changed secret shown as "changed" only. Restoring needs the permission to
change the job (to add it, when a deletion removed it), as the API's restore.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from jobs.errors import DomainError, NotFound
from jobs.models import Job
from jobs.services import jobs as job_services
from jobs.services import revisions as revision_services
from web.ui.access import ADD, EDIT, actor, allowed, forbidden, page

PER_PAGE = 50


def _may_restore(request: HttpRequest, name: str) -> bool:
    return allowed(request, EDIT if Job.objects.filter(name=name).exists() else ADD)


@page
def job_history(request: HttpRequest, name: str) -> HttpResponse:
    try:
        revision_services.ensure_known(name)
    except NotFound:
        raise Http404(f"job '{name}' not found") from None
    revisions = Paginator(revision_services.revision_list(name), PER_PAGE)
    listed = revisions.get_page(request.GET.get("page"))
    return render(
        request,
        "ui/job_history.html",
        {
            "name": name,
            "job": Job.objects.filter(name=name).first(),
            "revisions": listed,
            "may_restore": _may_restore(request, name),
        },
    )


@page
def job_revision(request: HttpRequest, name: str, number: int) -> HttpResponse:
    try:
        revision = revision_services.revision_get(name, number)
    except DomainError as exc:  # NotFound, or 0 (not a revision number)
        raise Http404(exc.message) from None
    against = request.GET.get("against") or None
    try:
        diff = revision_services.revision_diff(name, number, against)
    except DomainError as exc:  # the revision compared with does not exist
        messages.error(request, exc.message)
        return redirect("ui-job-revision", name=name, number=number)
    return render(
        request,
        "ui/job_revision.html",
        {
            "name": name,
            "revision": revision,
            "diff": diff,
            "changes": [
                {
                    **change,
                    "before_text": _text(change.get("before")),
                    "after_text": _text(change.get("after")),
                }
                for change in diff["changes"]
            ],
            "data": json.dumps(revision.data, indent=2, sort_keys=True, ensure_ascii=False),
            "current": Job.objects.filter(name=name).values_list("revision", flat=True).first(),
            "may_restore": _may_restore(request, name),
        },
    )


def _text(value: object) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@page
def job_revision_restore(request: HttpRequest, name: str, number: int) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    if not _may_restore(request, name):
        return forbidden(request, "You do not have permission to change this job.")
    try:
        revision_services.revision_get(name, number)
    except DomainError as exc:
        raise Http404(exc.message) from None
    try:
        job, revision = job_services.job_rollback(name=name, number=number, actor=actor(request))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("ui-job-revision", name=name, number=number)
    if revision.restored_from == number and revision.change == "restore":
        messages.success(request, f"Revision {number} restored as revision {revision.number}")
    else:
        messages.success(request, f"The job is already as revision {number} recorded")
    return redirect("ui-job", name=job.name)
