"""dkronweb extension to the /v1 API: a job's history (`/v1/jobs/{name}/revisions`), the diff
of two revisions, and the rollback to one. Reading needs a signed-in user, as GET /v1/jobs;
restoring needs what the upsert it is needs (change a job, or add one a deletion removed)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.models import Job, JobRevision
from jobs.selectors import page_bounds
from jobs.services import jobs as job_services
from jobs.services import revisions as revision_services
from jobs.services.audit import Actor
from jobs.services.cluster import ensure_not_paused
from jobs.timeutil import rfc3339
from jobs.wire import ErrorSerializer, JobSerializer, job_to_dict
from web.api.permissions import can
from web.api.views import ERRORS, PAGING, UPSERT_PERMS, ApiView
from web.filters import JobPageFilter

NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, "No such job or revision")}


class RevisionSerializer(serializers.Serializer):
    job_name = serializers.CharField()
    number = serializers.IntegerField(help_text="1, 2, 3... per job name")
    created_at = serializers.CharField(help_text="When the change was made (RFC 3339)")
    actor = serializers.CharField(help_text="Username, or 'system'")
    # A field named like Field.source: DRF's metaclass takes it as a declared field.
    source = serializers.CharField(  # type: ignore[assignment]
        help_text="api, ui, admin, cli, system, restore (/v1/restore), import (import_jobs), apply"
    )
    change = serializers.ChoiceField(choices=JobRevision.Change.values)
    restored_from = serializers.IntegerField(
        allow_null=True, help_text="For a restore: the revision it brought back"
    )
    secrets_changed = serializers.ListField(
        child=serializers.CharField(),
        help_text="Secrets this change set, replaced or removed (paths, never values)",
    )
    job = revision_services.JobDefinitionSerializer(
        help_text="The job after the change as GET /v1/jobs/{name} showed it (secrets masked), "
        "without the server-maintained fields"
    )


class DiffEntrySerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Field path, nested keys joined by dots")
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    secret = serializers.CharField(
        required=False, help_text="'changed' when a secret changed behind the same mask"
    )


class DiffSerializer(serializers.Serializer):
    job_name = serializers.CharField()
    revision = serializers.IntegerField()
    against = serializers.IntegerField(allow_null=True, help_text="null: before the first")
    changes = DiffEntrySerializer(many=True)


class RestoreAnswerSerializer(serializers.Serializer):
    job = JobSerializer()
    revision = RevisionSerializer(help_text="The job's revision after the restore")


def revision_to_dict(revision: JobRevision) -> dict[str, Any]:
    return {
        "job_name": revision.job_name,
        "number": revision.number,
        "created_at": rfc3339(revision.created_at),
        "actor": revision.actor,
        "source": revision.source,
        "change": revision.change,
        "restored_from": revision.restored_from,
        "secrets_changed": list(revision.secrets_changed or []),
        "job": revision.data,
    }


def _actor(request: Request) -> Actor:
    return Actor.from_user(request.user)


NUMBER = OpenApiParameter("number", int, OpenApiParameter.PATH, description="Revision number")


class RevisionsView(ApiView):
    @extend_schema(
        operation_id="listJobRevisions",
        summary="The job's revisions, newest first (dkronweb extension)",
        parameters=PAGING[1:],
        responses={200: RevisionSerializer(many=True), **ERRORS, **NOT_FOUND},
        tags=["revisions"],
    )
    def get(self, request: Request, name: str) -> Response:
        revision_services.ensure_known(name)
        page = JobPageFilter.parse(request.query_params)
        qs = revision_services.revision_list(name)
        total = qs.count()
        start, end = page_bounds(page, total)
        response = Response([revision_to_dict(r) for r in qs[start:end]])
        response["X-Total-Count"] = str(total)
        return response


class RevisionView(ApiView):
    @extend_schema(
        operation_id="showJobRevision",
        summary="One revision of a job (dkronweb extension)",
        parameters=[NUMBER],
        responses={200: RevisionSerializer, **ERRORS, **NOT_FOUND},
        tags=["revisions"],
    )
    def get(self, request: Request, name: str, number: str) -> Response:
        return Response(revision_to_dict(revision_services.revision_get(name, number)))


class RevisionDiffView(ApiView):
    @extend_schema(
        operation_id="diffJobRevision",
        summary="What changed from one revision to another (dkronweb extension)",
        parameters=[
            NUMBER,
            OpenApiParameter(
                "against",
                int,
                OpenApiParameter.QUERY,
                description="The revision to compare with; default the one before",
            ),
        ],
        responses={200: DiffSerializer, **ERRORS, **NOT_FOUND},
        tags=["revisions"],
    )
    def get(self, request: Request, name: str, number: str) -> Response:
        against = request.query_params.get("against")
        return Response(revision_services.revision_diff(name, number, against))


class RevisionRestoreView(ApiView):
    write_perm = UPSERT_PERMS

    @extend_schema(
        operation_id="restoreJobRevision",
        summary="Make the job what a revision recorded; a new revision (dkronweb extension)",
        parameters=[NUMBER],
        request=None,
        responses={200: RestoreAnswerSerializer, **ERRORS, **NOT_FOUND},
        tags=["revisions"],
    )
    def post(self, request: Request, name: str, number: str) -> Response:
        ensure_not_paused()
        revision_services.revision_get(name, number)  # 404 before 403: nothing to restore
        if settings.AUTH_ENABLED:
            exists = Job.objects.filter(name=name).exists()
            if not can(request, "jobs.change_job" if exists else "jobs.add_job"):
                verb = "change" if exists else "create"
                raise PermissionDenied(f"you do not have permission to {verb} jobs")
        job, revision = job_services.job_rollback(name=name, number=number, actor=_actor(request))
        return Response({"job": job_to_dict(job), "revision": revision_to_dict(revision)})
