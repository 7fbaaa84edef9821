"""Django admin for jobs, executions, agents and API tokens; actions call the services."""

from __future__ import annotations

import copy
import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import construct_instance
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from executors import registry
from jobs.errors import DomainError
from jobs.models import (
    ACTIVE_STATUSES,
    Agent,
    Alert,
    ApiToken,
    AuditEntry,
    Backfill,
    Calendar,
    ConcurrencyKey,
    Execution,
    Job,
    JobRevision,
    Lease,
    Run,
)
from jobs.notifications import schema as notify_schema
from jobs.services import backfill as backfill_services
from jobs.services import calendars as calendar_services
from jobs.services import executions as execution_services
from jobs.services import jobs as job_services
from jobs.services import runs as run_services
from jobs.services import tokens as token_services
from jobs.services.audit import SYSTEM, Actor


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_user(request.user, via=AuditEntry.Via.ADMIN)


def executor_choices() -> list[tuple[str, str]]:
    names = registry.available(settings.DKRON["DISABLED_EXECUTORS"])
    return [(name, name) for name in names]


class JobForm(forms.ModelForm):
    """The executor is picked from the registry (built-ins and installed plugins)."""

    executor = forms.ChoiceField(choices=executor_choices)

    class Meta:
        model = Job
        exclude: list[str] = []  # every editable field; server fields are read-only below

    actor: Actor = SYSTEM  # set per request by JobAdmin.get_form

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        job = self.instance
        if job.pk:  # secrets shown masked; a mask saved back keeps the stored one (job_upsert)
            self.initial["executor_config"] = _masked_config(job)
            self.initial["notify"] = notify_schema.mask_secrets(job.notify or {})

    def clean(self) -> dict[str, Any] | None:
        """The service's own checks, on the form: a refused job is shown again with the reasons
        on its fields, not reported as "changed successfully" over a save that did not happen.
        (save_model still reports what only the write can find, such as a race.)"""
        cleaned = super().clean()
        if self.errors:
            return cleaned
        draft = construct_instance(self, copy.copy(self.instance))
        try:
            job_services.job_check(data=_upsert_data(draft), actor=self.actor)
        except DomainError as exc:
            placed = False
            for field, message in (exc.details or {}).items():
                if field in self.fields:
                    self.add_error(field, _detail_text(message))
                    placed = True
            if not placed:
                self.add_error(None, f"{exc.message} {exc.details or ''}".strip())
        return cleaned


def _detail_text(message: Any) -> str:
    if isinstance(message, dict):
        return "; ".join(f"{k}: {_detail_text(v)}" for k, v in message.items())
    if isinstance(message, list):
        return "; ".join(_detail_text(v) for v in message)
    return str(message)


def _upsert_data(job: Job) -> dict[str, Any]:
    """The job_upsert body of a job edited in the admin (its user fields, name and parent)."""
    data = {f: getattr(job, f) for f in job_services.USER_FIELDS}
    data["name"] = job.name
    data["parent_job"] = job.parent.name if job.parent else ""
    return data


def _masked_config(job: Job) -> dict[str, Any]:
    return registry.mask_secrets(job.executor, job.executor_config or {})


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    form = JobForm
    list_display = (
        "name",
        "schedule",
        "executor",
        "status",
        "disabled",
        "next_run",
        "success_count",
        "error_count",
        "last_success",
        "last_error",
    )
    list_filter = ("status", "disabled", "executor", "concurrency")
    # concurrency_key, concurrency_limit and rate_limit are edited like the other user fields
    # (the form has every editable field; save_model passes USER_FIELDS to job_upsert).
    search_fields = ("name", "displayname", "owner", "concurrency_key")
    readonly_fields = (
        "status",
        "success_count",
        "error_count",
        "last_success",
        "last_error",
        "next_run",
        "next_scheduled",
        "anchor",
        "missed_count",
        "has_sla",
        "revision",
        "created_at",
        "updated_at",
    )
    actions = ("run_now", "enable", "disable")
    _MASKED = {"executor_config": "masked_executor_config", "notify": "masked_notify"}

    def get_fields(self, request: HttpRequest, obj: Job | None = None) -> Any:
        """A user who may only view sees the read-only config masked, never the raw JSON."""
        fields = list(super().get_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            fields = [self._MASKED.get(f, f) if isinstance(f, str) else f for f in fields]
        return fields

    @admin.display(description="executor config")
    def masked_executor_config(self, obj: Job) -> str:
        return json.dumps(_masked_config(obj), indent=2)

    @admin.display(description="notify")
    def masked_notify(self, obj: Job) -> str:
        return json.dumps(notify_schema.mask_secrets(obj.notify or {}), indent=2)

    def get_form(
        self, request: HttpRequest, obj: Any | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)  # a new class on every call
        form.actor = _actor(request)  # type: ignore[attr-defined]
        return form

    def save_model(self, request: HttpRequest, obj: Job, form: Any, change: bool) -> None:
        try:
            saved, _ = job_services.job_upsert(data=_upsert_data(obj), actor=_actor(request))
        except DomainError as exc:
            self.message_user(request, f"{exc.message} {exc.details}", messages.ERROR)
            return
        obj.pk = saved.pk

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("jobs.operate_job"))

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        """Through the service: refused while paused or while the job has dependents."""
        try:
            job_services.job_delete(job=obj, actor=_actor(request))
        except DomainError as exc:
            self.message_user(request, f"{obj.name}: {exc.message}", messages.ERROR)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """A job's runs and executions go with it (as with DELETE /v1/jobs/{name}): deleting
        the job needs delete_job only, not also the permission to delete history rows."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        history = {str(Run._meta.verbose_name), str(Execution._meta.verbose_name)}
        return deleted, counts, perms_needed - history, protected

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            self.delete_model(request, job)

    @admin.action(description="Run now", permissions=["operate"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            try:
                run_services.run_now(job=job, force=True, actor=_actor(request))
            except DomainError as exc:
                self.message_user(request, f"{job.name}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Started {queryset.count()} job(s).")

    @admin.action(description="Enable", permissions=["operate"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset.filter(disabled=True):
            job_services.job_toggle(job=job, actor=_actor(request))

    @admin.action(description="Disable", permissions=["operate"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset.filter(disabled=False):
            job_services.job_toggle(job=job, actor=_actor(request))


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "job_link",
        "run_id",
        "attempt",
        "node_name",
        "status",
        "waiting",
        "scheduled_at",
        "started_at",
        "took",
        "reason",
    )
    list_filter = ("status", "node_name", "attempt", ("started_at", admin.DateFieldListFilter))
    search_fields = ("job_name", "node_name", "reason", "=run__id")
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in Execution._meta.fields]
    list_select_related = ("job",)
    actions = ("kill",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("jobs.operate_job"))

    @admin.display(description="job", ordering="job_name")
    def job_link(self, obj: Execution) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("ui-job", args=[obj.job_name]), obj.job_name
        )

    @admin.display(description="duration")
    def took(self, obj: Execution) -> str:
        if obj.started_at is None or obj.finished_at is None:
            return "—"
        return f"{(obj.finished_at - obj.started_at).total_seconds():.1f}s"

    @admin.action(description="Kill", permissions=["operate"])
    def kill(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        killed = 0
        for execution in queryset.filter(status__in=ACTIVE_STATUSES):
            try:
                execution_services.execution_kill(execution=execution, actor=_actor(request))
                killed += 1
            except DomainError as exc:
                self.message_user(request, f"{execution.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Asked {killed} execution(s) to stop.")


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "address",
        "tags",
        "running",
        "concurrency",
        "slots",
        "last_heartbeat",
        "left",
    )
    list_filter = ("left",)
    search_fields = ("name", "address")


@admin.register(ConcurrencyKey)
class ConcurrencyKeyAdmin(admin.ModelAdmin):
    """Read-only: a key's row holds the limits of the last job saved with it (and the lock its
    claims take); the limits are set on the jobs."""

    list_display = ("key", "limit", "rate_limit", "updated_at")
    search_fields = ("key",)
    readonly_fields = ("key", "limit", "rate_limit", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """List and revoke. Tokens are made where the key can be shown once (the UI's Tokens page,
    POST /v1/tokens, `manage.py createtoken`); the hash is never shown."""

    list_display = (
        "name",
        "user",
        "prefix",
        "role",
        "created_at",
        "expires_at",
        "last_used",
        "revoked",
    )
    list_filter = ("revoked", "role")
    search_fields = ("name", "prefix", "user__username")
    fields = ("name", "user", "prefix", "role", "created_at", "expires_at", "last_used", "revoked")
    readonly_fields = fields
    list_select_related = ("user", "role")
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the row stays, for the audit trail

    @admin.action(description="Revoke", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset.filter(revoked=False):
            token_services.token_revoke(token=token, actor=_actor(request))
        self.message_user(request, "Revoked; requests with these tokens now get a 401.")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the services write the log."""

    list_display = ("at", "actor", "via", "action", "target")
    list_filter = ("action", "via")
    search_fields = ("actor", "target")
    date_hierarchy = "at"
    readonly_fields = ("at", "actor", "via", "action", "target", "detail")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Read-only: the SLA check (jobs.services.sla) opens and resolves alerts."""

    list_display = ("opened_at", "job_name", "kind", "state", "subject", "resolved_at")
    list_filter = ("state", "kind")
    search_fields = ("job_name", "subject")
    date_hierarchy = "opened_at"
    readonly_fields = (
        "job",
        "job_name",
        "kind",
        "state",
        "subject",
        "detail",
        "opened_at",
        "resolved_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(JobRevision)
class JobRevisionAdmin(admin.ModelAdmin):
    """Read-only: the job services record revisions; restoring one is the job page's Restore
    (or POST /v1/jobs/{name}/revisions/{n}/restore). Secrets are masked in `data` already."""

    list_display = ("job_name", "number", "created_at", "actor", "source", "change")
    list_filter = ("change", "source")
    search_fields = ("job_name", "actor")
    date_hierarchy = "created_at"
    readonly_fields = (
        "job_name",
        "number",
        "created_at",
        "actor",
        "source",
        "change",
        "restored_from",
        "secrets_changed",
        "data",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ("name", "holder", "expires_at", "acquired_at", "changes")


class CalendarForm(forms.ModelForm):
    class Meta:
        model = Calendar
        exclude: list[str] = []

    def clean(self) -> dict[str, Any] | None:
        """The service's checks on the form, as for jobs (JobForm.clean)."""
        cleaned = super().clean()
        if self.errors:
            return cleaned
        draft = construct_instance(self, copy.copy(self.instance))
        try:
            calendar_services.calendar_check(name=draft.name, data=draft.definition())
        except DomainError as exc:
            self.add_error(None, f"{exc.message} {exc.details or ''}".strip())
        return cleaned


@admin.register(Calendar)
class CalendarAdmin(admin.ModelAdmin):
    form = CalendarForm
    """Calendars (jobs.calendars), saved and deleted through their service: checked, audited,
    the jobs that name one rescheduled, a calendar still named by jobs kept."""

    list_display = ("name", "timezone", "description", "updated_at")
    search_fields = ("name", "description")
    readonly_fields = ("created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Calendar | None = None) -> Any:
        """Calendars are not renamed: jobs name them."""
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "name") if obj is not None and obj.pk else fields

    def save_model(self, request: HttpRequest, obj: Calendar, form: Any, change: bool) -> None:
        try:
            saved, _ = calendar_services.calendar_upsert(
                name=obj.name, data=obj.definition(), actor=_actor(request)
            )
        except DomainError as exc:
            self.message_user(request, f"{exc.message} {exc.details}", messages.ERROR)
            return
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Calendar) -> None:
        try:
            calendar_services.calendar_delete(calendar=obj, actor=_actor(request))
        except DomainError as exc:
            self.message_user(request, f"{obj.name}: {exc.message}", messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Calendar]) -> None:
        for calendar in queryset:
            self.delete_model(request, calendar)


@admin.register(Backfill)
class BackfillAdmin(admin.ModelAdmin):
    """Backfills (jobs.services.backfill): read-only here (started through the API or the UI);
    Cancel goes through the service, with the permission to run jobs."""

    list_display = ("id", "job", "state", "range_from", "range_to", "reprocess", "total")
    list_filter = ("state", "reprocess")
    search_fields = ("job__name", "actor")
    list_select_related = ("job",)
    actions = ("cancel",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("jobs.operate_job"))

    @admin.action(description="Cancel", permissions=["operate"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Backfill]) -> None:
        cancelled = 0
        for backfill in queryset.filter(state__in=backfill_services.OPEN).select_related("job"):
            try:
                backfill_services.backfill_cancel(backfill=backfill, actor=_actor(request))
                cancelled += 1
            except DomainError as exc:
                self.message_user(request, f"{backfill.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Cancelled {cancelled} backfill(s).")
