"""A kafka job created with Dkron-style JSON runs on a real agent against a tansu broker, and a
SASL job's password stays hidden from the API and the output when the broker refuses it."""

from __future__ import annotations

import json

import pytest

from jobs.models import Execution
from tests.executors.servers_kafka import KafkaProxy, KafkaServer
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-Secret-9"


def finished(job: str):
    def check():
        return (
            Execution.objects.filter(job_name=job).exclude(status__in=["queued", "running"]).first()
        )

    return check


def test_a_kafka_job_produces_an_acknowledged_message_and_hides_the_sasl_password(
    cluster, api, kafka: KafkaServer, kafka_proxy: KafkaProxy
):
    topic = kafka.new_topic()
    cluster.agent("agent-a")
    body = {
        "name": "produce-order",
        "schedule": "@manually",
        "executor": "kafka",
        "executor_config": {
            "brokerAddress": kafka.address,
            "topic": topic,
            "key": "order-7",
            "message": '{"order": 7}',
            "headers": json.dumps(["Source: dkronweb", "Trace: a:b"]),
            "tlsEnable": "false",
            "debug": "",
        },
    }
    assert api.post("/v1/jobs", body, format="json").status_code == 201, "job not created"
    assert api.post("/v1/jobs/produce-order/run").status_code == 202
    execution = wait_for(finished("produce-order"), what="the kafka job to finish")
    assert execution.status == "success", execution.output
    assert execution.output == (
        "Result: successfully produced the message on Kafka broker "
        f"(topic {topic!r}, partition 0, offset 0)\n"
    )
    [record] = kafka.records(topic)
    assert (record.key, record.value) == (b"order-7", b'{"order": 7}')
    # The job's headers, then the fire key's (issue 17; docs/executors.md).
    assert list(record.headers) == [
        ("Source", b"dkronweb"),
        ("Trace", b"a:b"),
        ("Idempotency-Key", f"produce-order@run-{execution.run_id}".encode()),
        ("X-Dkron-Attempt", b"1"),
        ("X-Dkron-Execution", str(execution.pk).encode()),
    ]

    # A SASL job: the broker (the test proxy standing in for SCRAM) refuses the login.
    kafka_proxy.mode = "refuse_sasl"
    sasl = {
        "name": "produce-sasl",
        "schedule": "@manually",
        "executor": "kafka",
        "executor_config": {
            "brokerAddress": kafka_proxy.address,
            "topic": topic,
            "message": "m",
            "saslUsername": "alice",
            "saslPassword": PASSWORD,
            "saslMechanism": "sha512",
            "debug": "true",
        },
    }
    created = api.post("/v1/jobs", sasl, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["executor_config"]["saslPassword"] == "********"
    assert api.get("/v1/jobs/produce-sasl").json()["executor_config"]["saslPassword"] == "********"
    api.post("/v1/jobs/produce-sasl/run")
    failed = wait_for(finished("produce-sasl"), what="the refused kafka job to finish")
    assert failed.status == "failed"
    assert failed.output.startswith(
        f"kafka: authentication refused by {kafka_proxy.address}: Authentication failed"
    )
    assert '"saslPassword": "********"' in failed.output
    assert PASSWORD not in failed.output
    assert kafka_proxy.sasl_logins, "the agent never tried to log in"
