"""Issue 15: the maintenance sweep costs the same whatever the healthy queued backlog.

As tests/jobs/test_history_costs.py: every statement the sweep sends is run under EXPLAIN
ANALYZE on PostgreSQL, sequential scans off, and the rows each plan node reads must stay far
below the backlog: BACKLOG executions queued on two live agents, published long ago, their
messages waiting in the agents' (real Redis) queues. The sweep before this read the whole
queued set twice every 5 s (the stranded-work query excluding the live agents, and the
republish query over the live agents' old-published rows) and republished 1,000 of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from jobs import dispatch, timeutil
from jobs.models import Agent, Execution, Run
from jobs.services import agents, maintenance
from jobs.services.maintenance import DEEP_QUEUE, REPUBLISH_BATCH, sweep
from tests.factories import agent, job
from tests.harness import empty_test_broker, require
from tests.jobs.test_history_costs import BOUND, assert_bounded, explained, on_postgres

pytestmark = pytest.mark.postgresql

BACKLOG = 20_000
NODES = ("n1", "n2")


@pytest.fixture
def backlog(db, monkeypatch) -> Iterator[Any]:
    """BACKLOG queued executions on n1 and n2 published 10 minutes ago, a message for each
    waiting in their queues (stand-ins: what is in a message does not matter to the sweep)."""
    require(on_postgres(), "plans are PostgreSQL's (the SQLite pass leaves these tests out)")
    client = empty_test_broker()
    require(client is not None, "Redis at 127.0.0.1:6379 (the test broker) is needed")
    monkeypatch.setattr(agents, "LOAD_CAP_PER_SLOT", 2)  # placement's load: bounded by design
    monkeypatch.setattr(maintenance, "_purged", {})
    for node in NODES:
        agent(node)
    Agent.objects.create(name="gone", tags={"role": "dkron"}, last_heartbeat=None)
    j = job("backlog")
    with connection.cursor() as cursor:  # statistics from before the burst, as in production
        cursor.execute("ANALYZE jobs_execution, jobs_run, jobs_job, jobs_agent")
    then = timeutil.now() - timedelta(minutes=10)
    made = Run.objects.bulk_create([Run(job=j) for _ in range(BACKLOG)], batch_size=5000)
    Execution.objects.bulk_create(
        (
            Execution(
                run=r,
                job=j,
                job_name=j.name,
                node_name=NODES[i % 2],
                queue=dispatch.node_queue(NODES[i % 2]),
                queued_at=then,
                published_at=then,
            )
            for i, r in enumerate(made)
        ),
        batch_size=5000,
    )
    Execution.objects.update(queued_at=then)  # auto_now_add set it to now
    for node in NODES:
        client.lpush(dispatch.node_queue(node), *(["message"] * (BACKLOG // 2)))
    yield client
    client.flushdb()


def test_the_sweep_reads_none_of_a_healthy_backlog(backlog):
    with explained() as seen:
        report = sweep()
    assert_bounded(seen)
    assert report.republished == 0
    assert backlog.llen(dispatch.node_queue("n1")) == BACKLOG // 2  # no duplicates


def test_a_lost_backlog_is_republished_a_batch_at_a_time_reading_the_batch(backlog):
    backlog.delete(dispatch.node_queue("n1"))  # n1's queue lost; n2's waits as it was
    with explained() as seen:
        report = sweep()
    assert report.republished == REPUBLISH_BATCH
    worst = [(rows, node, sql[:160]) for sql, node, rows in seen if rows > REPUBLISH_BATCH + BOUND]
    assert not worst, worst
    assert backlog.llen(dispatch.node_queue("n1")) == REPUBLISH_BATCH


def test_a_shallow_queue_reads_its_depth_not_the_backlog(backlog):
    backlog.delete(dispatch.node_queue("n1"))
    backlog.lpush(dispatch.node_queue("n1"), *(["message"] * (DEEP_QUEUE - 1)))
    Execution.objects.filter(node_name="n1").exclude(
        pk__in=Execution.objects.filter(node_name="n1")
        .order_by("-pk")
        .values("pk")[: DEEP_QUEUE - 1]
    ).update(status="success", finished_at=timeutil.now())
    with explained() as seen:
        assert sweep().republished == 0
    worst = [(rows, node, sql[:160]) for sql, node, rows in seen if rows > DEEP_QUEUE + BOUND]
    assert not worst, worst


def test_stranded_work_is_found_without_reading_the_live_backlog(backlog, monkeypatch):
    j = job("stranded")
    for node in ("gone", "never-registered"):
        run = Run.objects.create(job=j)
        Execution.objects.create(run=run, job=j, job_name=j.name, node_name=node)
    finishing: list[tuple[int, int]] = []  # the statements of execution_finish, left out

    def finish(**kwargs: Any) -> Any:
        start = len(seen)
        try:
            return real_finish(**kwargs)
        finally:
            finishing.append((start, len(seen)))

    real_finish = maintenance.execution_finish
    monkeypatch.setattr(maintenance, "execution_finish", finish)
    with explained() as seen:
        report = sweep()
    left_out = {i for start, end in finishing for i in range(start, end)}
    assert_bounded([s for i, s in enumerate(seen) if i not in left_out])
    assert report.failed == 2 and report.republished == 0
