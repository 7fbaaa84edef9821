"""Django admin for jobs, executions, agents and API tokens; actions call the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from executors import registry
from jobs.errors import DomainError
from jobs.models import Agent, ApiToken, Execution, Job, Lease
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

    @admin.action(description="Run now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            try:
                run_services.run_now(job=job, force=True)
            except DomainError as exc:
                self.message_user(request, f"{job.name}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Started {queryset.count()} job(s).")

    @admin.action(description="Enable")
    def enable(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset.filter(disabled=True):
            job_services.job_toggle(job=job)

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset.filter(disabled=False):
            job_services.job_toggle(job=job)


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "job_name",
        "run_id",
        "attempt",
        "node_name",
        "status",
        "scheduled_at",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", "node_name")
    search_fields = ("job_name", "node_name", "reason")
    readonly_fields = [f.name for f in Execution._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "address", "running", "last_heartbeat", "left", "version")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used", "revoked")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used")


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ("name", "holder", "expires_at", "acquired_at", "changes")
