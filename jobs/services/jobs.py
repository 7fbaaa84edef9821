"""Job services: validate and upsert (Dkron's create/update), delete, toggle, clear history."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q

from executors.base import ConfigError
from executors.registry import UnknownExecutor, get_executor, merge_secrets
from jobs import schedule as sched
from jobs import secrets as job_secrets
from jobs import timeutil
from jobs.errors import Conflict, Forbidden, InvalidJob, NotFound
from jobs.models import Concurrency, Execution, ExecutionStatus, Job, MisfirePolicy, Run
from jobs.notifications import schema as notify_schema
from jobs.services.audit import SYSTEM, Actor, audit_record
from jobs.services.cluster import ensure_not_paused
from jobs.targeting import TagError, parse_tags
from plugins import UnknownPlugin
from processors.base import ProcessorOptions
from processors.registry import processor_class, validate_processors

# Fields a client sets; everything else on Job is maintained by the server.
USER_FIELDS = {
    "displayname": "",
    "schedule": "",
    "timezone": "",
    "owner": "",
    "owner_email": "",
    "disabled": False,
    "tags": dict,
    "metadata": dict,
    "retries": 0,
    "retry_backoff": 1.0,
    "concurrency": Concurrency.ALLOW,
    "executor": "",
    "executor_config": dict,
    "processors": dict,
    "ephemeral": False,
    "starts_at": None,
    "expires_at": None,
    "misfire_policy": MisfirePolicy.SKIP,
    "catchup_window": 3600.0,
    "history_limit": None,
    "notify": dict,
}


# Dkron's Validate() checks these, in this order, before it looks the parent up; dkronweb's
# other checks come after the parent (so a child Dkron would accept gets Dkron's 404 first).
DKRON_CHECKED = ("schedule", "concurrency", "timezone")


def invalid(text: str, details: dict[str, Any]) -> InvalidJob:
    """A refused job, worded as Dkron's API answers it (`Job validation failed: <err>.`)."""
    return InvalidJob(f"Job validation failed: {text}.", details)


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise invalid("name cannot be empty", {"name": "required"})
    if len(name) > 255:
        raise invalid("name is longer than 255 characters", {"name": "too long"})
    for ch in name:
        if not (unicodedata.category(ch) == "Ll" or ch in "0123456789_-"):
            msg = f"name contains illegal character '{ch}'"
            raise invalid(msg, {"name": msg + " (allowed: lowercase letters, 0-9, _ and -)"})
    return name


def parse_job_schedule(job: Job) -> sched.Schedule | None:
    if not job.schedule:
        return None
    return sched.parse(
        job.schedule, job_name=job.name, timezone=job.timezone, default_tz=settings.TIME_ZONE
    )


def compute_next_run(job: Job, *, after: datetime) -> datetime | None:
    """The true next fire time after `after`, honouring the start/expiry window."""
    if job.parent_id is not None:
        return None  # Dkron never schedules a child: it runs only after its parent succeeds
    schedule = parse_job_schedule(job)
    if schedule is None:
        return None
    if schedule.kind == "at":
        # Kept even when past: the scheduler treats a past @at as a misfire (policy decides).
        candidate = schedule.at
    else:
        base = after
        if job.starts_at and job.starts_at > after:
            base = job.starts_at - timedelta(microseconds=1)
        candidate = schedule.next_after(base, anchor=job.anchor)
    if candidate is not None and job.expires_at and candidate > job.expires_at:
        return None
    return candidate


def _validate(
    job: Job, *, parent_name: str, actor: Actor, old_config: dict[str, Any]
) -> dict[str, Any]:
    """Every problem of the job, by field (raises only Forbidden: the caller's permission)."""
    errors: dict[str, Any] = {}
    if not job.schedule and not parent_name:
        errors["schedule"] = "schedule is required unless parent_job is set"
    if job.timezone:
        try:
            sched.validate_timezone(job.timezone)
        except sched.ScheduleError as exc:
            errors["timezone"] = str(exc)
    if job.schedule and "timezone" not in errors:
        try:
            parse_job_schedule(job)
        except sched.ScheduleError as exc:
            errors["schedule"] = f"can't parse job schedule: {exc}"
    if job.concurrency not in Concurrency.values:
        errors["concurrency"] = "invalid concurrency policy value, use allow, forbid or replace"
    if job.misfire_policy not in MisfirePolicy.values:
        errors["misfire_policy"] = "use skip, run_once or run_all"
    if job.owner_email:
        try:
            validate_email(job.owner_email)
        except DjangoValidationError:
            errors["owner_email"] = "not a valid email address"
    try:
        notify_schema.parse(job.notify)
    except notify_schema.InvalidNotify as exc:
        errors["notify"] = exc.errors
    if job.starts_at and job.expires_at and job.expires_at <= job.starts_at:
        errors["expires_at"] = "must be after starts_at"
    if job.retry_backoff < 0 or job.catchup_window < 0:
        errors["retry_backoff"] = "must not be negative"
    try:
        parse_tags(job.tags)
    except TagError as exc:
        errors["tags"] = str(exc)
    if not job.executor:
        errors["executor"] = "executor is required"
    elif job.executor in settings.DKRON["DISABLED_EXECUTORS"]:
        errors["executor"] = f"executor '{job.executor}' is disabled on this server"
    else:
        try:
            executor = get_executor(job.executor)
        except UnknownExecutor as exc:
            errors["executor"] = str(exc)
        else:
            # Masked secrets sent back keep the stored ones (decrypted to merge and validate,
            # encrypted again to store when DKRON_ENCRYPTION_KEY is set: jobs.secrets).
            stored = job_secrets.decrypt_config(job.executor, old_config, strict=False)
            job.executor_config = merge_secrets(job.executor, job.executor_config, stored)
            try:
                executor.validate(job.executor_config)
            except ConfigError as exc:
                errors["executor_config"] = exc.errors
            else:
                job.executor_config = job_secrets.encrypt_config(job.executor, job.executor_config)
            if executor.runs_code and not actor.can_run_code:
                raise Forbidden(
                    f"you may not create or change '{job.executor}' jobs: they run code on "
                    "hosts and need the 'run code jobs' permission (jobs.run_code_jobs)",
                    {"executor": "permission required"},
                )
    errors.update(
        validate_processors(
            job.processors,
            ProcessorOptions.from_settings(settings.DKRON),
            settings.DKRON.get("DISABLED_PROCESSORS", ()),
        )
    )
    if not actor.can_run_code:
        _ensure_no_host_processors(job.processors)
    return errors


def _refuse(errors: dict[str, Any], fields: tuple[str, ...] | None = None) -> None:
    """Raise the refusal for `errors`, worded after the first of `fields` (all if None)."""
    keys = [f for f in fields if f in errors] if fields is not None else list(errors)
    if not keys:
        return
    value = errors[keys[0]]
    raise invalid(value if isinstance(value, str) else f"{keys[0]}: {value}", errors)


def _ensure_no_host_processors(processors: Any) -> None:
    """Processors that write on hosts (files) need the run-code permission too."""
    for name in processors if isinstance(processors, dict) else ():
        try:
            touches = processor_class(name).touches_hosts
        except (UnknownPlugin, ImportError, TypeError):
            continue  # reported by validate_processors
        if touches:
            raise Forbidden(
                f"you may not use the '{name}' processor: it writes on hosts and needs the "
                "'run code jobs' permission (jobs.run_code_jobs)",
                {"processors": "permission required"},
            )


def _check_parent(name: str, parent_name: str) -> Job | None:
    if not parent_name:
        return None
    try:
        parent = Job.objects.get(name=parent_name)
    except Job.DoesNotExist:
        raise NotFound(
            "specified parent job not found", {"parent_job": f"no job named '{parent_name}'"}
        ) from None
    # Walk up from the parent: meeting this job again means the edge would close a cycle.
    seen = {parent.name}
    ancestor = parent
    while ancestor.parent_id is not None:
        ancestor = Job.objects.only("name", "parent_id").get(pk=ancestor.parent_id)
        if ancestor.name == name:
            raise invalid(
                "parent_job would create a cycle", {"parent_job": " -> ".join([name, *seen])}
            )
        seen.add(ancestor.name)
    return parent


@transaction.atomic
def job_upsert(*, data: dict[str, Any], actor: Actor = SYSTEM) -> tuple[Job, bool]:
    """Create or fully replace a job by name (Dkron's upsert); server fields are kept."""
    ensure_not_paused()  # Dkron's 503 while paused, for the API, the UI, the admin and restore
    name = validate_name(data.get("name"))
    parent_name = data.get("parent_job") or ""
    if parent_name == name:  # Dkron's Validate() checks it right after the name
        raise invalid("the job can not have itself as parent", {"parent_job": "self"})
    job = Job.objects.select_for_update().filter(name=name).first()
    created = job is None
    if job is None:
        job = Job(name=name)
    before = {f: getattr(job, f) for f in USER_FIELDS}
    before["parent_job"] = job.parent_id
    old: dict[str, Any] = {
        "schedule": job.schedule,
        "timezone": job.timezone,
        "starts_at": job.starts_at,
        "expires_at": job.expires_at,
        "parent_id": job.parent_id,
        "config": dict(job.executor_config or {}),
        "notify": job.notify,
    }
    for field, default in USER_FIELDS.items():
        value = data.get(field)
        if value is None:
            value = default() if callable(default) else default
        setattr(job, field, value)
    job.notify = notify_schema.keep_masked_headers(job.notify, old["notify"])
    errors = _validate(job, parent_name=parent_name, actor=actor, old_config=old["config"])
    _refuse(errors, DKRON_CHECKED)  # Dkron's order: its own checks, the parent, then ours
    parent = _check_parent(name, parent_name)
    _refuse(errors)
    job.parent = parent
    now = timeutil.now()
    if created or job.schedule != old["schedule"]:
        # @every phase resets only when the schedule changes; whole seconds, as Dkron's
        # ConstantDelaySchedule rounds, so `next` has no fraction on the wire.
        job.anchor = now.replace(microsecond=0)
        schedule = parse_job_schedule(job)
        if schedule is not None and schedule.interval and job.starts_at and job.starts_at > now:
            job.anchor = job.starts_at - schedule.interval
    timing_changed = created or any(
        getattr(job, f) != old[f] for f in ("schedule", "timezone", "starts_at", "expires_at")
    )
    # Re-enabling keeps next_run: fires missed while disabled follow the misfire policy
    # (SPEC 10: maintenance disables jobs, and missed fires follow the misfire rules).
    if timing_changed or job.parent_id != old["parent_id"]:
        job.next_run = compute_next_run(job, after=now)
    job.save()
    detail: dict[str, Any] = {"executor": job.executor}
    if not created:
        detail["changed"] = sorted(_changed_fields(before, job))
    audit_record(actor=actor, action="create" if created else "update", target=name, detail=detail)
    return job, created


def _changed_fields(before: dict[str, Any], job: Job) -> list[str]:
    """Names (never values: configs hold secrets) of the fields the upsert changed."""
    after = {f: getattr(job, f) for f in USER_FIELDS}
    after["parent_job"] = job.parent_id
    return [f for f, value in after.items() if before.get(f) != value]


def job_get(name: str) -> Job:
    if "\x00" in name or len(name) > 255:
        raise NotFound(f"job {name[:255]!r} not found")  # never a valid name; spare the query
    try:
        return Job.objects.select_related("parent").get(name=name)
    except Job.DoesNotExist:
        raise NotFound(f"job '{name}' not found") from None


@transaction.atomic
def job_delete(*, job: Job, actor: Actor = SYSTEM) -> Job:
    """Delete a job; its queued executions are cancelled and running ones get a kill request.

    The rows go with the job; an agent whose execution row disappears stops the work.
    """
    # Refused while paused, except the runner deleting an ephemeral job after its success
    # (running continues while paused; such a job normally goes as soon as its run succeeds).
    if not (job.ephemeral and job.last_success is not None):
        ensure_not_paused("Job deletions are")
    if job.dependents.exists():
        names = ", ".join(job.dependents.values_list("name", flat=True))
        raise Conflict(
            f"could not delete job with dependent jobs, delete children first ({names})",
            {"dependent_jobs": names},
        )
    Execution.objects.filter(job=job, status=ExecutionStatus.RUNNING).update(kill_requested=True)
    snapshot = Job.objects.get(pk=job.pk)
    job.delete()
    audit_record(actor=actor, action="delete", target=snapshot.name)
    return snapshot


@transaction.atomic
def job_toggle(*, job: Job, actor: Actor = SYSTEM) -> Job:
    """Flip `disabled`. Enabling keeps next_run, so fires missed while the job was disabled
    follow its misfire policy (skip by default)."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    job.disabled = not job.disabled
    job.save(update_fields=["disabled", "updated_at"])
    audit_record(actor=actor, action="toggle", target=job.name, detail={"disabled": job.disabled})
    return Job.objects.select_related("parent").get(pk=job.pk)


@transaction.atomic
def job_clear_executions(*, job: Job, actor: Actor = SYSTEM) -> Job:
    """Dkron's DELETE /executions: remove finished history and reset counters."""
    Execution.objects.filter(job=job).exclude(
        status__in=[ExecutionStatus.QUEUED, ExecutionStatus.RUNNING]
    ).delete()
    # Runs left without executions go too (a finished run's executions may all be gone).
    Run.objects.filter(job=job).filter(Q(finished=True) | Q(executions__isnull=True)).exclude(
        executions__status__in=[ExecutionStatus.QUEUED, ExecutionStatus.RUNNING]
    ).delete()
    Job.objects.filter(pk=job.pk).update(
        success_count=0, error_count=0, last_success=None, last_error=None
    )
    audit_record(actor=actor, action="clear", target=job.name)
    job.refresh_from_db()
    return job
