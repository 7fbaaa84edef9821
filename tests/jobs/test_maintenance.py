"""The sweep tells a lost message from a long queue (issue 15), against the real Redis broker.

Messages are published to the test broker's node queues for real (dispatch.publish_many);
"lost" is a queue emptied behind the database's back, as a broker restart or a FLUSHDB does.
No agent consumes here, so a queue keeps what a test put in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from jobs import dispatch, timeutil
from jobs.models import Agent, ClusterCounter, Execution, Run
from jobs.services import maintenance
from jobs.services.maintenance import DEEP_QUEUE, sweep
from tests.factories import agent, job
from tests.harness import empty_test_broker, require

OLD = timedelta(minutes=10)  # past QUEUED_REPUBLISH_AFTER, whatever the test settings say


@pytest.fixture
def redis_queues(db, monkeypatch) -> Iterator[Any]:
    client = empty_test_broker()
    require(client is not None, "Redis at 127.0.0.1:6379 (the test broker) is needed")
    monkeypatch.setattr(maintenance, "_purged", {})
    yield client
    client.flushdb()


def depth(client: Any, node: str) -> int:
    return int(client.llen(dispatch.node_queue(node)))


def queued(node: str, n: int, *, published: bool = True, age: timedelta = OLD) -> list[Execution]:
    """n queued executions on the node, their messages in its queue, published `age` ago."""
    j = job(f"work-{node}-{Run.objects.count()}")
    made = Run.objects.bulk_create([Run(job=j, snapshot={}) for _ in range(n)])
    rows = Execution.objects.bulk_create(
        Execution(run=r, job=j, job_name=j.name, node_name=node, queue=dispatch.node_queue(node))
        for r in made
    )
    if published:
        dispatch.publish_many(rows)
    then = timeutil.now() - age
    Execution.objects.filter(pk__in=[e.pk for e in rows]).update(
        queued_at=then, published_at=then if published else None
    )
    return rows


def test_a_long_healthy_queue_is_not_republished(redis_queues):
    agent("a1")
    queued("a1", 50)
    assert depth(redis_queues, "a1") == 50
    report = sweep()
    assert report.republished == 0
    assert depth(redis_queues, "a1") == 50  # no duplicates added
    assert not ClusterCounter.objects.filter(name="scheduler_republished:sweep").exists()


def test_a_queue_emptied_behind_the_database_is_republished_after_the_wait(redis_queues):
    agent("a1")
    rows = queued("a1", 30, age=timedelta(seconds=1))
    redis_queues.flushdb()  # the broker lost its messages
    assert sweep().republished == 0  # published a second ago: not late yet
    later = timeutil.now() + OLD
    report = sweep(now=later)
    assert report.republished == 30
    assert depth(redis_queues, "a1") == 30
    assert ClusterCounter.objects.get(name="scheduler_republished:sweep").value == 30
    published = Execution.objects.filter(pk__in=[e.pk for e in rows]).values_list(
        "published_at", flat=True
    )
    assert all(p and p > later - OLD for p in published)  # published again: not next sweep
    assert sweep(now=later).republished == 0


def test_only_the_executions_older_than_the_waiting_messages_are_republished(redis_queues):
    agent("a1")
    lost = queued("a1", 5, age=timedelta(minutes=20))
    redis_queues.flushdb()  # their messages went; the ones published after stay
    waiting = queued("a1", 40)
    assert sweep().republished == 5
    assert depth(redis_queues, "a1") == 45
    republished = set(
        Execution.objects.filter(
            published_at__gt=timeutil.now() - timedelta(minutes=1)
        ).values_list("pk", flat=True)
    )
    assert republished == {e.pk for e in lost}
    assert not republished & {e.pk for e in waiting}


def test_what_a_busy_agent_has_prefetched_is_not_taken_for_lost(redis_queues, settings):
    settings.CELERY_WORKER_PREFETCH_MULTIPLIER = 1
    agent("a1")  # concurrency 4
    Agent.objects.filter(name="a1").update(concurrency=2)
    queued("a1", 2, age=timedelta(minutes=30))
    Execution.objects.update(status="running", heartbeat_at=timeutil.now())
    reserved = queued("a1", 2, age=timedelta(minutes=20))
    redis_queues.flushdb()  # taken off the queue by the agent, held until a slot frees
    queued("a1", 10)
    assert sweep().republished == 0
    # A slot is free: what it had reserved would have started, so those messages are lost.
    Execution.objects.filter(status="running").update(status="success", finished_at=timeutil.now())
    assert sweep().republished == 2
    again = Execution.objects.filter(
        status="queued", published_at__gt=timeutil.now() - timedelta(minutes=1)
    )
    assert set(again.values_list("pk", flat=True)) == {e.pk for e in reserved}


def test_a_deep_queue_is_left_to_drain(redis_queues):
    agent("a1")
    queued("a1", 3, age=timedelta(minutes=20))
    redis_queues.flushdb()
    redis_queues.lpush(dispatch.node_queue("a1"), *(["stale"] * DEEP_QUEUE))
    assert sweep().republished == 0
    redis_queues.delete(dispatch.node_queue("a1"))  # drained
    assert sweep().republished == 3


def test_never_published_work_of_a_live_agent_is_published_whatever_its_queue(redis_queues):
    agent("a1")
    queued("a1", 20)
    queued("a1", 2, published=False)
    assert sweep().republished == 2
    assert depth(redis_queues, "a1") == 22


def test_dead_agents_work_moves_at_once_though_its_queue_is_full(redis_queues, settings):
    settings.DKRON = {**settings.DKRON, "UNTAGGED_TARGET": "one"}
    agent("live")
    agent("dead")
    rows = queued("dead", 3, age=timedelta(seconds=1))
    Execution.objects.update(placement="any")
    Agent.objects.filter(name="dead").update(last_heartbeat=timeutil.now() - OLD)
    report = sweep()
    assert report.moved == 3 and report.republished == 0
    assert set(Execution.objects.values_list("node_name", flat=True)) == {"live"}
    assert depth(redis_queues, "live") == 3
    assert depth(redis_queues, "dead") == 0  # its stale messages purged
    assert {e.pk for e in rows} == set(Execution.objects.values_list("pk", flat=True))


def test_work_of_a_node_with_no_agent_row_fails_at_once(redis_queues):
    agent("a1")
    queued("a1", 5)
    queued("vanished", 2, age=timedelta(seconds=1))
    report = sweep()
    assert (report.failed, report.republished) == (2, 0)
    failed = Execution.objects.filter(node_name="vanished")
    assert {e.status for e in failed} == {"failed"}
    assert {e.reason for e in failed} == {"node vanished is gone before it started this run"}


def test_a_broker_whose_depths_cannot_be_read_is_taken_as_empty(redis_queues, settings, caplog):
    agent("a1")
    queued("a1", 4)
    # The depth read goes to the settings' URL; the publish to the app's (the real broker).
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    assert sweep().republished == 4
    assert "could not read the agents' queue depths" in caplog.text
