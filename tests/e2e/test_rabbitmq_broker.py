"""The whole product with RabbitMQ as the broker (docs/brokers.md), one variant per behaviour.

Agents, schedulers and the API's own publishing all use a RabbitMQ vhost of their own
(DKRON_TEST_AMQP_URL, recreated for each test); the behaviours are the Redis tests' own
(targeting, kill, agent death, scheduler failover), run again on this cluster, plus the
broker's metrics and Celery's tools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import Execution
from tests.e2e import test_failover, test_runs
from tests.e2e.helpers import create, finished
from tests.harness import (
    AMQP_URL,
    ROOT,
    Cluster,
    celery_broker,
    require,
    require_rabbitmq,
    reset_rabbitmq,
    wait_for,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def rabbit_cluster(transactional_db, tmp_path: Path) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    """Like `cluster`, with every process (this one included) on a fresh RabbitMQ vhost."""
    require(
        settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        "PostgreSQL at 127.0.0.1:5432 is needed for multi-process tests",
    )
    require_rabbitmq()
    reset_rabbitmq(AMQP_URL, (settings.CELERY_TASK_DEFAULT_QUEUE,))
    log_dir = Path(os.environ.get("DKRON_TEST_LOGS", tmp_path))
    log_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(log_dir, AMQP_URL)
    with celery_broker(AMQP_URL):
        try:
            yield cluster
        finally:
            cluster.stop_all()


def test_rabbitmq_tags_choose_agents(rabbit_cluster, api):
    test_runs.test_tags_choose_agents_and_untagged_jobs_run_on_every_agent(rabbit_cluster, api)
    log = (rabbit_cluster.log_dir / "agent-agent-web.log").read_text()
    assert "amqp://guest:**@127.0.0.1:5672" in log  # really on RabbitMQ


def test_rabbitmq_kill_through_the_api(rabbit_cluster, api, tmp_path):
    test_runs.test_kill_through_the_api_stops_a_running_shell_job_on_a_prefork_agent(
        rabbit_cluster, api, tmp_path
    )


def test_rabbitmq_an_agent_killed_mid_run_is_closed(rabbit_cluster, api):
    test_runs.test_an_agent_killed_mid_run_is_failed_in_members_and_its_run_is_closed(
        rabbit_cluster, api
    )


def test_rabbitmq_scheduler_failover_without_double_fires(rabbit_cluster, api, tmp_path):
    test_failover.test_a_standby_takes_over_within_seconds_and_no_fire_time_runs_twice(
        rabbit_cluster, api, tmp_path
    )


def test_rabbitmq_metrics_broker_up_and_queue_depths_and_celery_tools(rabbit_cluster, api):
    """/metrics reads RabbitMQ (passive declares); `inspect active` works over it too."""
    agent = rabbit_cluster.agent("agent-rq", concurrency=1)
    create(api, "rq-hold", "sleep 15")
    create(api, "rq-wait", "echo later")
    api.post("/v1/jobs/rq-hold/run")
    wait_for(
        lambda: Execution.objects.filter(job_name="rq-hold", status="running").exists(),
        what="the agent to be busy",
    )
    for _ in range(3):  # one prefetched by the busy agent at most; the others wait in its queue
        api.post("/v1/jobs/rq-wait/run")

    def scrape() -> dict:
        text = api.get("/metrics").content.decode()
        return {m.name: m for m in text_string_to_metric_families(text)}

    def depth() -> float | None:
        metrics = scrape()
        [up] = metrics["dkronweb_broker_up"].samples
        assert up.value == 1
        depths = {s.labels["queue"]: s.value for s in metrics["dkronweb_queue_depth"].samples}
        assert depths.get("dkron.default") == 0
        n = depths.get("dkron.node.agent-rq")
        return n if n and n >= 2 else None

    assert wait_for(depth, timeout=10, what="the node queue's depth") in (2, 3)
    out = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "dkronweb", "inspect", "active", "--json"],
        env=rabbit_cluster.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    active = json.loads(next(x for x in out.splitlines() if x.startswith("{")))
    [task] = active["agent-rq@" + next(iter(active)).split("@", 1)[1]]
    assert task["name"].startswith("run rq-hold #1 @ ")

    [hold] = Execution.objects.filter(job_name="rq-hold")
    api.post(f"/v1/jobs/rq-hold/executions/{hold.pk}/kill")
    wait_for(finished("rq-wait", 3), timeout=30, what="the queued runs")
    assert agent.alive()

    # RabbitMQ down (a port nothing listens on): broker_up 0, never a failed scrape.
    with celery_broker("amqp://guest:guest@127.0.0.1:9//"):
        metrics = scrape()
    assert metrics["dkronweb_broker_up"].samples[0].value == 0
