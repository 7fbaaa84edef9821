"""A nats job created with Dkron-style JSON runs on a real agent: the message arrives on the
machine's NATS (127.0.0.1:4222), and a wrong password on a private server fails the run."""

from __future__ import annotations

import uuid

import pytest

from jobs.models import Execution
from tests.executors.servers_nats import USER, NatsServer, receive
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def finished(job: str):
    def check():
        return (
            Execution.objects.filter(job_name=job).exclude(status__in=["queued", "running"]).first()
        )

    return check


def test_a_nats_job_publishes_on_the_subject_and_a_refused_login_fails(
    cluster, api, nats_local: str, nats_auth: NatsServer
):
    cluster.agent("agent-a")
    subject = f"dkronweb.e2e.{uuid.uuid4().hex[:10]}"
    body = {
        "name": "announce",
        "schedule": "@manually",
        "executor": "nats",
        "executor_config": {
            "url": nats_local,
            "subject": subject,
            "message": '{"event": "tick"}',
            "userName": "",
            "password": "",
            "debug": "",
        },
    }
    assert api.post("/v1/jobs", body, format="json").status_code == 201

    def run_job():
        assert api.post("/v1/jobs/announce/run").status_code == 202
        return wait_for(finished("announce"), what="the nats job to finish")

    execution, message = receive(nats_local, subject, run_job)
    assert execution.status == "success", execution.output
    assert execution.output == (
        f"Result: Message successfully sent (subject {subject!r}, 17 bytes, flushed to "
        "127.0.0.1:4222)\n"
    )
    assert message is not None and message.data == b'{"event": "tick"}'

    refused = {
        "name": "announce-private",
        "schedule": "@manually",
        "executor": "nats",
        "executor_config": {
            "url": nats_auth.url,
            "subject": subject,
            "userName": USER,
            "password": "not-the-password",
        },
    }
    created = api.post("/v1/jobs", refused, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["executor_config"]["password"] == "********"
    api.post("/v1/jobs/announce-private/run")
    failed = wait_for(finished("announce-private"), what="the refused nats job to finish")
    assert failed.status == "failed"
    assert failed.output == (f"nats: authorization violation: {nats_auth.url} refused user 'u'\n")
