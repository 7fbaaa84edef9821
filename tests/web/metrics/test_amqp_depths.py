"""/metrics on RabbitMQ: broker_up and the depth of each agent's queue (passive declares)."""

from __future__ import annotations

from kombu import Connection

from tests.harness import AMQP_URL, require_rabbitmq, reset_rabbitmq
from tests.web.metrics.conftest import scrape, value
from tests.web.metrics.test_collector import add_agent


def test_queue_depths_from_rabbitmq_with_a_missing_queue_counted_zero(api, settings):
    require_rabbitmq()
    reset_rabbitmq(AMQP_URL, ("dkron.default", "dkron.node.r1", "dkron.node.r2"))
    settings.CELERY_BROKER_URL = AMQP_URL
    add_agent("r1", {})
    add_agent("r2", {})  # never started: its queue was never declared
    with Connection(AMQP_URL) as conn:
        queue = conn.SimpleQueue("dkron.node.r1")
        for n in range(3):
            queue.put({"n": n})
        queue.close()
    metrics = scrape(api)
    assert value(metrics, "dkronweb_broker_up") == 1
    depths = {s.labels["queue"]: s.value for s in metrics["dkronweb_queue_depth"].samples}
    assert depths == {"dkron.default": 0, "dkron.node.r1": 3, "dkron.node.r2": 0}
    reset_rabbitmq(AMQP_URL, ("dkron.node.r1",))


def test_rabbitmq_that_is_down_gives_broker_up_zero(api, settings):
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:9//"  # nothing listens there
    add_agent("r1", {})
    metrics = scrape(api)
    assert value(metrics, "dkronweb_broker_up") == 0
    assert metrics["dkronweb_queue_depth"].samples == []
