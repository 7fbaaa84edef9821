"""Issue 15: the fire, publish, claim and finish paths cost the same whatever the history.

No timings: on PostgreSQL every statement these paths send is run under EXPLAIN ANALYZE, and
the rows each plan node reads (returned, plus removed by a filter, times its loops) must stay
far below the job's history and the cluster's queued backlog. A plan that walks a job's
history, or the whole active set, reads thousands of rows here and fails. Sequential scans
are disabled for the check: these tables are small in a test, and the question is whether a
bounded index path exists (the plans bench.history measures at millions of rows).

The behaviour tests at the end hold on SQLite as well.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction

from jobs import dispatch, timeutil
from jobs.models import Agent, Execution, Job, Run
from jobs.services import agents, executions, runs
from jobs.services.runs import Fire, start_runs
from tests.factories import agent, job
from tests.harness import require

HISTORY = 3000  # finished executions of the job under test
BACKLOG = 3000  # queued executions of another job, on the agent
BOUND = 100  # rows any plan node may read


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def _rows_read(plan: dict[str, Any]) -> Iterator[tuple[str, float]]:
    loops = plan.get("Actual Loops", 1) or 1
    read = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
    read += plan.get("Rows Removed by Index Recheck", 0)
    name = plan["Node Type"] + (f" on {plan['Index Name']}" if "Index Name" in plan else "")
    yield name, read * loops
    for child in plan.get("Plans", []):
        yield from _rows_read(child)


@contextmanager
def explained() -> Iterator[list[tuple[str, str, float]]]:
    """Every statement run inside: (sql, the plan node that read most, how many rows)."""
    seen: list[tuple[str, str, float]] = []

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any):
        head = sql.lstrip().split(None, 1)[0].upper()
        if many or head not in ("SELECT", "UPDATE", "INSERT", "DELETE", "WITH"):
            return execute(sql, params, many, context)
        cursor = context["cursor"]
        cursor.execute("SAVEPOINT plan_check")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        doc = cursor.fetchone()[0]
        cursor.execute("ROLLBACK TO SAVEPOINT plan_check")
        plan = (json.loads(doc) if isinstance(doc, str) else doc)[0]["Plan"]
        node, rows = max(_rows_read(plan), key=lambda item: item[1])
        seen.append((sql, node, rows))
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
    try:
        with connection.execute_wrapper(wrapper):
            yield seen
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_seqscan")


def assert_bounded(seen: list[tuple[str, str, float]]) -> None:
    assert seen, "no statement was checked"
    worst = [(rows, node, sql[:160]) for sql, node, rows in seen if rows > BOUND]
    assert not worst, "statements reading the history or the backlog:\n" + "\n".join(
        f"  {rows:.0f} rows by {node}: {sql}" for rows, node, sql in worst
    )


@pytest.fixture
def history(db, monkeypatch, settings) -> Job:
    """A job with HISTORY finished runs and a BACKLOG of queued executions on the agents."""
    require(on_postgres(), "plans are PostgreSQL's (the SQLite pass leaves these tests out)")
    settings.DKRON = {**settings.DKRON, "UNTAGGED_TARGET": "one"}
    monkeypatch.setattr(agents, "LOAD_CAP_PER_SLOT", 2)  # 8 per agent
    # Trimming (every TRIM_EVERY-th run) reads up to the job's history_limit, by design; this
    # job holds more than that, so a trim here would be catching up. Not part of the check.
    monkeypatch.setattr(executions, "TRIM_EVERY", 10**9)
    agent("n1")
    agent("n2")
    # Slots enough for the backlog: a full agent would hold the run back (issue 16), and the
    # claim and finish below are of a run placed on one.
    Agent.objects.update(slots=10**6)
    busy = job("busy", schedule="@every 1h")
    other = job("backlog")
    now = timeutil.now()
    past = Run.objects.bulk_create(
        Run(job=busy, scheduled_at=now - timedelta(minutes=i + 1), finished=True)
        for i in range(HISTORY)
    )
    Execution.objects.bulk_create(
        Execution(
            run=r,
            job=busy,
            job_name=busy.name,
            node_name="n1",
            status="success",
            final=True,
            started_at=r.scheduled_at,
            finished_at=r.scheduled_at,
            published_at=r.scheduled_at,
        )
        for r in past
    )
    # Statistics before the backlog, as in production: autovacuum analyzes a table after a
    # tenth of it changed, so they say "nothing is queued" when a burst comes.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_execution, jobs_run, jobs_job, jobs_agent")
    queued = Run.objects.bulk_create(
        Run(job=other, scheduled_at=now - timedelta(seconds=i + 1)) for i in range(BACKLOG)
    )
    nodes = ("n1", "n2")
    Execution.objects.bulk_create(
        Execution(
            run=r,
            job=other,
            job_name=other.name,
            node_name=nodes[i % 2],
            queue=dispatch.node_queue(nodes[i % 2]),
            published_at=now,
        )
        for i, r in enumerate(queued)
    )
    return busy


@pytest.mark.postgresql
def test_firing_a_job_reads_neither_its_history_nor_the_backlog(history, monkeypatch):
    now = timeutil.now()
    Job.objects.filter(pk=history.pk).update(next_run=now)
    monkeypatch.setattr(dispatch, "publish_many", lambda *a, **k: None)
    with explained() as seen:
        report = runs.fire_due_jobs(now=now)
    assert report.fired == 1
    assert_bounded(seen)


@pytest.mark.postgresql
def test_forbid_and_replace_checks_read_the_jobs_active_rows_only(history):
    with explained() as seen:
        assert runs.active_job_ids([history.pk]) == set()
        assert not runs.has_active_run(history)
    assert_bounded(seen)


@pytest.mark.postgresql
def test_claim_and_finish_read_the_run_not_the_history(history):
    with transaction.atomic():
        [run] = start_runs([Fire(job=history, scheduled_at=None, trigger=Run.Trigger.MANUAL)])
    execution = Execution.objects.get(run=run)
    with explained() as seen:
        claimed = executions.execution_claim(
            execution_id=execution.pk, node_name=execution.node_name
        )
        assert claimed is not None
        executions.execution_finish(
            execution_id=execution.pk, status="success", output="ok", claimed=claimed
        )
    assert Run.objects.get(pk=run.pk).finished
    assert Job.objects.get(pk=history.pk).status == "success"
    assert_bounded(seen)


@pytest.mark.postgresql
def test_settling_through_the_orm_reads_the_run_not_the_history(history):
    with transaction.atomic():
        [run] = start_runs([Fire(job=history, scheduled_at=None, trigger=Run.Trigger.MANUAL)])
    Execution.objects.filter(run=run).update(status="success", final=True)
    with explained() as seen:
        assert executions.run_settle(run_id=run.pk)
    assert Job.objects.get(pk=history.pk).status == "success"
    assert_bounded(seen)


@pytest.mark.postgresql
def test_the_schedulers_tick_queries_skip_the_published_backlog(history):
    with explained() as seen:
        assert agents.alive_nodes()
        assert runs.publish_due_catchups(limit=20) == 0
        assert runs.seconds_until_next_catchup() is None
        assert runs.publish_left_unpublished() == 0
        runs.seconds_until_next_due()
    assert_bounded(seen)


# --- Behaviour (PostgreSQL and SQLite) ---------------------------------------------------------


def _queue(job_: Job, node: str, n: int) -> None:
    made = Run.objects.bulk_create([Run(job=job_) for _ in range(n)])
    Execution.objects.bulk_create(
        Execution(run=r, job=job_, job_name=job_.name, node_name=node) for r in made
    )


def test_placement_load_is_exact_below_the_cap_and_equal_above(db, monkeypatch):
    monkeypatch.setattr(agents, "LOAD_CAP_PER_SLOT", 1)  # the factory's agents have 4 slots
    agent("n1")
    agent("n2")
    agent("n3")
    backlog = job("backlog")
    _queue(backlog, "n1", 2)
    _queue(backlog, "n2", 9)
    _queue(backlog, "n3", 30)
    load = {n.name: n.running for n in agents.alive_nodes()}
    if on_postgres():
        assert load == {"n1": 2, "n2": 4, "n3": 4}
    else:  # SQLite cannot cap the count (the embedded mode's backlog is small)
        assert load == {"n1": 2, "n2": 9, "n3": 30}


@pytest.mark.postgresql  # SQLite counts the load uncapped
def test_agents_past_the_cap_are_given_work_in_turn(db, settings, monkeypatch):
    monkeypatch.setattr(agents, "LOAD_CAP_PER_SLOT", 1)
    settings.DKRON = {**settings.DKRON, "UNTAGGED_TARGET": "one"}
    agent("n1")
    agent("n2")
    Agent.objects.update(slots=10**6)  # not full: a full agent's runs would wait (issue 16)
    backlog = job("backlog")
    _queue(backlog, "n1", 10)
    _queue(backlog, "n2", 5)
    jobs = [job(f"j{i}") for i in range(4)]
    with transaction.atomic():
        fires = [Fire(job=j, scheduled_at=None, trigger=Run.Trigger.MANUAL) for j in jobs]
        made = start_runs(fires)
    nodes = sorted(Execution.objects.filter(run__in=made).values_list("node_name", flat=True))
    assert nodes == ["n1", "n1", "n2", "n2"]


def test_trimming_deletes_the_runs_it_emptied(db, settings):
    settings.DKRON = {**settings.DKRON, "HISTORY_LIMIT": 2}
    agent("n1")
    trimmed = job("trimmed")
    made = Run.objects.bulk_create([Run(job=trimmed, finished=True) for _ in range(5)])
    Execution.objects.bulk_create(
        Execution(run=r, job=trimmed, job_name="trimmed", node_name="n1", status="success")
        for r in made
    )
    assert executions.trim_history(job=trimmed) == 3
    assert sorted(Run.objects.filter(job=trimmed).values_list("pk", flat=True)) == [
        r.pk for r in made[-2:]
    ]


def test_catchup_slots_follow_the_latest_waiting_one(db, settings, monkeypatch):
    monkeypatch.setattr(dispatch, "publish_many", lambda *a, **k: None)
    settings.DKRON = {**settings.DKRON, "CATCHUP_RATE": 2.0}
    agent("n1")
    late = job("late", schedule="@every 1h")
    now = timeutil.now()
    fires = [
        Fire(job=late, scheduled_at=now - timedelta(hours=h), trigger=Run.Trigger.CATCHUP)
        for h in (3, 2)
    ]
    assert runs.catchup_slots(fires, now=now) == 2
    with transaction.atomic():
        start_runs(fires)
    assert runs.seconds_until_next_catchup(now=now) == 0.0
    more = [Fire(job=late, scheduled_at=now - timedelta(hours=1), trigger=Run.Trigger.CATCHUP)]
    runs.catchup_slots(more, now=now)
    assert more[0].not_before == now + timedelta(seconds=1.0)
    assert runs.catchup_backlog() == 2
    assert runs.publish_due_catchups(limit=5, now=now + timedelta(seconds=0.1)) == 1
