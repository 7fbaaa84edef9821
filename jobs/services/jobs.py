"""Job services: validate and upsert (Dkron's create/update), delete, toggle, clear history."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q

from confidential import SecretNotKept
from executors.base import ConfigError
from executors.registry import UnknownExecutor, get_executor, merge_secrets, secret_spec
from jobs import concurrency, timeutil
from jobs import params as job_params
from jobs import schedule as sched
from jobs import secrets as job_secrets
from jobs import sla as job_sla
from jobs.errors import Conflict, Forbidden, InvalidJob, NotFound
from jobs.models import (
    Concurrency,
    Execution,
    ExecutionStatus,
    Job,
    JobRevision,
    MisfirePolicy,
    Run,
)
from jobs.notifications import schema as notify_schema
from jobs.problems import describe_problems, problem_items  # noqa: F401 (re-exported)
from jobs.services import capacity
from jobs.services import revisions as job_revisions
from jobs.services.audit import SYSTEM, Actor, audit_record
from jobs.services.cluster import ensure_not_paused
from jobs.targeting import TagError, parse_tags
from jobs.timing import compute_next_run, next_run_from_now, parse_job_schedule, set_next
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
    "jitter": 0.0,
    "history_limit": None,
    "notify": dict,
    "exclude_calendars": list,
    "only_calendars": list,
    "params": list,
    "concurrency_key": "",
    "concurrency_limit": None,
    "rate_limit": "",
    "sla": dict,
}


MAX_JITTER = 86400.0


GAPS_CHECKED = 100  # fires of a cron schedule looked at for its shortest gap


def _jitter_problem(job: Job) -> str:
    """A jitter window must be shorter than the shortest gap between two fires: wider, a fire
    could start after the next one was due, fires would bunch instead of spreading, and the
    next fire could fall behind the schedule for good. For cron, the shortest gap among its
    next GAPS_CHECKED fires (a few ms)."""
    if not math.isfinite(job.jitter) or job.jitter < 0 or job.jitter > MAX_JITTER:
        return "jitter must be between 0s and 24h"
    if job.jitter == 0:
        return ""
    try:
        schedule = parse_job_schedule(job)
    except sched.ScheduleError:  # the schedule's own check names that problem
        return ""
    if schedule is None or schedule.kind in ("at", "manual"):
        return ""
    gap = schedule.interval.total_seconds() if schedule.interval else _shortest_gap(schedule)
    if gap is not None and job.jitter >= gap:
        return (
            f"jitter must be shorter than the shortest gap between two fires of "
            f"'{job.schedule}' ({gap:g}s)"
        )
    return ""


def _shortest_gap(schedule: sched.Schedule) -> float | None:
    fires: list[Any] = []
    after = timeutil.now()
    for _ in range(GAPS_CHECKED):
        nxt = schedule.next_after(after)
        if nxt is None:
            break
        fires.append(nxt)
        after = nxt
    gaps = [(b - a).total_seconds() for a, b in zip(fires, fires[1:], strict=False)]
    return min(gaps) if gaps else None


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


def _first_message(errors: dict[str, Any]) -> str:
    key, value = next(iter(errors.items()))
    return value if isinstance(value, str) else f"{key}: {value}"


def _dkron_checks(job: Job, *, parent_name: str) -> dict[str, Any]:
    """What Dkron's own Job.Validate() refuses, in its order after the name and the self-parent
    (job_upsert checks those first): schedule, concurrency, timezone. Everything that
    refuses, restore included, refuses these: a Dkron backup never holds such a job. (The
    executor's own Dkron checks, shell's timeout and mem_limit, come with the executor:
    `Executor.dkron_checked_keys`.)"""
    errors: dict[str, Any] = {}
    zone_ok = True
    if job.timezone:
        try:
            sched.validate_timezone(job.timezone)
        except sched.ScheduleError:
            zone_ok = False  # reported after concurrency, in Dkron's order
    if not job.schedule and not parent_name:
        errors["schedule"] = "schedule is required unless parent_job is set"
    if job.schedule and zone_ok:
        try:
            parse_job_schedule(job)
        except sched.ScheduleError as exc:
            errors["schedule"] = f"can't parse job schedule: {exc}"
    if job.concurrency == "":
        job.concurrency = Concurrency.ALLOW  # Dkron's "" means allow
    if job.concurrency not in Concurrency.values:
        errors["concurrency"] = "invalid concurrency policy value, use allow, forbid or replace"
    if not zone_ok:
        errors["timezone"] = f"unknown time zone '{job.timezone}'"
    return errors


def _own_checks(
    job: Job,
    *,
    actor: Actor,
    old_executor: str,
    old_config: dict[str, Any],
    refused: dict[str, Any],
) -> dict[str, Any]:
    """dkronweb's own save-time findings, beyond Dkron's; returns them by key.

    Dkron checks that the executor itself declares (`dkron_checked_keys`) go to `refused`.
    Permission refusals raise at once: no door stores a job its caller may not save.
    The config is stored with its secrets merged and encrypted whatever the findings.
    """
    problems: dict[str, Any] = {}
    if job.misfire_policy not in MisfirePolicy.values:
        problems["misfire_policy"] = "use skip, run_once or run_all"
    if job.owner_email:
        try:
            validate_email(job.owner_email)
        except DjangoValidationError:
            problems["owner_email"] = "not a valid email address"
    try:
        notify_schema.parse(job.notify)
    except notify_schema.InvalidNotify as exc:
        problems["notify"] = exc.errors
    if job.starts_at and job.expires_at and job.expires_at <= job.starts_at:
        problems["expires_at"] = "must be after starts_at"
    if job.retry_backoff < 0 or job.catchup_window < 0:
        problems["retry_backoff"] = "must not be negative"
    if jitter_problem := _jitter_problem(job):
        problems["jitter"] = jitter_problem
    try:
        job_sla.parse(job.sla)
    except job_sla.InvalidSla as exc:
        problems["sla"] = exc.errors
    else:
        job.sla = job_sla.stored(job.sla)
    problems.update(
        concurrency.problems(
            key=job.concurrency_key,
            limit=job.concurrency_limit,
            rate=job.rate_limit,
            metadata=job.metadata,
        )
    )
    try:
        parse_tags(job.tags)
    except TagError as exc:
        problems["tags"] = str(exc)
    executor = None
    if not job.executor:
        problems["executor"] = "executor is required"
    else:
        try:
            executor = get_executor(job.executor)
        except UnknownExecutor as exc:
            problems["executor"] = str(exc)
        else:
            if job.executor in settings.DKRON["DISABLED_EXECUTORS"]:
                problems["executor"] = f"executor '{job.executor}' is disabled on this server"
    # Masked secrets sent back keep the stored ones (decrypted to merge and validate,
    # encrypted again to store when DKRON_ENCRYPTION_KEY is set: jobs.secrets), unless where
    # they go changed: then the request must resend them (confidential.merge).
    old_executor = old_executor or job.executor
    stored = job_secrets.decrypt_config(old_executor, old_config, strict=False)
    try:
        job.executor_config = merge_secrets(
            job.executor, job.executor_config, stored, old_name=old_executor
        )
    except SecretNotKept as exc:
        raise invalid(
            str(exc), {"executor_config": {exc.secret.replace(" ", "."): str(exc)}}
        ) from None
    if executor is not None:
        try:
            executor.validate(job.executor_config)
        except ConfigError as exc:
            checked = executor.dkron_checked_keys
            dkron = {k: v for k, v in exc.errors.items() if k.split(".")[0] in checked}
            own = {k: v for k, v in exc.errors.items() if k not in dkron}
            if dkron:
                refused["executor_config"] = dkron
            if own:
                problems["executor_config"] = own
        if executor.runs_code and not actor.can_run_code:
            raise Forbidden(
                f"you may not create or change '{job.executor}' jobs: they run code on "
                "hosts and need the 'run code jobs' permission (jobs.run_code_jobs)",
                {"executor": "permission required"},
            )
    _params_checks(job, problems)
    job.executor_config = job_secrets.encrypt_config(job.executor, job.executor_config)
    job.notify = job_secrets.encrypt_notify(job.notify)
    problems.update(
        validate_processors(
            job.processors,
            ProcessorOptions.from_settings(settings.DKRON),
            settings.DKRON.get("DISABLED_PROCESSORS", ()),
        )
    )
    if not actor.can_run_code:
        _ensure_no_host_processors(job.processors)
    return problems


def _params_checks(job: Job, problems: dict[str, Any]) -> None:
    """The run parameters' declaration, and the placeholders of the plain (merged, not yet
    encrypted) config: they must name declared parameters and stay out of secrets and of
    the keys that decide where secrets go (jobs.params). The declaration is stored as parsed."""
    try:
        declared = job_params.parse_declaration(job.params)
    except job_params.InvalidParams as exc:
        problems["params"] = exc.errors
        return
    job.params = job_params.stored(declared)
    spec = secret_spec(job.executor, job.executor_config)
    found = job_params.config_problems(declared, spec, job.executor_config)
    if found:
        problems["executor_config"] = {**found, **problems.get("executor_config", {})}


def _validate(
    job: Job,
    *,
    parent_name: str,
    actor: Actor,
    old_executor: str,
    old_config: dict[str, Any],
    keep_problems: bool,
) -> None:
    """Dkron's checks first, then the parent, then dkronweb's; sets `job.problems`.

    The order is Dkron's: its Validate() refuses before it looks the parent up (404
    `specified parent job not found`), and dkronweb's own findings come after both, so a job
    Dkron would accept gets Dkron's answer first. What Dkron refuses is refused everywhere.
    dkronweb's own findings refuse the upsert too, unless `keep_problems` (restore and import:
    a Dkron backup must restore whole), when the job is stored with them in `job.problems`
    and its runs fail with them (agent.runner).
    """
    refused = _dkron_checks(job, parent_name=parent_name)
    refused.update(_calendar_checks(job))
    problems = _own_checks(
        job, actor=actor, old_executor=old_executor, old_config=old_config, refused=refused
    )
    if not refused:
        _check_parent(job.name, parent_name)  # read only; checked again under the lock
    if refused or (problems and not keep_problems):
        # The message names Dkron's finding first; the details hold every finding, so a form
        # can show each one where it was typed.
        details = dict(refused)
        for key, value in problems.items():
            if isinstance(details.get(key), dict) and isinstance(value, dict):
                details[key] = {**details[key], **value}
            else:
                details.setdefault(key, value)
        raise invalid(_first_message(refused or problems), details)
    job.problems = problems


def _calendar_checks(job: Job) -> dict[str, Any]:
    """Calendars are named by existing calendars, always (restore too: a job that fired in
    a blackout because its calendar was missing would be worse than a refused job)."""
    from jobs.services.calendars import unknown_names

    errors: dict[str, Any] = {}
    for field in ("exclude_calendars", "only_calendars"):
        names = list(dict.fromkeys(getattr(job, field) or []))
        setattr(job, field, names)
        unknown = unknown_names(names)
        if unknown:
            errors[field] = f"{field}: unknown calendar '{unknown[0]}'"
    return errors


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


def job_upsert(
    *,
    data: dict[str, Any],
    actor: Actor = SYSTEM,
    keep_problems: bool = False,
    source: str = "",
    restored_from: int | None = None,
) -> tuple[Job, bool]:
    """Create or fully replace a job by name (Dkron's upsert); server fields are kept.

    `keep_problems` stores a job that only dkronweb's own validation finds wrong, with its
    findings (`Job.problems`); restore and import use it. An upsert that validates clears them.
    A change is recorded as a revision (jobs.services.revisions) whose `source` is the
    actor's door unless given (restore, import, apply); `restored_from` marks a rollback
    (`job_rollback`). An upsert that changes nothing records none.

    Validation runs before the transaction, not inside it: it is pure work that grows with the
    body (a 1.5 MB command, 10,000 metadata keys), and on SQLite a transaction holds the
    database's write lock from its first statement (IMMEDIATE, see settings), so validating
    inside it stalled every other writer, the in-process agent's heartbeat included.
    """
    ensure_not_paused()  # Dkron's 503 while paused, for the API, the UI, the admin and restore
    name = validate_name(data.get("name"))
    parent_name = data.get("parent_job") or ""
    if parent_name == name:  # Dkron's Validate() checks it right after the name
        raise invalid("the job can not have itself as parent", {"parent_job": "self"})
    seen = Job.objects.filter(name=name).first()
    validated = _validated(
        name, data, seen, parent_name=parent_name, actor=actor, keep_problems=keep_problems
    )
    return _store(
        name,
        data,
        validated,
        basis=_validation_basis(seen),
        actor=actor,
        keep_problems=keep_problems,
        source=source,
        restored_from=restored_from,
    )


def job_check(*, data: dict[str, Any], actor: Actor = SYSTEM) -> None:
    """What `job_upsert` would refuse, without writing: for forms that show the refusal on the
    form itself (the admin) instead of reporting it after a save that did not happen."""
    ensure_not_paused()
    name = validate_name(data.get("name"))
    parent_name = data.get("parent_job") or ""
    if parent_name == name:
        raise invalid("the job can not have itself as parent", {"parent_job": "self"})
    seen = Job.objects.filter(name=name).first()
    _validated(name, data, seen, parent_name=parent_name, actor=actor, keep_problems=False)


def _validation_basis(job: Job | None) -> tuple[Any, ...] | None:
    """What validation reads from the stored job: the secrets kept by masks, and the
    notify headers kept by masks. If it changed before the lock is taken, validate again."""
    if job is None:
        return None
    return (job.executor, job.executor_config, job.notify)


def _validated(
    name: str,
    data: dict[str, Any],
    stored: Job | None,
    *,
    parent_name: str,
    actor: Actor,
    keep_problems: bool,
) -> Job:
    """An unsaved Job holding the body's fields, validated, its secrets merged and encrypted.

    Reads nothing but `stored` and writes nothing, so it can run outside the transaction.
    """
    job = Job(name=name)
    for field, default in USER_FIELDS.items():
        value = data.get(field)
        if value is None:
            value = default() if callable(default) else default
        setattr(job, field, value)
    old_notify = stored.notify if stored is not None else {}
    old_config = dict(stored.executor_config or {}) if stored is not None else {}
    try:
        job.notify = notify_schema.merge_secrets(
            job.notify, job_secrets.decrypt_notify(old_notify, strict=False)
        )
    except SecretNotKept as exc:
        raise invalid(str(exc), {"notify": {exc.secret.replace(" ", "."): str(exc)}}) from None
    _validate(
        job,
        parent_name=parent_name,
        actor=actor,
        old_executor=stored.executor if stored is not None else "",
        old_config=old_config,
        keep_problems=keep_problems,
    )
    return job


@transaction.atomic
def _store(
    name: str,
    data: dict[str, Any],
    validated: Job,
    *,
    basis: tuple[Any, ...] | None,
    actor: Actor,
    keep_problems: bool,
    source: str = "",
    restored_from: int | None = None,
) -> tuple[Job, bool]:
    parent_name = data.get("parent_job") or ""
    job = Job.objects.select_for_update().filter(name=name).first()
    created = job is None
    if job is None:
        job = Job(name=name)
    if _validation_basis(None if created else job) != basis:
        # Another writer changed the job since it was read: merge its secrets instead. Rare,
        # and then validating under the lock is the price of never storing a stale secret.
        validated = _validated(
            name,
            data,
            None if created else job,
            parent_name=parent_name,
            actor=actor,
            keep_problems=keep_problems,
        )
    before = {f: getattr(job, f) for f in USER_FIELDS}
    before["parent_job"] = job.parent_id
    revised = None if created else job_revisions.definition(job)
    revised_secrets = None if created else job_revisions.Secrets.of_job(job)
    old: dict[str, Any] = {
        "schedule": job.schedule,
        "timezone": job.timezone,
        "starts_at": job.starts_at,
        "expires_at": job.expires_at,
        "jitter": job.jitter,
        "parent_id": job.parent_id,
        "exclude_calendars": job.exclude_calendars,
        "only_calendars": job.only_calendars,
    }
    for field in USER_FIELDS:
        setattr(job, field, getattr(validated, field))
    job.problems = validated.problems
    job.has_sla = bool(job.sla)  # the SLA check reads only these (job_sla_idx)
    parent = _check_parent(name, parent_name)
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
        getattr(job, f) != old[f]
        for f in (
            "schedule",
            "timezone",
            "starts_at",
            "expires_at",
            "jitter",
            "exclude_calendars",
            "only_calendars",
        )
    )
    if not created and before["disabled"] and not job.disabled:
        set_next(job, next_run_from_now(job, now=now))  # enabled: from now, see job_toggle
    elif timing_changed or job.parent_id != old["parent_id"]:
        set_next(job, compute_next_run(job, after=now))
    job.save()
    capacity.key_sync(job=job)
    job_revisions.revision_record(
        job=job,
        actor=actor,
        source=source,
        change=_change(created, restored_from),
        before=revised,
        before_secrets=revised_secrets,
        restored_from=restored_from,
    )
    detail: dict[str, Any] = {"executor": job.executor}
    if not created:
        detail["changed"] = sorted(_changed_fields(before, job))
    audit_record(actor=actor, action="create" if created else "update", target=name, detail=detail)
    return job, created


def _change(created: bool, restored_from: int | None) -> str:
    if restored_from is not None:
        return JobRevision.Change.RESTORE
    return JobRevision.Change.CREATE if created else JobRevision.Change.UPDATE


def job_rollback(*, name: str, number: Any, actor: Actor = SYSTEM) -> tuple[Job, JobRevision]:
    """Make the job what its revision `number` recorded (POST .../revisions/{n}/restore): an
    upsert of the revision's data, recorded as a new revision (change "restore"). Masked
    secrets keep the job's current values (confidential.merge: refused, naming the secret to
    resend, where it would go elsewhere). A deleted job comes back. Restoring what the job
    already is records nothing: the answer is then its current revision."""
    revision = job_revisions.revision_get(name, number)
    job, _created = job_upsert(
        data=job_revisions.restore_body(revision), actor=actor, restored_from=revision.number
    )
    return job, JobRevision.objects.get(job_name=name, number=job.revision)


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
    job_revisions.revision_record_delete(job=snapshot, actor=actor)
    job.delete()
    audit_record(actor=actor, action="delete", target=snapshot.name)
    return snapshot


@transaction.atomic
def job_toggle(*, job: Job, actor: Actor = SYSTEM) -> Job:
    """Flip `disabled`. Enabling schedules the job from now (next_run_from_now): the fire
    times that fell while it was disabled never run and are not counted as missed, as in
    Dkron, whichever the misfire policy. Every enable path (API toggle, UI, admin, bulk) comes
    here or to job_upsert, which applies the same rule."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    revised, revised_secrets = job_revisions.definition(job), job_revisions.Secrets.of_job(job)
    job.disabled = not job.disabled
    fields = ["disabled", "updated_at"]
    if not job.disabled:
        set_next(job, next_run_from_now(job, now=timeutil.now()))
        fields += ["next_run", "next_scheduled"]
    job.save(update_fields=fields)
    job_revisions.revision_record(
        job=job,
        actor=actor,
        source="",
        change=JobRevision.Change.TOGGLE,
        before=revised,
        before_secrets=revised_secrets,
    )
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
