"""Day-2 operations in the /v1 API: pause and unpause, restore, leave (Dkron's shapes)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.errors import DomainError
from jobs.models import Agent
from jobs.services import cluster
from jobs.services import transfer as transfer_services
from jobs.services.jobs import Actor, describe_problems
from jobs.wire import ErrorSerializer, MemberSerializer
from web.api.permissions import can
from web.api.views import ERRORS, ApiView, member_to_dict

# Pausing freezes job definitions for everyone, so it takes the editor's permission.
PAUSE_PERM = "jobs.change_job"
# Restore creates and replaces jobs: both permissions (and run-code for such jobs, per job).
RESTORE_PERMS = ("jobs.add_job", "jobs.change_job")
RESTORE_MAX_BYTES = 64 * 1024 * 1024  # a file larger than this is refused (413)
# Jobs stored with problems, beside Dkron's body (which has no room for them): a count, and
# `{name: "key: message; ..."}` as ASCII JSON, cut to a size every proxy passes.
PROBLEMS_COUNT_HEADER = "X-Restore-Problems-Count"
PROBLEMS_HEADER = "X-Restore-Problems"
PROBLEMS_HEADER_MAX = 2048

PAUSE_STATUS = inline_serializer(
    "PauseStatus",
    {"paused": serializers.BooleanField(help_text="Whether job submissions are paused")},
)
UNAVAILABLE = {503: OpenApiResponse(ErrorSerializer, "The cluster is paused")}


def _pause_response() -> Response:
    return Response({"paused": cluster.is_paused()})


class PauseView(ApiView):
    write_perm = PAUSE_PERM

    @extend_schema(
        operation_id="pauseStatus",
        summary="Whether job submissions are paused (cluster-wide)",
        responses=PAUSE_STATUS,
    )
    def get(self, request: Request) -> Response:
        return _pause_response()

    @extend_schema(
        operation_id="pause",
        summary="Pause job creation, changes and deletion for the whole cluster",
        description=(
            "Refuses job creation, replacement, deletion and restore with 503 until "
            "/v1/unpause. Jobs keep firing and running; run, toggle and kill still work. "
            "Stored in the database, so every node sees it (Dkron's flag is per node)."
        ),
        request=None,
        responses={200: PAUSE_STATUS, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        cluster.cluster_set_paused(paused=True, actor=Actor.from_user(request.user))
        return _pause_response()


class UnpauseView(ApiView):
    write_perm = PAUSE_PERM

    @extend_schema(
        operation_id="unpause",
        summary="Resume job submissions",
        request=None,
        responses={200: PAUSE_STATUS, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        cluster.cluster_set_paused(paused=False, actor=Actor.from_user(request.user))
        return _pause_response()


class RestoreView(ApiView):
    parser_classes = [MultiPartParser]
    write_perm = RESTORE_PERMS  # any one passes ApiAccess; `post` requires both

    @extend_schema(
        operation_id="restore",
        summary="Create or replace jobs from a Dkron export (parents first); a line per job",
        description=(
            "Multipart field `file`: a JSON array of jobs, as GET /v1/jobs returns them. "
            "The answer is Dkron's: a JSON string holding the encoded array of lines, one per "
            "job. A job that Dkron itself would refuse (name, self-parent, schedule, "
            "concurrency, timezone, shell timeout/mem_limit), a missing parent or a missing "
            "permission is reported (`fail create <name>: <reason>`) and the others go on. A "
            "job that only dkronweb's own validation finds wrong (executor config, processors, "
            "notify, no executor...) is stored with its problems (`success create <name>`); "
            "its runs fail with them until an upsert fixes it. Those problems come in the "
            f"headers `{PROBLEMS_COUNT_HEADER}` (how many jobs) and `{PROBLEMS_HEADER}` "
            "(a JSON object job -> problems, cut to 2 KiB), which Dkron clients ignore. A file "
            "that is not a JSON array of objects is a 400, one of more than DKRON_RESTORE_MAX_JOBS "
            "jobs (1000 by default) a 413 saying to split it, and nothing is stored."
        ),
        request={
            "multipart/form-data": inline_serializer(
                "RestoreBody", {"file": serializers.FileField(help_text="The JSON file")}
            )
        },
        responses={
            200: OpenApiResponse(
                {"type": "string"},
                "Dkron's answer: a JSON string holding the JSON array of lines, one per job: "
                "`success create <name>` or `fail create <name>: <reason>`",
            ),
            **ERRORS,
            413: OpenApiResponse(
                ErrorSerializer, "File too large, or more jobs than DKRON_RESTORE_MAX_JOBS"
            ),
            **UNAVAILABLE,
        },
        tags=["jobs"],
    )
    def post(self, request: Request) -> Response:
        if not all(can(request, p) for p in RESTORE_PERMS):
            raise PermissionDenied("restoring jobs needs permission to create and change jobs")
        upload = request.FILES.get("file")
        if upload is None:
            raise DomainError(
                "missing the multipart field 'file' (a JSON array of jobs)",
                {"file": "required"},
            )
        if upload.size is not None and upload.size > RESTORE_MAX_BYTES:
            return Response(
                {
                    "error": f"file too large (limit {RESTORE_MAX_BYTES} bytes)",
                    "details": {"limit": RESTORE_MAX_BYTES},
                },
                status=413,
            )
        max_jobs = int(settings.DKRON.get("RESTORE_MAX_JOBS", transfer_services.MAX_JOBS))
        items = transfer_services.parse_export(upload.read(), max_jobs=max_jobs)
        calendar_perms = ("jobs.add_calendar", "jobs.change_calendar")
        results = transfer_services.jobs_restore(
            items=items,
            actor=Actor.from_user(request.user),
            with_calendars=all(can(request, p) for p in calendar_perms),
        )
        # Dkron renders json.Marshal(lines) as a JSON string: clients decode twice.
        response = Response(json.dumps([r.dkron_line() for r in results], separators=(",", ":")))
        with_problems = {r.name: r.problems for r in results if r.problems}
        response[PROBLEMS_COUNT_HEADER] = str(len(with_problems))
        if with_problems:
            response[PROBLEMS_HEADER] = _problems_header(with_problems)
        return response


def _problems_header(with_problems: dict[str, dict[str, Any]]) -> str:
    """`{name: "key: message; ..."}` as ASCII JSON of at most PROBLEMS_HEADER_MAX bytes.

    Jobs that do not fit are left out and counted under "...": the count header, the job
    pages and /health still show every one of them.
    """
    shown: dict[str, str] = {}
    for index, (name, problems) in enumerate(with_problems.items()):
        text = describe_problems(problems)[:300]
        candidate = {**shown, name: text}
        rest = len(with_problems) - index - 1
        if rest:
            candidate["..."] = f"{rest} more"
        if len(json.dumps(candidate)) > PROBLEMS_HEADER_MAX:
            shown["..."] = f"{len(with_problems) - index} more"
            break
        shown[name] = text
    return json.dumps(shown)


class LeaveView(ApiView):
    write_perm = "jobs.change_agent"

    @extend_schema(
        operation_id="leave",
        summary="Dkron's graceful leave: a no-op here; answers the member list",
        description=(
            "A Dkron server leaves the Serf and Raft cluster. This web process is no cluster "
            "member (there is no gossip: agents register in the database), so nothing changes "
            "and the answer is the member list, as Dkron's. Agents leave when they stop "
            "cleanly; `manage.py leave --node-name X` marks one as left."
        ),
        request=None,
        responses={200: MemberSerializer(many=True), **ERRORS},
    )
    def post(self, request: Request) -> Response:
        return Response([member_to_dict(a) for a in Agent.objects.all()])
