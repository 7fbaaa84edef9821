"""End to end: a real agent runs a failing shell job and its notification reaches a webhook."""

from __future__ import annotations

import json

import pytest

from jobs.models import Execution, Run
from tests.harness import wait_for
from tests.notifications.receivers import free_port

pytestmark = pytest.mark.e2e

PUBLIC_URL = "http://dkron.test:8080"


def create(api, name: str, command: str, **fields) -> None:
    body = {
        "name": name,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": command, "shell": "true"},
        **fields,
    }
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 201, response.content


def test_a_failing_job_on_a_real_agent_calls_the_webhook(cluster, api, receiver):
    agent = cluster.agent("agent-a", DKRON_PUBLIC_URL=PUBLIC_URL)
    create(
        api,
        "nightly-report",
        "echo generating; echo disk full >&2; exit 3",
        notify={
            "on": "on_failure",
            "webhooks": [
                {
                    "url": receiver.url + "/alerts",
                    "headers": {"X-Token": "s3cret", "X-Job": "{{ job.name }}"},
                    "body": '{"job": {{ job.name|json }}, "status": {{ run.status|json }}, '
                    '"link": {{ ui_url|json }}, "output": {{ executions.0.output|json }}}',
                }
            ],
        },
    )

    assert api.post("/v1/jobs/nightly-report/run").status_code == 202
    [request] = receiver.wait_for(1, timeout=30)

    assert (request.method, request.path) == ("POST", "/alerts")
    assert request.headers["X-Token"] == "s3cret"
    assert request.headers["X-Job"] == "nightly-report"
    body = json.loads(request.body)
    assert body["job"] == "nightly-report"
    assert body["status"] == "failed"
    assert body["link"] == f"{PUBLIC_URL}/ui/jobs/nightly-report/"
    assert "disk full" in body["output"]
    assert Run.objects.get(job__name="nightly-report").status == "failed"
    assert "s3cret" not in agent.log()


def test_a_failing_webhook_does_not_block_dependents(cluster, api):
    agent = cluster.agent("agent-a", DKRON_NOTIFY_RETRIES="1", DKRON_NOTIFY_RETRY_BACKOFF="0.1")
    dead = f"http://127.0.0.1:{free_port()}/hook"
    create(api, "parent", "echo parent", notify={"on": "always", "webhooks": [{"url": dead}]})
    create(api, "child", "echo child", parent_job="parent", schedule="")

    assert api.post("/v1/jobs/parent/run").status_code == 202

    def child_done():
        rows = Execution.objects.filter(job_name="child", status="success")
        return rows.first()

    wait_for(child_done, timeout=30, what="the dependent job's run")
    assert Run.objects.get(job__name="parent").status == "success"
    wait_for(lambda: "notification failed" in agent.log(), timeout=15, what="the logged failure")
    assert "connection failed" in agent.log()
