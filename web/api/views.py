"""The /v1 views: thin adapters from Dkron's wire format to services and selectors."""

from __future__ import annotations

import os
import socket
from typing import Any

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.http.request import RawPostDataException
from django.utils.encoding import iri_to_uri
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors
from jobs.errors import DomainError, NotFound
from jobs.models import Agent, Execution, Job
from jobs.services import agents as agent_services
from jobs.services import jobs as job_services
from jobs.services import lease as lease_services
from jobs.services import runs as run_services
from jobs.services.cluster import ensure_not_paused
from jobs.services.executions import execution_kill
from jobs.services.health import health_report
from jobs.wire import (
    ErrorSerializer,
    ExecutionSerializer,
    JobInputSerializer,
    JobSerializer,
    MemberSerializer,
    RunBodySerializer,
    StatusSerializer,
    job_to_dict,
)
from web import metrics
from web.api.parsers import AnyContentTypeNegotiation, JSONParser
from web.api.permissions import can
from web.filters import (
    BOOLEANS,
    JOB_STATUS_FILTERS,
    ExecutionListFilter,
    JobListFilter,
    JobPageFilter,
)

SERF_STATUS = {"alive": 1, "leaving": 2, "left": 3, "failed": 4}


class ApiView(APIView):
    # Base of every /v1 view: JSON bodies through the hardened parser, whatever the
    # Content-Type says (as Dkron). (A comment, not a docstring: the OpenAPI document would
    # show it as every operation's description.)
    parser_classes = [JSONParser]
    content_negotiation_class = AnyContentTypeNegotiation

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # PostgreSQL cannot compare with NUL: refuse it in any filter, on every endpoint.
        for key, values in request.query_params.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                raise DomainError("query parameters must not contain NUL characters", {key: "NUL"})


def _flag(request: Request, name: str) -> bool:
    """Dkron treats `?runoncreate` as true by presence; explicit false values are honoured."""
    if name not in request.query_params:
        return False
    return request.query_params.get(name, "").lower() not in {"false", "0", "no"}


def _actor(request: Request) -> job_services.Actor:
    return job_services.Actor.from_user(request.user)


def _job_location(name: str) -> str:
    return iri_to_uri(f"/v1/jobs/{name}")


def _upsert(request: Request) -> Response:
    # Dkron answers 503 while paused before it reads the body (the service checks it again).
    ensure_not_paused()
    serializer = JobInputSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = dict(serializer.validated_data)
    if settings.AUTH_ENABLED:
        # Dkron's upsert is one endpoint: creating needs `add`, replacing needs `change`.
        exists = Job.objects.filter(name=data.get("name") or "").exists()
        needed = "jobs.change_job" if exists else "jobs.add_job"
        if not can(request, needed):
            verb = "change" if exists else "create"
            raise PermissionDenied(f"you do not have permission to {verb} jobs")
    actor = job_services.Actor.from_user(request.user)
    job, _created = job_services.job_upsert(data=data, actor=actor)
    if _flag(request, "runoncreate"):
        run_services.run_now(job=job, force=True, actor=actor, defaults=True)
        job.refresh_from_db()
    response = Response(job_to_dict(job), status=201)
    response["Location"] = _job_location(job.name)
    return response


UPSERT_PERMS = ("jobs.add_job", "jobs.change_job")  # either; `_upsert` checks which applies
ERRORS = {
    400: OpenApiResponse(ErrorSerializer, "Invalid input"),
    401: OpenApiResponse(ErrorSerializer, "Not authenticated"),
    403: OpenApiResponse(ErrorSerializer, "Not allowed"),
}
NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, "No such job or execution")}
CONFLICT = {409: OpenApiResponse(ErrorSerializer, "Conflict")}


def _query(name: str, type_: Any, description: str, **kw: Any) -> OpenApiParameter:
    return OpenApiParameter(name, type_, OpenApiParameter.QUERY, description=description, **kw)


PAGING = [
    _query("_order", str, "ASC or DESC", enum=["ASC", "DESC"]),
    _query("_start", int, "First index of the page (react-admin); unpaged when absent"),
    _query("_end", int, "Index after the last of the page"),
]
JOB_LIST_PARAMS = [
    _query(
        "metadata",
        OpenApiTypes.OBJECT,
        "metadata[key]=value; repeatable, every pair must match",
        style="deepObject",
        explode=True,
    ),
    _query("q", str, "Substring of the name or the displayname (case-sensitive)"),
    _query(
        "status",
        str,
        "Job status",
        enum=list(JOB_STATUS_FILTERS),
    ),
    _query("disabled", str, "true or false", enum=list(BOOLEANS)),
    _query("_sort", str, "Sort field", enum=sorted(selectors.JOB_SORTS)),
    *PAGING,
]
EXECUTION_LIST_PARAMS = [
    _query("_sort", str, "Sort field", enum=sorted(selectors.EXECUTION_SORTS)),
    *PAGING,
    _query("output_size_limit", int, "Keep the last N bytes of each output"),
    _query("group", int, "Only the executions of this run"),
]
RUNONCREATE = _query("runoncreate", bool, "Run the job right after saving it (by presence)")
FORCE = _query("force", bool, "Run even if a forbid job is still running")


class StatusView(ApiView):
    @extend_schema(
        operation_id="status", summary="Agent and cluster status", responses=StatusSerializer
    )
    def get(self, request: Request) -> Response:
        agents = list(Agent.objects.defer("metrics"))
        states = [agent_services.agent_state(a) for a in agents]
        return Response(
            {
                "agent": {"name": settings.NODE_NAME, "version": settings.VERSION},
                "serf": {
                    "members": str(len(agents)),
                    "failed": str(states.count("failed")),
                    "left": str(states.count("left")),
                    "health_score": "0",
                    "encrypted": "false",
                },
                "tags": agent_services.builtin_tags(),
            }
        )


def member_to_dict(agent: Agent, used: dict[str, int] | None = None) -> dict[str, Any]:
    """Dkron's member fields, then dkronweb's: `slots` and `slots_used` (issue 16); `used`
    is `agent_services.slots_used()`, read once for a list of members."""
    state = agent_services.agent_state(agent)
    if used is None:
        used = {agent.name: agent_services.running_on(agent.name)}
    return {
        "Name": agent.name,
        "Addr": agent.address,
        "Port": agent.port,
        "Tags": agent.tags,
        "Status": SERF_STATUS[state],
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
        "id": agent.name,
        "statusText": state,
        # What the database says it runs: a prefork agent's heartbeat cannot see its pool's
        # children, and a leaving agent's last heartbeat may be stale.
        "running": max(agent.running, used.get(agent.name, 0)),
        "last_heartbeat": agent.last_heartbeat.isoformat() if agent.last_heartbeat else None,
        "slots": agent_services.slot_count(agent),
        "slots_used": used.get(agent.name, 0),
    }


class MembersView(ApiView):
    @extend_schema(
        operation_id="getMember",
        summary="Registered agents",
        responses=MemberSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        agents = Agent.objects.defer("metrics")
        used = agent_services.slots_used()
        response = Response([member_to_dict(a, used) for a in agents])
        response["X-Total-Count"] = str(len(response.data))
        return response


def _leader_member() -> dict[str, Any] | None:
    """The member that runs the active scheduler, in the members' shape (Dkron's leader is
    always one of /v1/members), plus since when and how often leadership changed."""
    holder = lease_services.lease_holder()
    if holder is None:
        return None
    agent = Agent.objects.defer("metrics").filter(name=holder.member).first()
    if agent is not None:
        member = member_to_dict(agent)
    else:  # a scheduler of an older release names no member: describe the lease holder
        member = {
            "Name": holder.holder,
            "Addr": holder.holder.split(":")[0],
            "Port": 0,
            "Tags": {"role": "dkron", "server": "true"},
            "Status": 1,
            "id": holder.holder,
            "statusText": "alive",
        }
    member["since"] = holder.acquired_at.isoformat() if holder.acquired_at else None
    member["leadership_changes"] = holder.changes
    return member


class LeaderView(ApiView):
    @extend_schema(
        operation_id="getLeader",
        summary="The member that runs the active scheduler (one of /v1/members)",
        responses={200: MemberSerializer, **NOT_FOUND},
    )
    def get(self, request: Request) -> Response:
        member = _leader_member()
        if member is None:
            raise NotFound("no active scheduler")
        return Response(member)


class IsLeaderView(ApiView):
    @extend_schema(
        operation_id="getIsLeader",
        summary="Whether this node runs the active scheduler",
        responses={200: OpenApiTypes.STR, 404: OpenApiTypes.STR},
    )
    def get(self, request: Request) -> Response:
        holder = lease_services.lease_holder()
        mine = f"{socket.gethostname()}:{os.getpid()}:"
        if holder is not None and holder.holder.startswith(mine):
            return Response("I am a leader")
        return Response("I am a follower", status=404)


def _upsert_schema(operation_id: str, summary: str) -> Any:
    """The OpenAPI entry of the three ways Dkron upserts a job (POST, PATCH, PUT)."""
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        parameters=[RUNONCREATE],
        request=JobInputSerializer,
        responses={201: JobSerializer, **ERRORS, **NOT_FOUND},
        tags=["jobs"],
    )


class JobsView(ApiView):
    write_perm = UPSERT_PERMS

    @extend_schema(
        operation_id="getJobs",
        summary="List jobs",
        parameters=JOB_LIST_PARAMS,
        responses={200: JobSerializer(many=True), **ERRORS},
        tags=["jobs"],
    )
    def get(self, request: Request) -> Response:
        qs = selectors.job_list(JobListFilter.parse(request.query_params))
        total = qs.count()
        start: int | None = None
        end: int | None = None
        page = JobPageFilter.parse(request.query_params)
        if page.given:
            start, end = selectors.page_bounds(page, total)
        jobs = selectors.job_page(qs, start, end, total=total)
        response = Response(JobSerializer(jobs, many=True).data)
        response["X-Total-Count"] = str(total)
        return response

    @_upsert_schema("createOrUpdateJob", "Create or replace a job (upsert by the body's name)")
    def post(self, request: Request) -> Response:
        return _upsert(request)

    @_upsert_schema("createOrUpdateJobPatch", "Create or replace a job (same as POST)")
    def patch(self, request: Request) -> Response:
        return _upsert(request)


class JobView(ApiView):
    def write_perm(self, request: Request) -> str | tuple[str, ...]:
        perms: dict[str, str | tuple[str, ...]] = {"PUT": UPSERT_PERMS, "DELETE": "jobs.delete_job"}
        return perms.get(request.method or "", "jobs.operate_job")

    @extend_schema(
        operation_id="showJobByName",
        summary="One job",
        responses={200: JobSerializer, **NOT_FOUND},
        tags=["jobs"],
    )
    def get(self, request: Request, name: str) -> Response:
        return Response(job_to_dict(job_services.job_get(name)))

    @_upsert_schema("putJob", "Create or replace a job (the body's name wins over the URL's)")
    def put(self, request: Request, name: str) -> Response:
        return _upsert(request)

    @extend_schema(
        operation_id="deleteJob",
        summary="Delete a job (refused while it has dependent jobs)",
        responses={200: JobSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["jobs"],
    )
    def delete(self, request: Request, name: str) -> Response:
        job = job_services.job_get(name)
        data = job_to_dict(job)
        job_services.job_delete(job=job, actor=_actor(request))
        return Response(data)

    @extend_schema(
        operation_id="runJob",
        summary="Run a job now",
        request=RunBodySerializer,
        parameters=[FORCE],
        responses={202: JobSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["jobs"],
    )
    def post(self, request: Request, name: str) -> Response:
        return run_job(request, name)


def _run_params(request: Request) -> Any:
    """The run body's `params`, None when there are none. Dkron ignores a run's body, so
    anything but JSON (no body, an empty one, a form, text) runs as it always did; a JSON
    object may carry `{"params": {...}}` (jobs.params), checked by the service."""
    if "json" not in (request.content_type or "").lower():
        return None
    try:
        empty = not request.body.strip()
    except RawPostDataException:  # a form body Django has read already: the parser answers
        empty = False
    if empty:
        return None
    data = request.data
    if data is None:
        return None
    if not isinstance(data, dict):
        raise DomainError('the run body must be a JSON object: {"params": {...}}', {})
    return data.get("params")


def run_job(request: Request, name: str) -> Response:
    job = job_services.job_get(name)
    run = run_services.run_now(
        job=job,
        force=_flag(request, "force"),
        actor=_actor(request),
        params=_run_params(request),
    )
    job.refresh_from_db()
    response = Response(job_to_dict(job), status=202)
    response["Location"] = f"{_job_location(job.name)}/executions?group={run.pk}"
    response["X-Run-Group"] = str(run.pk)
    return response


class JobRunView(ApiView):
    write_perm = "jobs.operate_job"

    @extend_schema(
        operation_id="runJobNow",
        summary="Run a job now (same as POST /jobs/{name})",
        request=RunBodySerializer,
        parameters=[FORCE],
        responses={202: JobSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["jobs"],
    )
    def post(self, request: Request, name: str) -> Response:
        return run_job(request, name)


class JobToggleView(ApiView):
    write_perm = "jobs.operate_job"

    @extend_schema(
        operation_id="toggleJob",
        summary="Flip the job's disabled flag",
        request=None,
        responses={200: JobSerializer, **ERRORS, **NOT_FOUND},
        tags=["jobs"],
    )
    def post(self, request: Request, name: str) -> Response:
        job = job_services.job_toggle(job=job_services.job_get(name), actor=_actor(request))
        return Response(job_to_dict(job))


class ExecutionsView(ApiView):
    write_perm = "jobs.delete_job"

    @extend_schema(
        operation_id="listExecutionsByJob",
        summary="The job's executions, newest first",
        parameters=EXECUTION_LIST_PARAMS,
        responses={200: ExecutionSerializer(many=True), **ERRORS, **NOT_FOUND},
        tags=["executions"],
    )
    def get(self, request: Request, name: str) -> Response:
        job = job_services.job_get(name)
        filters = ExecutionListFilter.parse(request.query_params)
        qs = selectors.execution_list(job, filters)
        total = qs.count()
        start, end = selectors.page_bounds(filters.page, total)
        context = {"output_limit": filters.output_limit}
        data = ExecutionSerializer(qs[start:end], many=True, context=context).data
        response = Response(data)
        response["X-Total-Count"] = str(total)
        return response

    @extend_schema(
        operation_id="deleteExecutionsByJob",
        summary="Clear the job's finished executions and reset its counters",
        responses={200: JobSerializer, **ERRORS, **NOT_FOUND},
        tags=["executions"],
    )
    def delete(self, request: Request, name: str) -> Response:
        job = job_services.job_clear_executions(
            job=job_services.job_get(name), actor=_actor(request)
        )
        return Response(job_to_dict(job))


def _execution(name: str, execution_id: str) -> Execution:
    if not execution_id.isdigit():
        raise NotFound(f"execution '{execution_id}' not found")
    try:
        return Execution.objects.get(pk=int(execution_id), job_name=name)
    except Execution.DoesNotExist:
        raise NotFound(f"execution '{execution_id}' not found for job '{name}'") from None


class ExecutionView(ApiView):
    @extend_schema(
        operation_id="showExecutionByID",
        summary="One execution with its full output",
        responses={200: ExecutionSerializer, **NOT_FOUND},
        tags=["executions"],
    )
    def get(self, request: Request, name: str, execution_id: str) -> Response:
        job_services.job_get(name)
        return Response(ExecutionSerializer(_execution(name, execution_id)).data)


class ExecutionKillView(ApiView):
    write_perm = "jobs.operate_job"

    @extend_schema(
        operation_id="killExecution",
        summary="Kill a queued or running execution",
        request=None,
        responses={202: ExecutionSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["executions"],
    )
    def post(self, request: Request, name: str, execution_id: str) -> Response:
        job_services.job_get(name)
        execution = execution_kill(execution=_execution(name, execution_id), actor=_actor(request))
        return Response(ExecutionSerializer(execution).data, status=202)


class BusyView(ApiView):
    @extend_schema(
        operation_id="busy",
        summary="Running executions with their live output",
        responses=ExecutionSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        data = ExecutionSerializer(selectors.running_executions(), many=True).data
        response = Response(data)
        response["X-Total-Count"] = str(len(data))
        return response


def health(request: Any) -> JsonResponse:
    """200 when the database and the broker answer and a scheduler is active (503 and why
    otherwise; `?scope=process` leaves the scheduler out); cluster alerts (agents, tags,
    backlog) are in the body and never fail the probe."""
    report = health_report(scope=request.GET.get("scope", "cluster"))
    return JsonResponse(report.public(), status=200 if report.healthy else 503)


class MetricsView(ApiView):
    """Prometheus text format; scrape with `authorization: {credentials: <API token>}`."""

    schema = None  # not part of Dkron's API document

    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(generate_latest(metrics.registry()), content_type=CONTENT_TYPE_LATEST)
