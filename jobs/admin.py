"""Django admin for jobs, executions, agents and API tokens; actions call the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from executors import registry
from jobs.errors import DomainError
from jobs.models import ACTIVE_STATUSES, Agent, ApiToken, Execution, Job, Lease
from jobs.services import executions as execution_services
from jobs.services import jobs as job_services
from jobs.services import runs as run_services


def executor_choices() -> list[tuple[str, str]]:
    names = registry.available(settings.DKRON["DISABLED_EXECUTORS"])
    return [(name, name) for name in names]


class JobForm(forms.ModelForm):
    """The executor is picked from the registry (built-ins and installed plugins)."""

    executor = forms.ChoiceField(choices=executor_choices)

    class Meta:
        model = Job
        exclude: list[str] = []  # every editable field; server fields are read-only below


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
    search_fields = ("name", "displayname", "owner")
    readonly_fields = (
        "status",
        "success_count",
        "error_count",
        "last_success",
        "last_error",
        "next_run",
        "anchor",
        "missed_count",
        "created_at",
        "updated_at",
    )
    actions = ("run_now", "enable", "disable")

    def save_model(self, request: HttpRequest, obj: Job, form: Any, change: bool) -> None:
        data = {f: getattr(obj, f) for f in job_services.USER_FIELDS}
        data["name"] = obj.name
        data["parent_job"] = obj.parent.name if obj.parent else ""
        try:
            saved, _ = job_services.job_upsert(
                data=data, actor=job_services.Actor.from_user(request.user)
            )
        except DomainError as exc:
            self.message_user(request, f"{exc.message} {exc.details}", messages.ERROR)
            return
        obj.pk = saved.pk

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("jobs.operate_job"))

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        """Through the service: refused while paused or while the job has dependents."""
        try:
            job_services.job_delete(job=obj)
        except DomainError as exc:
            self.message_user(request, f"{obj.name}: {exc.message}", messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            self.delete_model(request, job)

    @admin.action(description="Run now", permissions=["operate"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            try:
                run_services.run_now(job=job, force=True)
            except DomainError as exc:
                self.message_user(request, f"{job.name}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Started {queryset.count()} job(s).")

    @admin.action(description="Enable", permissions=["operate"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset.filter(disabled=True):
            job_services.job_toggle(job=job)

    @admin.action(description="Disable", permissions=["operate"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset.filter(disabled=False):
            job_services.job_toggle(job=job)


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "job_link",
        "run_id",
        "attempt",
        "node_name",
        "status",
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
                execution_services.execution_kill(execution=execution)
                killed += 1
            except DomainError as exc:
                self.message_user(request, f"{execution.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Asked {killed} execution(s) to stop.")


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "address", "tags", "running", "concurrency", "last_heartbeat", "left")
    list_filter = ("left",)
    search_fields = ("name", "address")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used", "revoked")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used")


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ("name", "holder", "expires_at", "acquired_at", "changes")
