"""One job: its page, the live executions fragment, and its actions (run, toggle, delete, kill).

Actions are POSTs that change state through the services only, then go back to the job page
with a message; a refused action (a conflict) becomes an error message, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import QuerySet
from django.db.models.functions import Length, Right
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from executors.registry import mask_secrets
from jobs import params as job_params
from jobs import schedule as sched
from jobs import selectors, timeutil, timing
from jobs.errors import DomainError, NotFound
from jobs.models import ACTIVE_STATUSES, ConcurrencyKey, Execution, ExecutionStatus, Job
from jobs.services import capacity
from jobs.services import executions as execution_services
from jobs.services import jobs as job_services
from jobs.services import revisions as job_revisions
from jobs.services import runs as run_services
from web.ui.access import DELETE, OPERATE, action, actor, page
from web.ui.run_form import RunParamsForm

EXECUTIONS_SHOWN = 50
HISTORY_SHOWN = 5
TAIL_BYTES = 4096
NEXT_FIRES = 5
# A page shows the start of a long value and links to all of it: a 1.5 MB command or 10,000
# metadata keys rendered in full made a page 566,584 px tall.
PREVIEW_CHARS = 1000
PREVIEW_KEYS = 50
PREVIEW_ITEM_CHARS = 200
FULL_PARTS = ("config", "tags", "metadata")


def _job(name: str) -> Job:
    try:
        return job_services.job_get(name)
    except NotFound:
        raise Http404(f"job '{name}' not found") from None


def _back(request: HttpRequest, name: str) -> HttpResponse:
    """To `next` when it is a local URL (an action posted from another page), else the job."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect("ui-job", name=name)


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """The start of a value for the page; `cut` when the page must link to the whole of it."""

    text: str
    size: int  # characters in the whole value
    cut: bool


def preview(value: Any, limit: int = PREVIEW_CHARS) -> Preview:
    text = value if isinstance(value, str) else str(value)
    return Preview(text[:limit], len(text), len(text) > limit)


@dataclass(frozen=True)
class MapPreview:
    """The first PREVIEW_KEYS entries of a map (tags, metadata), each value shortened."""

    items: list[tuple[Preview, Preview]]
    hidden: int  # entries not shown

    @property
    def cut(self) -> bool:
        return self.hidden > 0 or any(k.cut or v.cut for k, v in self.items)


def map_preview(mapping: Mapping[str, Any] | None) -> MapPreview:
    entries = list((mapping or {}).items())
    shown = [
        (preview(k, PREVIEW_ITEM_CHARS), preview(v, PREVIEW_ITEM_CHARS))
        for k, v in entries[:PREVIEW_KEYS]
    ]
    return MapPreview(shown, len(entries) - len(shown))


@dataclass
class ScheduleView:
    """What the page says about when the job runs."""

    description: str
    zone: str
    fires: list[dict[str, Any]]
    note: str = ""
    error: str = ""


def schedule_view(job: Job, *, now: datetime | None = None) -> ScheduleView:
    """The schedule in plain language and the next fire times, in the schedule's zone."""
    now = now or timeutil.now()
    if job.parent_id is not None:
        parent = job.parent.name if job.parent else "its parent"
        note = f"Runs after {parent} succeeds; it is never scheduled on its own."
        if job.schedule:
            note += f" (Its own schedule “{job.schedule}” is not used.)"
        return ScheduleView(f"After {parent} succeeds", "", [], note=note)
    try:
        parsed = timing.parse_job_schedule(job)
    except sched.ScheduleError as exc:
        return ScheduleView(job.schedule, "", [], error=f"The schedule cannot be used: {exc}")
    if parsed is None:
        return ScheduleView("No schedule", "", [], note="It runs only when started by hand.")
    zone = parsed.tz.key
    description = sched.describe(parsed)
    if parsed.kind == "manual":
        return ScheduleView(description, zone, [], note="It runs only when started by hand.")
    times: list[datetime] = []
    if parsed.kind == "at":
        if parsed.at is not None and parsed.at > now:
            times = [parsed.at]
    else:
        after = now
        while len(times) < NEXT_FIRES:
            moment = timing.compute_next_run(job, after=after)
            if moment is None or (times and moment <= times[-1]):
                break
            times.append(moment)
            after = moment
    fires = [
        {
            "at": t,
            "local": t.astimezone(parsed.tz).strftime("%a %Y-%m-%d %H:%M:%S %Z"),
            # With jitter: where in its window this fire starts (stable, see timing).
            "offset": _offset_text(timing.jitter_offset(job, t)) if job.jitter > 0 else "",
        }
        for t in times
    ]
    note = ""
    if not fires:
        note = "It will not fire again."
    elif job.disabled:
        note = "The job is disabled: these fire times are skipped until it is enabled."
    return ScheduleView(description, zone, fires, note=note)


def _offset_text(offset: timedelta) -> str:
    seconds = offset.total_seconds()
    return f"starts +{seconds:.1f}s" if seconds < 60 else f"starts +{seconds / 60:.1f} min"


def _tail(text: str, total_chars: int) -> tuple[str, bool]:
    """The last TAIL_BYTES bytes of the output (whole characters) and whether that cut it."""
    data = text.encode("utf-8", "replace")
    cut = total_chars > len(text)
    if len(data) > TAIL_BYTES:
        data = data[-TAIL_BYTES:]
        cut = True
    return data.decode("utf-8", "ignore"), cut


def _executions(job: Job) -> list[Execution]:
    """The newest executions with only the tail of their output read from the database."""
    rows: QuerySet[Execution] = (
        selectors.with_run_params(Execution.objects.filter(job=job))
        .defer("output")
        .annotate(output_tail=Right("output", TAIL_BYTES), output_length=Length("output"))
        .order_by("-id")[:EXECUTIONS_SHOWN]
    )
    executions = list(rows)
    declared = [p.get("name") for p in job.params if isinstance(p, dict)] if job.params else []
    held = waiting_notes(executions)
    for e in executions:
        e.waiting_note = held.get(e.pk, "")  # type: ignore[attr-defined]
        e.params_shown = _params_shown(e.run_params, declared)  # type: ignore[attr-defined]
        tail, cut = _tail(e.output_tail or "", e.output_length or 0)  # type: ignore[attr-defined]
        e.tail = tail  # type: ignore[attr-defined]
        e.tail_cut = cut  # type: ignore[attr-defined]
        e.active = e.status in ACTIVE_STATUSES  # type: ignore[attr-defined]
    return executions


def _limits_text(limit: int | None, rate: str) -> str:
    parts = [f"limit {limit}"] if limit is not None else []
    if rate:
        parts.append(f"rate {rate}")
    return f" ({', '.join(parts)})" if parts else ""


def waiting_notes(executions: list[Execution]) -> dict[int, str]:
    """Why each held execution (queued with `waiting`) has not started, by id: its key's
    limits read in one query for all of them."""
    held = [e for e in executions if e.waiting and e.status == ExecutionStatus.QUEUED]
    keys = {e.concurrency_key for e in held if e.waiting == capacity.WAIT_KEY}
    limits = {row.key: row for row in (ConcurrencyKey.objects.filter(key__in=keys) if keys else [])}
    notes: dict[int, str] = {}
    for e in held:
        if e.waiting == capacity.WAIT_SLOT:
            notes[e.pk] = "waiting for a free agent slot"
        elif e.waiting == capacity.WAIT_KEY:
            row = limits.get(e.concurrency_key)
            shown = _limits_text(row.limit, row.rate_limit) if row is not None else ""
            notes[e.pk] = f"waiting for key {e.concurrency_key}{shown}"
        else:
            notes[e.pk] = f"waiting ({e.waiting})"
    return notes


@dataclass(frozen=True)
class KeyView:
    """What the job page says about the job's concurrency key."""

    template: str  # as the job declares it
    key: str  # as its runs hold it ("" when it cannot render)
    limit: int | None
    rate_limit: str
    state: capacity.KeyState | None  # the key's limits and counts now (None: no row yet)

    @property
    def key_limits_differ(self) -> bool:
        """Another job saved last with the key gave it other limits than this job's."""
        return self.state is not None and (self.state.limit, self.state.rate_limit) != (
            self.limit,
            self.rate_limit,
        )


def key_view(job: Job) -> KeyView | None:
    if not job.concurrency_key:
        return None
    key = capacity.job_key(job)
    state = next(iter(capacity.key_states([key])), None) if key else None
    return KeyView(job.concurrency_key, key, job.concurrency_limit, job.rate_limit, state)


def _params_shown(values: Any, declared: list[Any]) -> list[tuple[str, str]]:
    """A run's parameters as name=value text, in the declaration's order (PostgreSQL's jsonb
    keeps its own key order); bools as the API writes them."""
    if not isinstance(values, dict):
        return []
    rank = {name: i for i, name in enumerate(declared)}
    items = sorted(values.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
    return [(name, "" if v is None else job_params.as_text(v)) for name, v in items]


def _executions_context(job: Job) -> dict[str, Any]:
    executions = _executions(job)
    return {
        "job": job,
        "executions": executions,
        "shown": EXECUTIONS_SHOWN,
        "zone": job.timezone or "UTC",
    }


@page
def job_page(request: HttpRequest, name: str) -> HttpResponse:
    job = _job(name)
    if request.GET.get("fragment") == "status":  # the header's live status and counts
        return render(request, "ui/partials/job_status.html", {"job": job})
    config = mask_secrets(job.executor, job.executor_config or {})
    context = {
        **_executions_context(job),
        "config": [(key, preview(value)) for key, value in sorted(config.items())],
        "tags": map_preview(job.tags),
        "metadata": map_preview(job.metadata),
        "schedule": schedule_view(job),
        "next_fire": timing.job_next_fire(job),  # a disabled job's next_run is stale
        "dependents": list(job.dependents.order_by("name").values_list("name", flat=True)),
        "problems": _run_problems(job),
        "concurrency_key": key_view(job),
        # A job with run parameters asks for them before it runs (web.ui.run_form).
        "run_form": _run_form(job),
        # SLA rules and the job's alerts, open ones first (jobs.services.sla).
        "sla_rules": sorted((job.sla or {}).items()) if isinstance(job.sla, dict) else [],
        **_alerts_context(job),
        # The latest changes (web.ui.views.job_history has them all, with diffs and restore).
        "revisions": list(job_revisions.revision_list(job.name)[:HISTORY_SHOWN]),
    }
    return render(request, "ui/job.html", context)


JOB_ALERTS_SHOWN = 10


def _alerts_context(job: Job) -> dict[str, Any]:
    alerts = selectors.alert_list(job=job.name)
    shown = sorted(alerts[:JOB_ALERTS_SHOWN], key=lambda a: (a.state != "open", -a.pk))
    return {"alerts": shown, "alerts_open": alerts.filter(state="open").count()}


def _run_form(job: Job, data: Any = None) -> RunParamsForm | None:
    if not job.params:
        return None
    try:
        return RunParamsForm(job.params, data)
    except Exception:  # a declaration stored by an older release: the plain Run button
        return None


def _run_problems(job: Job) -> list[tuple[str, str]]:
    """Why this job's runs fail before any executor starts (what `agent.runner.run_refusal`
    refuses): the problems a restore stored it with, and an executor disabled since."""
    items = job_services.problem_items(job.problems or {})
    if job.executor and job.executor in settings.DKRON["DISABLED_EXECUTORS"]:
        disabled = ("executor", "disabled by DKRON_DISABLED_EXECUTORS on this server")
        if disabled[0] not in dict(items):
            items.insert(0, disabled)
    return items


@page
def job_full_value(request: HttpRequest, name: str, part: str) -> HttpResponse:
    """All of a value the job page shows only the start of, as plain text (secrets masked).

    `part` is config (with `?key=`), tags or metadata; maps come as JSON. (Text fields such as
    the schedule are at most 255 characters and always shown whole.)
    """
    job = _job(name)
    value: Any
    if part == "config":
        config = mask_secrets(job.executor, job.executor_config or {})
        key = request.GET.get("key", "")
        if key not in config:
            raise Http404(f"no executor config key {key[:100]!r}")
        value = config[key]
    elif part in FULL_PARTS:
        value = getattr(job, part)
    else:
        raise Http404("no such part of a job")
    if isinstance(value, str):
        text = value
    elif part in ("tags", "metadata"):
        text = json.dumps(value, indent=2, ensure_ascii=False)
    else:
        text = str(value)
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


@page
def job_executions(request: HttpRequest, name: str) -> HttpResponse:
    """The executions table alone: the page reloads it every second."""
    return render(request, "ui/partials/job_executions.html", _executions_context(_job(name)))


@page
def execution_output(request: HttpRequest, pk: int) -> HttpResponse:
    output = Execution.objects.filter(pk=pk).values_list("output", flat=True).first()
    if output is None:
        raise Http404("execution not found")
    response = HttpResponse(output, content_type="text/plain; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


# --- actions ---------------------------------------------------------------------------------


@action(OPERATE)
def job_run(request: HttpRequest, name: str) -> HttpResponse:
    """Run now. Running needs OPERATE only: the run-code permission guards changing code."""
    job = _job(name)
    params = None
    form = _run_form(job, request.POST)
    if form is not None:
        if not form.is_valid():
            messages.error(request, form.first_error())
            return _back(request, job.name)
        params = form.values()
    try:
        run = run_services.run_now(job=job, force=True, actor=actor(request), params=params)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Run started (group {run.pk})")
    return _back(request, job.name)


@action(OPERATE)
def job_toggle(request: HttpRequest, name: str) -> HttpResponse:
    job = job_services.job_toggle(job=_job(name), actor=actor(request))
    messages.success(request, "Job disabled" if job.disabled else "Job enabled")
    return _back(request, job.name)


@action(DELETE, methods=("GET", "POST"))
def job_delete(request: HttpRequest, name: str) -> HttpResponse:
    job = _job(name)
    dependents = list(job.dependents.order_by("name").values_list("name", flat=True))
    if request.method == "GET":
        return render(request, "ui/confirm_delete.html", {"job": job, "dependents": dependents})
    try:
        job_services.job_delete(job=job, actor=actor(request))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("ui-job", name=job.name)
    messages.success(request, f"Job {job.name} deleted")
    return redirect("ui-jobs")


@action(OPERATE)
def execution_kill(request: HttpRequest, pk: int) -> HttpResponse:
    execution = Execution.objects.filter(pk=pk).first()
    if execution is None:
        raise Http404("execution not found")
    try:
        killed = execution_services.execution_kill(execution=execution, actor=actor(request))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        if killed.status == ExecutionStatus.KILLED:
            messages.success(request, f"Execution {killed.pk} killed")
        else:
            messages.success(request, f"Kill requested for execution {killed.pk}")
    return _back(request, execution.job_name)
