"""The jobs list (search, filters, sort, pages) and its bulk actions (confirmed, then done
through the services one job at a time; a refused job is reported and the others proceed)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from executors import registry
from jobs import selectors
from jobs.errors import Conflict, DomainError
from jobs.models import Job
from jobs.services import jobs as job_services
from jobs.services import runs as run_services
from jobs.services.audit import Actor
from web.filters import JOB_STATUS_FILTERS, JobListFilter
from web.ui import access

PAGE_SIZE = 50
STATUSES = tuple((name, name.replace("_", " ")) for name in JOB_STATUS_FILTERS)
# (sort key, header, extra CSS class); None as the key: not sortable.
COLUMNS: tuple[tuple[str | None, str, str], ...] = (
    ("name", "Name", ""),
    ("schedule", "Schedule", ""),
    ("status", "Status", ""),
    (None, "Executor", "hide-narrow"),
    ("next", "Next run", ""),
    ("last_success", "Last success", "hide-narrow"),
    ("last_error", "Last error", "hide-narrow"),
    ("success_count", "Successes", "num hide-narrow"),
    ("error_count", "Errors", "num hide-narrow"),
    (None, "Tags", "hide-narrow"),
)
SORTS = {key for key, _, _ in COLUMNS if key}
FILTER_KEYS = ("q", "status", "disabled", "executor", "tag", "metadata", "sort", "order")
# action -> (permission, past tense for the message)
ACTIONS = {
    "run": (access.OPERATE, "Started a run of"),
    "enable": (access.OPERATE, "Enabled"),
    "disable": (access.OPERATE, "Disabled"),
    "delete": (access.DELETE, "Deleted"),
}


def read_filters(params: QueryDict) -> dict[str, Any]:
    def clean(values: list[str]) -> list[str]:
        return [v.strip() for v in values if v.strip()]

    return {
        "q": params.get("q", "").strip(),
        "status": params.get("status", ""),
        "disabled": params.get("disabled", ""),
        "executor": params.get("executor", ""),
        "tag": clean(params.getlist("tag")),
        "metadata": clean(params.getlist("metadata")),
        "sort": params.get("sort", "") or "name",
        "order": "desc" if params.get("order", "").lower() == "desc" else "asc",
    }


def _is_default(key: str, value: Any, merged: dict[str, Any]) -> bool:
    if key == "sort":
        return value == "name" and merged.get("order") == "asc"
    if key == "order":
        return value == "asc"
    if key == "page":
        return value == 1
    return value in (None, "")


def query_string(filters: dict[str, Any], **changes: Any) -> str:
    """The list's URL query for these filters (defaults left out), with `changes` applied."""
    merged = {**filters, **changes}
    items: list[tuple[str, str]] = []
    for key in (*FILTER_KEYS, "page"):
        value = merged.get(key)
        if isinstance(value, list):
            items.extend((key, v) for v in value)
        elif value is not None and not _is_default(key, value, merged):
            items.append((key, str(value)))
    return "?" + urlencode(items) if items else ""


def _pairs(values: list[str], what: str, *, need_value: bool) -> list[tuple[str, str]]:
    pairs = []
    for text in values:
        key, sep, value = text.partition("=")
        if not key.strip() or (need_value and not sep):
            raise DomainError(f"a {what} filter is key=value, not {text!r}", {what: text})
        pairs.append((key.strip(), value.strip()))
    return pairs


def filtered_jobs(filters: dict[str, Any]) -> QuerySet[Job]:
    """Dkron's list filters (web.filters) plus tags; bad values raise DomainError."""
    params = QueryDict(mutable=True)
    for key in ("q", "status", "disabled", "executor"):
        if filters[key]:
            params[key] = filters[key]
    for key, value in _pairs(filters["metadata"], "metadata", need_value=True):
        params.appendlist(f"metadata[{key}]", value)
    params.setlist("tag", filters["tag"])  # only for the filter's NUL check
    if filters["sort"] not in SORTS:
        raise DomainError(f"cannot sort by {filters['sort']!r}")
    params["_sort"] = filters["sort"]
    params["_order"] = filters["order"].upper()
    qs = selectors.job_list(JobListFilter.parse(params))
    return selectors.job_tag_filter(qs, _pairs(filters["tag"], "tag", need_value=False))


def _page_number(text: str | None, pages: int) -> int:
    try:
        number = int(text or 1)
    except ValueError:
        number = 1
    return min(max(number, 1), max(pages, 1))


def _headers(filters: dict[str, Any]) -> list[dict[str, Any]]:
    headers = []
    for key, label, css in COLUMNS:
        header: dict[str, Any] = {"label": label, "css": css, "url": None, "sorted": None}
        if key:
            current = filters["sort"] == key
            order = "desc" if current and filters["order"] == "asc" else "asc"
            header["url"] = query_string(filters, sort=key, order=order)
            if current:
                header["sorted"] = "ascending" if filters["order"] == "asc" else "descending"
        headers.append(header)
    return headers


@access.page
def job_list(request: HttpRequest) -> HttpResponse:
    filters = read_filters(request.GET)
    error = ""
    try:
        qs = filtered_jobs(filters)
        total = qs.count()
    except DomainError as exc:
        error, total, qs = exc.message, 0, Job.objects.none()
    pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
    page = _page_number(request.GET.get("page"), pages)
    start = (page - 1) * PAGE_SIZE
    jobs = selectors.job_page(qs, start, start + PAGE_SIZE) if total else []
    context = {
        "filters": filters,
        "error": error,
        "jobs": jobs,
        "total": total,
        "first": start + 1 if jobs else 0,
        "last": start + len(jobs),
        "page": page,
        "pages": pages,
        "prev_url": (query_string(filters, page=page - 1) or "?") if page > 1 else None,
        "next_url": query_string(filters, page=page + 1) if page < pages else None,
        "headers": _headers(filters),
        "statuses": STATUSES,
        "executors": sorted(
            {*registry.available(), *([filters["executor"]] if filters["executor"] else [])}
        ),
        "filtered": any(
            filters[k] for k in ("q", "status", "disabled", "executor", "tag", "metadata")
        ),
        "can_bulk": access.allowed(request, access.OPERATE)
        or access.allowed(request, access.DELETE),
    }
    return render(request, "ui/jobs.html", context)


def safe_next(request: HttpRequest, value: str | None) -> str:
    """Where to go back to: a /ui/ path on this site, the jobs list otherwise."""
    if (
        value
        and value.startswith("/ui/")
        and "\\" not in value
        and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()})
    ):
        return value
    return reverse("ui-jobs")


def _names(request: HttpRequest) -> list[str]:
    seen: dict[str, None] = {}
    for name in request.POST.getlist("names"):
        if name and len(name) <= 255 and "\x00" not in name:
            seen.setdefault(name, None)
    return list(seen)


def _summary(verb: str, names: list[str]) -> str:
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return f"{verb} {len(names)} job{'s' if len(names) != 1 else ''}: {shown}."


def _delete(jobs: list[Job], by: Actor) -> tuple[list[str], list[tuple[str, str]]]:
    """Delete each job; one refused for its dependents is retried once those went too."""
    done: list[str] = []
    failed: list[tuple[str, str]] = []
    pending = jobs
    while pending:
        conflicts: list[tuple[Job, Conflict]] = []
        for job in pending:
            try:
                job_services.job_delete(job=job, actor=by)
                done.append(job.name)
            except Conflict as exc:
                conflicts.append((job, exc))
            except DomainError as exc:
                failed.append((job.name, exc.message))
        if len(conflicts) == len(pending):
            failed.extend((job.name, exc.message) for job, exc in conflicts)
            break
        pending = [job for job, _ in conflicts]
    return done, failed


def perform(request: HttpRequest, action: str, jobs: list[Job]) -> None:
    """Do `action` to each job through the services and report the outcome as messages."""
    done: list[str] = []
    unchanged: list[str] = []
    failed: list[tuple[str, str]] = []
    by = access.actor(request)
    if action == "delete":
        done, failed = _delete(jobs, by)
    else:
        for job in jobs:
            try:
                if action == "run":
                    run_services.run_now(job=job, force=True, actor=by)
                elif job.disabled == (action == "enable"):
                    job_services.job_toggle(job=job, actor=by)
                else:
                    unchanged.append(job.name)
                    continue
                done.append(job.name)
            except DomainError as exc:
                failed.append((job.name, exc.message))
    if done:
        messages.success(request, _summary(ACTIONS[action][1], done))
    if unchanged:
        messages.info(request, _summary(f"Already {action}d, left as they were,", unchanged))
    for name, message in failed:
        messages.error(request, f"{name}: {message}")


@access.action()
def job_bulk(request: HttpRequest) -> HttpResponse:
    back = safe_next(request, request.POST.get("next"))
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        messages.error(request, "Choose an action: run, enable, disable or delete.")
        return redirect(back)
    perm = ACTIONS[action][0]
    if not access.allowed(request, perm):
        return access.forbidden(request, f"You do not have permission to {action} jobs ({perm}).")
    names = _names(request)
    chosen = Job.objects.filter(name__in=names).order_by("name")
    confirmed = request.POST.get("confirm") == "1"
    # (Dependents are shown on the confirmation only: a prefetched list would go stale
    # while the jobs are deleted one by one.)
    jobs = list(chosen if confirmed else chosen.prefetch_related("dependents"))
    missing = sorted(set(names) - {job.name for job in jobs})
    if not jobs:
        messages.warning(request, "Select at least one job first.")
        return redirect(back)
    if not confirmed:
        context = {"action": action, "jobs": jobs, "missing": missing, "next": back}
        return render(request, "ui/confirm_bulk.html", context)
    perform(request, action, jobs)
    for name in missing:
        messages.error(request, f"{name}: no such job (deleted meanwhile?)")
    return redirect(back)
