"""End to end: a grpc job created through /v1 runs on a real agent against a real gRPC server."""

from __future__ import annotations

import json

import pytest

from jobs.models import Execution
from tests.executors.servers_grpc import serving
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def finished(job: str):
    def check():
        done = Execution.objects.filter(job_name=job).exclude(status__in=("queued", "running"))
        return list(done) or None

    return check


def test_a_grpc_job_calls_the_method_on_an_agent_and_keeps_the_response_as_output(cluster, api):
    with serving("v1alpha") as server:
        cluster.agent("agent-a")
        body = {
            "name": "greet-grpc",
            "schedule": "@manually",
            "executor": "grpc",
            "executor_config": {
                "url": server.url("SayHello"),
                "body": json.dumps({"name": "Grace", "tags": ["e2e"], "mood": "HAPPY"}),
                "headers": json.dumps(["x-job: greet-grpc", "x-when: 12:00:00"]),
                "timeout": "10",
                "expectCode": "0",
            },
        }
        response = api.post("/v1/jobs", body, format="json")
        assert response.status_code == 201, response.content
        assert api.post("/v1/jobs/greet-grpc/run").status_code == 202

        [execution] = wait_for(finished("greet-grpc"), timeout=30, what="the grpc run")
        assert execution.status == "success", execution.output
        received = server.servicer.last("SayHello")
        assert received.request == {"name": "Grace", "tags": ["e2e"], "mood": "HAPPY"}
        assert received.metadata["x-job"] == "greet-grpc"
        assert received.metadata["x-when"] == "12:00:00"
        output = json.loads(execution.output)
        assert output["message"] == "Hello, Grace!"
        assert output["tagCount"] == 1

        # An unexpected status fails the run with the status and the server's details.
        body["name"] = "fail-grpc"
        body["executor_config"] = {
            "url": server.url("Fail"),
            "body": '{"code": "PERMISSION_DENIED", "details": "not today"}',
        }
        assert api.post("/v1/jobs", body, format="json").status_code == 201
        api.post("/v1/jobs/fail-grpc/run")
        [failed] = wait_for(finished("fail-grpc"), timeout=30, what="the failing grpc run")
        assert failed.status == "failed"
        assert "grpc: expected OK, got PERMISSION_DENIED: not today" in failed.output
