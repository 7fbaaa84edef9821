"""/metrics at scrape time: agents' snapshots, missed fires, jobs, queue depths, the broker."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from jobs import telemetry, timeutil
from jobs.models import Agent, Job
from jobs.telemetry import DURATION
from tests.factories import job
from tests.harness import reachable, require
from tests.web.metrics.conftest import samples, scrape, value

FUTURE = timeutil.now() + timedelta(days=365)


def snapshot_of(*executions: tuple[str, str, float]) -> dict:
    """What an agent would store after these (job, status, seconds) executions."""
    telemetry._objects = None
    now = timeutil.now()
    for job_name, status, seconds in executions:
        telemetry.observe_execution(
            job=job_name,
            status=status,
            started_at=now - timedelta(seconds=seconds),
            finished_at=now,
            scheduled_at=now - timedelta(seconds=seconds + 0.03),
            scheduled=True,
        )
    telemetry.count_notification_failure("webhook")
    snap = json.loads(json.dumps(telemetry.snapshot()))
    telemetry._objects = None
    return snap


def add_agent(name: str, metrics: dict, **fields) -> Agent:
    return Agent.objects.create(
        name=name, instance_id=name, last_heartbeat=FUTURE, metrics=metrics, **fields
    )


def test_each_agents_snapshot_becomes_its_series(api):
    add_agent("a1", snapshot_of(("backup", "success", 1), ("backup", "failed", 3)))
    add_agent("a2", snapshot_of(("backup", "success", 0.2), ("report", "success", 20)))
    add_agent("empty", {})
    add_agent("gone", snapshot_of(("backup", "success", 1)), left=True)
    metrics = scrape(api)

    ex = "dkronweb_executions"
    total = f"{ex}_total"
    assert value(metrics, ex, total, agent="a1", job="backup", status="success") == 1
    assert value(metrics, ex, total, agent="a1", job="backup", status="failed") == 1
    assert value(metrics, ex, total, agent="a2", job="backup", status="success") == 1
    assert value(metrics, ex, total, agent="a2", job="report", status="success") == 1
    assert value(metrics, ex, total, agent="gone", job="backup", status="success") == 1
    assert samples(metrics, ex, total, agent="empty") == []
    assert len(samples(metrics, ex, total)) == 5

    d = DURATION.name
    assert value(metrics, d, f"{d}_count", agent="a1", job="backup") == 2
    assert value(metrics, d, f"{d}_sum", agent="a1", job="backup") == pytest.approx(4.0)
    assert value(metrics, d, f"{d}_bucket", agent="a1", job="backup", le="2.5") == 1
    assert value(metrics, d, f"{d}_bucket", agent="a1", job="backup", le="+Inf") == 2
    assert value(metrics, d, f"{d}_bucket", agent="a2", job="report", le="14400.0") == 1

    s = "dkronweb_fire_skew_seconds"
    assert value(metrics, s, f"{s}_count", agent="a2") == 2
    assert value(metrics, s, f"{s}_bucket", agent="a2", le="0.05") == 2
    assert set(metrics[s].samples[0].labels) <= {"agent", "le"}  # no job label here

    n = "dkronweb_notification_failures"
    assert value(metrics, n, f"{n}_total", agent="a1", channel="webhook") == 1


def test_a_malformed_snapshot_is_skipped_not_a_failed_scrape(api):
    add_agent("old", {"v": 99, "f": {"dkronweb_executions": [["j", "success", 1]]}})
    add_agent(
        "bad",
        {
            "v": 1,
            "f": {
                "dkronweb_executions": [["j"], ["j", "success", "x"], ["k", "success", 4]],
                DURATION.name: [["j", 1.0, [1, 2]], "nonsense"],
                "unknown_family": [[1]],
            },
        },
    )
    add_agent("list", [1, 2, 3])  # type: ignore[arg-type]
    metrics = scrape(api)
    [sample] = samples(metrics, "dkronweb_executions", "dkronweb_executions_total")
    assert sample.labels == {"agent": "bad", "job": "k", "status": "success"}
    assert sample.value == 4
    assert samples(metrics, DURATION.name, f"{DURATION.name}_count") == []


def test_agents_by_state_are_kept(api):
    add_agent("alive", {})
    add_agent("failed", {})
    Agent.objects.filter(name="failed").update(last_heartbeat=timeutil.now() - timedelta(hours=1))
    add_agent("left", {}, left=True)
    add_agent("leaving", {})
    Agent.objects.filter(name="leaving").update(leaving=True)
    metrics = scrape(api)
    states = {s.labels["state"]: s.value for s in metrics["dkronweb_agents"].samples}
    assert states == {"alive": 1, "failed": 1, "left": 1, "leaving": 1}


def test_missed_fires_in_total_and_per_job_only_for_jobs_that_missed(api):
    for name in ("never-missed", "missed-3", "missed-5"):
        job(name)
    Job.objects.filter(name="missed-3").update(missed_count=3)
    Job.objects.filter(name="missed-5").update(missed_count=5)
    metrics = scrape(api)
    assert value(metrics, "dkronweb_missed_fires", "dkronweb_missed_fires_total") == 8
    per_job = {
        s.labels["job"]: s.value
        for s in samples(metrics, "dkronweb_job_missed_fires", "dkronweb_job_missed_fires_total")
    }
    assert per_job == {"missed-3": 3, "missed-5": 5}


def test_no_missed_fires_gives_a_zero_total_and_no_job_series(api):
    job("fine")
    metrics = scrape(api)
    assert value(metrics, "dkronweb_missed_fires", "dkronweb_missed_fires_total") == 0
    assert metrics["dkronweb_job_missed_fires"].samples == []


def test_jobs_by_status_and_disabled(api):
    for name in ("a", "b", "c", "d"):
        job(name)
    Job.objects.filter(name__in=["a", "b"]).update(status="success")
    Job.objects.filter(name="c").update(status="failed", disabled=True)
    metrics = scrape(api)
    by_status = {s.labels["status"]: s.value for s in metrics["dkronweb_jobs"].samples}
    assert by_status == {
        "untriggered": 1,
        "success": 2,
        "failed": 1,
        "partially_failed": 0,
        "running": 0,
    }
    assert metrics["dkronweb_jobs_disabled"].samples[0].value == 1


def test_the_existing_figures_are_still_there(api):
    metrics = scrape(api)
    for name in (
        "dkronweb_scheduler_leadership_changes",
        "dkronweb_scheduler_active",
        "dkronweb_agents",
        "dkronweb_executions_active",
    ):
        assert metrics[name].samples, name


# --- queue depth ------------------------------------------------------------------------


@pytest.fixture
def redis_broker(settings):
    require(
        settings.CELERY_BROKER_URL.startswith("redis://") and reachable("127.0.0.1", 6379),
        "Redis at 127.0.0.1:6379 (the test broker) is needed",
    )
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


def test_queue_depth_per_queue_from_redis(api, redis_broker):
    add_agent("n1", {})
    add_agent("n2", {})
    redis_broker.lpush("dkron.node.n1", "m1", "m2")
    redis_broker.lpush("dkron.node.n1\x06\x169", "urgent")  # kombu's priority list
    redis_broker.lpush("dkron.default", "notify")
    redis_broker.lpush("dkron.node.unregistered", "orphan")
    redis_broker.set("unrelated", "x")
    metrics = scrape(api)
    assert value(metrics, "dkronweb_broker_up") == 1
    depths = {s.labels["queue"]: s.value for s in metrics["dkronweb_queue_depth"].samples}
    assert depths == {
        "dkron.default": 1,
        "dkron.node.n1": 3,
        "dkron.node.n2": 0,
        "dkron.node.unregistered": 1,
    }


def test_the_queue_depth_counts_messages_celery_published(api, redis_broker):
    from dkronweb.celery import app

    add_agent("n1", {})
    with app.connection_for_write() as conn, conn.Producer() as producer:
        for _ in range(3):
            producer.publish({"x": 1}, routing_key="dkron.node.n1", declare=None)
    metrics = scrape(api)
    assert value(metrics, "dkronweb_queue_depth", queue="dkron.node.n1") == 3


def test_a_broker_that_is_down_gives_broker_up_zero(api, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing listens on discard
    add_agent("n1", snapshot_of(("backup", "success", 1)))
    metrics = scrape(api)
    assert value(metrics, "dkronweb_broker_up") == 0
    assert metrics["dkronweb_queue_depth"].samples == []
    assert value(
        metrics,
        "dkronweb_executions",
        "dkronweb_executions_total",
        agent="n1",
        job="backup",
        status="success",
    )


def test_the_in_memory_broker_of_the_embedded_mode(api, settings):
    from kombu import Connection

    settings.CELERY_BROKER_URL = "memory://localhost/"
    add_agent("solo", {})
    with Connection("memory://localhost/") as conn:
        queue = conn.SimpleQueue("dkron.node.solo")
        queue.put({"n": 1})
        queue.put({"n": 2})
        try:
            metrics = scrape(api)
        finally:
            queue.clear()
            queue.close()
    assert value(metrics, "dkronweb_broker_up") == 1
    assert value(metrics, "dkronweb_queue_depth", queue="dkron.node.solo") == 2
    assert value(metrics, "dkronweb_queue_depth", queue="dkron.default") == 0


def test_a_transport_it_cannot_read_reports_no_depth(api, settings):
    settings.CELERY_BROKER_URL = "sqs://127.0.0.1:9/"
    metrics = scrape(api)
    assert "dkronweb_broker_up" not in metrics
    assert metrics["dkronweb_queue_depth"].samples == []
