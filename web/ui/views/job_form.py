"""Create, edit and clone a job; the executor's config fields as a fragment.

Saving goes through `job_services.job_upsert`, the API's own validation path, with the user
as the actor (so the run-code permission applies). Without JavaScript, the "Change executor"
button re-renders the form with the chosen executor's fields and saves nothing.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import available_timezones

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from executors import registry
from jobs.errors import DomainError, Forbidden, NotFound
from jobs.models import Job
from jobs.services import jobs as job_services
from web.ui import forms as f
from web.ui.access import ADD, EDIT, action, actor, page

JOB_NAMES_SHOWN = 500  # suggestions for parent_job (a datalist, not a closed list)


@cache
def _timezones() -> list[str]:
    """IANA zone names for the time zone picker (reading them walks tzdata; once per process)."""
    return sorted(available_timezones())


def _job(name: str) -> Job:
    try:
        return job_services.job_get(name)
    except NotFound:
        raise Http404(f"job '{name}' not found") from None


def _executor_choices(current: str) -> list[tuple[str, str]]:
    names = f.executor_names()
    choices = []
    for name in names:
        label = name
        try:
            if registry.executor_class(name).runs_code:
                label = f"{name} (runs code on hosts)"
        except (ImportError, TypeError):
            label = f"{name} (cannot be loaded)"
        choices.append((name, label))
    if current and current not in names:
        choices.append((current, f"{current} (not available)"))
    return choices


def _fields_for(executor: str) -> list[f.ConfigField]:
    fields = f.schema_fields(executor)
    return fields if fields is not None else []


def _render(
    request: HttpRequest,
    form: f.JobForm,
    *,
    mode: str,
    job: Job | None = None,
    status: int = 200,
    note: str = "",
) -> HttpResponse:
    executor = str(form["executor"].value() or "")
    if mode == "edit" and job is not None:
        action_url = reverse("ui-job-edit", args=[job.name])
        cancel_url = reverse("ui-job", args=[job.name])
    else:
        action_url = reverse("ui-job-new")
        cancel_url = reverse("ui-job", args=[job.name]) if job is not None else reverse("ui-jobs")
    names = Job.objects.order_by("name").values_list("name", flat=True)[:JOB_NAMES_SHOWN]
    context: dict[str, Any] = {
        "form": form,
        "mode": mode,
        "job": job,
        "executor": executor,
        "executor_choices": _executor_choices(executor),
        "executor_known": f.schema_fields(executor) is not None,
        "executor_description": f.executor_description(executor),
        "config_fields": form.config_fields,
        "action_url": action_url,
        "cancel_url": cancel_url,
        "job_names": [n for n in names if job is None or mode != "edit" or n != job.name],
        "timezones": _timezones(),
        "errors": form.error_summary() if form.is_bound else [],
        "note": note,
    }
    return render(request, "ui/job_form.html", context, status=status)


def _blank_form(request: HttpRequest, *, mode: str, job: Job | None) -> HttpResponse:
    if job is None:
        form = f.JobForm(initial=f.default_initial())
        form.config_fields = _fields_for(form.initial["executor"])
        f.fill_defaults(form.config_fields)
        return _render(request, form, mode=mode)
    clone = mode == "clone"
    form = f.JobForm(
        initial=f.initial_from_job(job, clone=clone),
        rows=f.rows_from_job(job),
        name_readonly=mode == "edit",
    )
    form.config_fields = _fields_for(job.executor)
    f.fill_defaults(form.config_fields)
    # Masked: env and header values show as the mask, which saving sends back (keeping them).
    shown = registry.mask_secrets(job.executor, job.executor_config or {})
    extra = f.fill_from_config(form.config_fields, shown, keep_secrets=not clone)
    if clone:  # a clone starts without secrets, those the schema names and any that look so
        masked = registry.mask_secrets(job.executor, extra)
        extra = {k: v for k, v in extra.items() if masked[k] == v}
    form.initial["extra_json"] = f.extra_json_text(job.executor, extra)
    return _render(request, form, mode=mode, job=job)


def _refresh(request: HttpRequest, *, mode: str, job: Job | None, note: str) -> HttpResponse:
    """Re-render what was posted with the now chosen executor's blank fields; save nothing."""
    post = request.POST
    initial = {k: post.get(k) for k in post if k in f.JobForm.base_fields}
    if mode == "edit" and job is not None:
        initial["name"] = job.name
    form = f.JobForm(initial=initial, rows_from=post, name_readonly=mode == "edit")
    executor = str(post.get("executor", "")).strip()
    form.config_fields = _fields_for(executor)
    if post.get("_config_executor") == executor:
        f.fill_from_post(form.config_fields, post)  # the same executor: keep what was typed
    else:
        f.fill_defaults(form.config_fields)
    return _render(request, form, mode=mode, job=job, note=note)


def _submit(request: HttpRequest, *, mode: str, job: Job | None) -> HttpResponse:
    post = request.POST
    executor = str(post.get("executor", "")).strip()
    shown_for = str(post.get("_config_executor", executor))
    if "_refresh" in post:
        return _refresh(request, mode=mode, job=job, note=f"Showing the {executor} settings.")
    if shown_for != executor:
        note = f"The executor changed to {executor}: fill in its settings, then save."
        return _refresh(request, mode=mode, job=job, note=note)
    form = f.JobForm(post, name_readonly=mode == "edit")
    form.config_fields = _fields_for(executor)
    f.fill_from_post(form.config_fields, post)
    for cf in form.config_fields:
        if mode == "edit" and job is not None and cf.kind == "password":
            stored = (job.executor_config or {}).get(cf.key)
            if job.executor == executor and stored not in (None, ""):
                cf.stored_secret = True
                cf.help = f"{cf.help} {f.SECRET_KEPT_HELP}".strip()
    if not form.is_valid():
        return _render(request, form, mode=mode, job=job, status=400)
    name = job.name if mode == "edit" and job is not None else form.cleaned_data["name"]
    if mode != "edit" and Job.objects.filter(name=name).exists():
        form.add_error("name", f"a job named '{name}' already exists")
        return _render(request, form, mode=mode, job=job, status=400)
    data = form.job_data(name=name)
    try:
        saved, created = job_services.job_upsert(data=data, actor=actor(request))
    except DomainError as exc:
        form.apply_service_error(exc, extra_keys=form.cleaned_data["extra_json"].keys())
        status = 403 if isinstance(exc, Forbidden) else 400
        return _render(request, form, mode=mode, job=job, status=status)
    verb = "created" if created else "saved"
    messages.success(request, f"Job {saved.name} {verb}")
    return redirect("ui-job", name=saved.name)


@action(ADD, methods=("GET", "POST"))
def job_create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _submit(request, mode="new", job=None)
    return _blank_form(request, mode="new", job=None)


@action(EDIT, methods=("GET", "POST"))
def job_edit(request: HttpRequest, name: str) -> HttpResponse:
    job = _job(name)
    if request.method == "POST":
        return _submit(request, mode="edit", job=job)
    return _blank_form(request, mode="edit", job=job)


@action(ADD, methods=("GET",))
def job_clone(request: HttpRequest, name: str) -> HttpResponse:
    return _blank_form(request, mode="clone", job=_job(name))


@page
def executor_fields(request: HttpRequest) -> HttpResponse:
    """The config fields of `?executor=<name>`, blank with the schema's defaults."""
    executor = request.GET.get("executor", "")
    fields = f.schema_fields(executor)
    if fields is not None:
        f.fill_defaults(fields)
    context = {
        "executor": executor,
        "config_fields": fields or [],
        "executor_known": fields is not None,
        "executor_description": f.executor_description(executor),
    }
    return render(request, "ui/partials/executor_fields.html", context)
