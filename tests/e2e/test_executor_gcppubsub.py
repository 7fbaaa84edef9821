"""A gcppubsub job created with Dkron-style JSON runs on a real agent against the Pub/Sub
emulator."""

from __future__ import annotations

import json

import pytest

from jobs.models import Execution
from tests.executors.servers_gcppubsub import Topic
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def test_a_gcppubsub_job_publishes_and_records_the_message_id(cluster, api, pubsub_topic: Topic):
    # The agent inherits PUBSUB_EMULATOR_HOST, which the pubsub_topic fixture has set.
    cluster.agent("agent-a")
    body = {
        "name": "announce",
        "schedule": "@manually",
        "executor": "gcppubsub",
        "executor_config": {
            "project": pubsub_topic.project,
            "topic": pubsub_topic.topic,
            "data": "aGVsbG8gd29ybGQ=",
            "attributes": json.dumps({"hello": "world", "waka": "paka"}),
            "orderingKey": "tenant-7",
        },
    }
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 201, response.content
    assert api.post("/v1/jobs/announce/run").status_code == 202
    execution = wait_for(
        lambda: (
            Execution.objects.filter(job_name="announce")
            .exclude(status__in=["queued", "running"])
            .first()
        ),
        what="the gcppubsub job to finish",
    )
    assert execution.status == "success", execution.output
    [message] = pubsub_topic.pull()
    assert execution.output == f"{message.message_id}\n"
    assert message.data == b"hello world"
    # The job's attributes, then the fire key's (issue 17; docs/executors.md).
    assert dict(message.attributes) == {
        "hello": "world",
        "waka": "paka",
        "Idempotency-Key": f"announce@run-{execution.run_id}",
        "X-Dkron-Attempt": "1",
        "X-Dkron-Execution": str(execution.pk),
    }
    assert message.ordering_key == "tenant-7"
