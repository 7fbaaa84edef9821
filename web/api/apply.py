"""POST /v1/apply: jobs as files for tools that cannot run `manage.py jobs` (dkronweb's own).

The body is the jobs of the files (`{"jobs": [...], "prune": bool, "scope": "k=v"}`, or a
plain list); `?dry_run=true` answers the plan and changes nothing. The work is
jobs.services.declarative's; this view reads the body and checks the permissions of what the
plan does (create, change, delete jobs; calendars), inside the apply's transaction.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.errors import DomainError
from jobs.models import AuditEntry
from jobs.services import declarative
from jobs.services import transfer as transfer_services
from jobs.services.audit import Actor
from jobs.wire import ErrorSerializer
from web.api.permissions import can
from web.api.views import ERRORS, ApiView, _flag, _query

# Any of them lets the request in (ApiAccess); the plan decides which it needs.
APPLY_PERMS = ("jobs.add_job", "jobs.change_job", "jobs.delete_job")
NEEDED = {
    ("job", "create"): ("jobs.add_job", "create jobs"),
    ("job", "update"): ("jobs.change_job", "change jobs"),
    ("job", "delete"): ("jobs.delete_job", "delete jobs"),
    ("calendar", "create"): ("jobs.add_calendar", "create calendars"),
    ("calendar", "update"): ("jobs.change_calendar", "change calendars"),
}


class ChangeSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Dotted field path: schedule, metadata.team")
    before = serializers.JSONField(required=False, help_text="Masked wire value; null: none")
    after = serializers.JSONField(required=False, help_text="Masked wire value; null: none")
    secret = serializers.BooleanField(
        required=False, help_text="Only a secret's value changes: no values are shown"
    )


def _serializer(name: str, fields: dict[str, serializers.Field]) -> type[serializers.Serializer]:
    """A serializer class from a dict: these answers have fields named like Serializer's own
    attributes (source, create, update, errors), which a class body cannot declare."""
    return type(name, (serializers.Serializer,), dict(fields))


ItemSerializer = _serializer(
    "ApplyItem",
    {
        "name": serializers.CharField(),
        "action": serializers.ChoiceField(choices=["create", "update", "delete"]),
        "kind": serializers.ChoiceField(choices=["job", "calendar"]),
        "source": serializers.CharField(required=False, help_text="The file (or 'body')"),
        "changes": ChangeSerializer(many=True, required=False, help_text="Updates only"),
    },
)
ProblemSerializer = _serializer(
    "ApplyError",
    {
        "source": serializers.CharField(help_text="The file (or 'body')"),
        "job": serializers.CharField(),
        "error": serializers.CharField(),
        "details": serializers.DictField(),
    },
)
# The answer of POST /v1/apply: jobs.services.declarative.Plan.as_dict().
PlanSerializer = _serializer(
    "ApplyPlan",
    {
        "applied": serializers.BooleanField(help_text="Whether the changes were committed"),
        "changes": serializers.BooleanField(
            help_text="Whether anything creates, updates or deletes"
        ),
        "create": ItemSerializer(many=True),
        "update": ItemSerializer(many=True),
        "delete": ItemSerializer(many=True),
        "unchanged": serializers.IntegerField(),
        "errors": ProblemSerializer(many=True),
        "prune": serializers.BooleanField(),
        "scope": serializers.CharField(allow_null=True),
        "summary": serializers.CharField(),
    },
)


BODY = inline_serializer(
    "ApplyBody",
    {
        "jobs": serializers.ListField(
            child=serializers.DictField(), help_text="Jobs in Dkron's format (GET /v1/jobs)"
        ),
        "prune": serializers.BooleanField(
            required=False, help_text="Delete the jobs carrying the scope label not in `jobs`"
        ),
        "scope": serializers.CharField(
            required=False, help_text="key=value: the metadata label these jobs carry"
        ),
    },
)


def _body(data: Any) -> tuple[list[Any], bool, str | None]:
    if isinstance(data, list):
        return data, False, None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise DomainError(
            'expected {"jobs": [...], "prune": false, "scope": "key=value"} or a list of jobs',
            {"jobs": "a list of job objects"},
        )
    prune = data.get("prune", False)
    scope = data.get("scope")
    if not isinstance(prune, bool):
        raise DomainError("prune must be true or false", {"prune": "a boolean"})
    if scope is not None and not isinstance(scope, str):
        raise DomainError("scope must be a string key=value", {"scope": "key=value"})
    return data["jobs"], prune, scope


def _permit(request: Request) -> declarative.Permit:
    def permit(plan: declarative.Plan) -> None:
        if not settings.AUTH_ENABLED:
            return
        for item in plan.items:
            perm, what = NEEDED[(item.kind, item.action)]
            if not can(request, perm):
                raise PermissionDenied(
                    f"you do not have permission to {what} ({item.kind} '{item.name}')"
                )

    return permit


class ApplyView(ApiView):
    write_perm = APPLY_PERMS

    @extend_schema(
        operation_id="applyJobs",
        summary="Make the jobs what the given job files say (plan with dry_run=true)",
        description=(
            "dkronweb's own (Dkron has no such endpoint). Creates, replaces and with `prune` "
            "deletes jobs in one transaction: all or nothing. Each job goes through the same "
            "validation and permission checks as POST /v1/jobs (a shell job needs the run "
            "code permission); creating, changing and deleting need their job permissions, "
            "calendars carried in `calendar_definitions` their calendar ones. A job that "
            "does not validate answers 400 with the plan (its `errors`) and changes nothing. "
            "`prune` needs `scope`: only jobs whose metadata carries that label are deleted, "
            "and every job of the body must carry it. Secrets are never in the answer: a "
            "change to one is `{path, secret: true}`. `?dry_run=true` answers the plan (200) "
            "and changes nothing."
        ),
        parameters=[_query("dry_run", bool, "Only plan: answer what would change, change nothing")],
        request=BODY,
        responses={
            200: OpenApiResponse(PlanSerializer, "The plan (dry run) or what was applied"),
            400: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="ApplyRefused",
                    serializers=[PlanSerializer, ErrorSerializer],
                    resource_type_field_name=None,
                ),
                "A job is wrong (the plan, with its errors), or the body is (an error)",
            ),
            401: ERRORS[401],
            403: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="ApplyForbidden",
                    serializers=[PlanSerializer, ErrorSerializer],
                    resource_type_field_name=None,
                ),
                "Not allowed: a job needs a permission the caller lacks (the plan, with its "
                "errors), or an action does (an error)",
            ),
            413: OpenApiResponse(ErrorSerializer, "More jobs than DKRON_RESTORE_MAX_JOBS"),
            503: OpenApiResponse(ErrorSerializer, "The cluster is paused"),
        },
        tags=["jobs"],
    )
    def post(self, request: Request) -> Response:
        jobs, prune, scope_text = _body(request.data)
        limit = int(settings.DKRON.get("RESTORE_MAX_JOBS", transfer_services.MAX_JOBS))
        if len(jobs) > limit:
            raise transfer_services.TooManyJobs(
                f"the body holds more than {limit} jobs, the most one apply takes "
                "(DKRON_RESTORE_MAX_JOBS)",
                {"jobs": f"more than {limit}", "limit": limit},
            )
        scope = declarative.parse_scope(scope_text)
        documents = [declarative.Document("body", jobs)]
        actor = Actor.from_user(request.user, via=AuditEntry.Via.APPLY)
        run = declarative.plan if _flag(request, "dry_run") else declarative.apply
        plan = run(documents, actor=actor, prune=prune, scope=scope, permit=_permit(request))
        return Response(plan.as_dict(), status=plan.status)
