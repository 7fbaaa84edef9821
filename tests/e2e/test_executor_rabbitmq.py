"""A rabbitmq job created with Dkron-style JSON runs on a real agent against the machine's
RabbitMQ (127.0.0.1:5672, guest/guest)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pika
import pytest

from jobs.models import Execution
from tests.harness import reachable, require, wait_for

pytestmark = pytest.mark.e2e

URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
def queue() -> Iterator[str]:
    require(reachable("127.0.0.1", 5672), "RabbitMQ at 127.0.0.1:5672 (guest/guest) is needed")
    name = f"dkronweb-e2e-{uuid.uuid4().hex[:12]}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    connection.channel().queue_delete(name)
    connection.close()


def finished(job: str):
    def check():
        return (
            Execution.objects.filter(job_name=job).exclude(status__in=["queued", "running"]).first()
        )

    return check


def test_a_rabbitmq_job_publishes_a_confirmed_message_and_hides_the_url(cluster, api, queue):
    cluster.agent("agent-a")
    body = {
        "name": "publish-order",
        "schedule": "@manually",
        "executor": "rabbitmq",
        "executor_config": {
            "url": URL,
            "exchange": "amq.default",
            "queue.name": queue,
            "queue.create": "true",
            "queue.durable": "true",
            "queue.auto_delete": "false",
            "queue.exclusive": "false",
            "message.content_type": "application/json",
            "message.delivery_mode": "2",
            "message.messageId": "4373732772",
            "message.body": '{"key":"value"}',
        },
    }
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 201, response.content
    # Only the password is masked: the user, host and vhost stay readable.
    masked = "amqp://guest:********@127.0.0.1:5672/"
    assert response.json()["executor_config"]["url"] == masked
    assert api.get("/v1/jobs/publish-order").json()["executor_config"]["url"] == masked

    assert api.post("/v1/jobs/publish-order/run").status_code == 202
    execution = wait_for(finished("publish-order"), what="the rabbitmq job to finish")
    assert execution.status == "success", execution.output
    assert execution.output == (
        f"rabbitmq: published 15 bytes to the default exchange with routing key {queue!r} on "
        "127.0.0.1:5672 (vhost '/'), message id '4373732772'; the broker confirmed it\n"
    )

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    method, properties, payload = connection.channel().basic_get(queue, auto_ack=True)
    connection.close()
    assert method is not None
    assert payload == b'{"key":"value"}'
    assert properties.content_type == "application/json"
    assert properties.delivery_mode == 2
    assert properties.message_id == "4373732772"

    # Edited (the URL sent back masked, so the stored one is kept) to a queue nobody
    # declared, the job fails where Dkron would have reported success.
    edit = {**body, "executor_config": {**body["executor_config"], "queue.create": "false"}}
    edit["executor_config"].update({"url": masked, "queue.name": f"{queue}-missing"})
    assert api.post("/v1/jobs", edit, format="json").status_code in (200, 201)
    api.post("/v1/jobs/publish-order/run")

    def second_run():
        done = Execution.objects.filter(job_name="publish-order").exclude(
            status__in=["queued", "running"]
        )
        return done.order_by("-id").first() if done.count() == 2 else None

    failed = wait_for(second_run, what="the unroutable run to finish")
    assert failed.status == "failed"
    assert failed.output.startswith(
        f"rabbitmq: queue '{queue}-missing' does not exist on 127.0.0.1:5672 (vhost '/')"
    )
