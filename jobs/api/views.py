"""The /v1 views: thin adapters from Dkron's wire format to services and selectors."""

from __future__ import annotations

import os
import socket
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors
from jobs.api.parsers import JSONParser
from jobs.api.serializers import JobInputSerializer, execution_to_dict, job_to_dict
from jobs.errors import DomainError, NotFound
from jobs.models import Agent, Execution
from jobs.services import agents as agent_services
from jobs.services import jobs as job_services
from jobs.services import lease as lease_services
from jobs.services import runs as run_services
from jobs.services.executions import execution_kill

SERF_STATUS = {"alive": 1, "left": 3, "failed": 4}


class ApiView(APIView):
    """Base of every /v1 view: JSON bodies through the hardened parser."""

    parser_classes = [JSONParser]


def _flag(request: Request, name: str) -> bool:
    """Dkron treats `?runoncreate` as true by presence; explicit false values are honoured."""
    if name not in request.query_params:
        return False
    return request.query_params.get(name, "").lower() not in {"false", "0", "no"}


def _upsert(request: Request) -> Response:
    serializer = JobInputSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    actor = job_services.Actor.from_user(request.user)
    job, _created = job_services.job_upsert(data=dict(serializer.validated_data), actor=actor)
    if _flag(request, "runoncreate"):
        run_services.run_now(job=job, force=True)
        job.refresh_from_db()
    response = Response(job_to_dict(job), status=201)
    response["Location"] = f"/v1/jobs/{job.name}"
    return response


def _edit_perm(request: Request) -> str:
    return "jobs.change_job"


class StatusView(ApiView):
    @extend_schema(summary="Agent and cluster status")
    def get(self, request: Request) -> Response:
        from dkronweb import __version__

        agents = list(Agent.objects.all())
        states = [agent_services.agent_state(a) for a in agents]
        return Response(
            {
                "agent": {"name": settings.NODE_NAME, "version": __version__},
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


def member_to_dict(agent: Agent) -> dict[str, Any]:
    state = agent_services.agent_state(agent)
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
        "running": agent.running,
        "last_heartbeat": agent.last_heartbeat.isoformat() if agent.last_heartbeat else None,
    }


class MembersView(ApiView):
    def get(self, request: Request) -> Response:
        agents = Agent.objects.all()
        response = Response([member_to_dict(a) for a in agents])
        response["X-Total-Count"] = str(len(response.data))
        return response


def _leader_member() -> dict[str, Any] | None:
    holder = lease_services.lease_holder()
    if holder is None:
        return None
    host = holder.holder.split(":")[0]
    return {
        "Name": holder.holder,
        "Addr": host,
        "Port": 0,
        "Tags": {"role": "dkron", "server": "true"},
        "Status": 1,
        "id": holder.holder,
        "statusText": "alive",
        "since": holder.acquired_at.isoformat() if holder.acquired_at else None,
    }


class LeaderView(ApiView):
    def get(self, request: Request) -> Response:
        member = _leader_member()
        if member is None:
            raise NotFound("no active scheduler")
        return Response(member)


class IsLeaderView(ApiView):
    def get(self, request: Request) -> Response:
        holder = lease_services.lease_holder()
        mine = f"{socket.gethostname()}:{os.getpid()}:"
        if holder is not None and holder.holder.startswith(mine):
            return Response("I am a leader")
        return Response("I am a follower", status=404)


class JobsView(ApiView):
    write_perm = "jobs.add_job"

    def get(self, request: Request) -> Response:
        qs = selectors.job_list(request.query_params)
        total = qs.count()
        if "_start" in request.query_params or "_end" in request.query_params:
            start, end = selectors.page_bounds(request.query_params, total)
            qs = qs[start:end]
        response = Response([job_to_dict(j) for j in qs])
        response["X-Total-Count"] = str(total)
        return response

    def post(self, request: Request) -> Response:
        return _upsert(request)

    def patch(self, request: Request) -> Response:
        return _upsert(request)


class JobView(ApiView):
    def write_perm(self, request: Request) -> str:
        return {"PUT": "jobs.change_job", "DELETE": "jobs.delete_job"}.get(
            request.method or "", "jobs.operate_job"
        )

    def get(self, request: Request, name: str) -> Response:
        return Response(job_to_dict(job_services.job_get(name)))

    def put(self, request: Request, name: str) -> Response:
        return _upsert(request)

    def delete(self, request: Request, name: str) -> Response:
        job = job_services.job_get(name)
        data = job_to_dict(job)
        job_services.job_delete(job=job)
        return Response(data)

    def post(self, request: Request, name: str) -> Response:
        return run_job(request, name)


def run_job(request: Request, name: str) -> Response:
    job = job_services.job_get(name)
    run = run_services.run_now(job=job, force=_flag(request, "force"))
    job.refresh_from_db()
    response = Response(job_to_dict(job), status=202)
    response["Location"] = f"/v1/jobs/{job.name}/executions?group={run.pk}"
    response["X-Run-Group"] = str(run.pk)
    return response


class JobRunView(ApiView):
    write_perm = "jobs.operate_job"

    def post(self, request: Request, name: str) -> Response:
        return run_job(request, name)


class JobToggleView(ApiView):
    write_perm = "jobs.operate_job"

    def post(self, request: Request, name: str) -> Response:
        job = job_services.job_toggle(job=job_services.job_get(name))
        return Response(job_to_dict(job))


def _output_limit(request: Request) -> int | None:
    raw = request.query_params.get("output_size_limit")
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise DomainError("output_size_limit must be an integer") from None
    if value < 0:
        raise DomainError("output_size_limit must not be negative")
    return value


class ExecutionsView(ApiView):
    write_perm = "jobs.delete_job"

    def get(self, request: Request, name: str) -> Response:
        job = job_services.job_get(name)
        qs = selectors.execution_list(job, request.query_params)
        group = request.query_params.get("group")
        if group:
            if not group.isdigit():
                raise DomainError("group must be an integer")
            qs = qs.filter(run_id=int(group))
        total = qs.count()
        start, end = selectors.page_bounds(request.query_params, total)
        limit = _output_limit(request)
        data = [execution_to_dict(e, output_limit=limit) for e in qs[start:end]]
        response = Response(data)
        response["X-Total-Count"] = str(total)
        return response

    def delete(self, request: Request, name: str) -> Response:
        job = job_services.job_clear_executions(job=job_services.job_get(name))
        return Response(job_to_dict(job))


def _execution(name: str, execution_id: str) -> Execution:
    if not execution_id.isdigit():
        raise NotFound(f"execution '{execution_id}' not found")
    try:
        return Execution.objects.get(pk=int(execution_id), job_name=name)
    except Execution.DoesNotExist:
        raise NotFound(f"execution '{execution_id}' not found for job '{name}'") from None


class ExecutionView(ApiView):
    def get(self, request: Request, name: str, execution_id: str) -> Response:
        job_services.job_get(name)
        return Response(execution_to_dict(_execution(name, execution_id)))


class ExecutionKillView(ApiView):
    write_perm = "jobs.operate_job"

    def post(self, request: Request, name: str, execution_id: str) -> Response:
        job_services.job_get(name)
        execution = execution_kill(execution=_execution(name, execution_id))
        return Response(execution_to_dict(execution), status=202)


class BusyView(ApiView):
    def get(self, request: Request) -> Response:
        data = [execution_to_dict(e) for e in selectors.running_executions()]
        response = Response(data)
        response["X-Total-Count"] = str(len(data))
        return response


def health(request: Any) -> JsonResponse:
    """200 only when the database and the broker answer; says which one failed otherwise."""
    from dkronweb.celery import app

    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {exc.__class__.__name__}"
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "healthy" if healthy else "unhealthy", **checks}
    return JsonResponse(body, status=200 if healthy else 503)
