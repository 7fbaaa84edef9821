"""Untagged jobs under UNTAGGED_TARGET=one run on one node picked among all: like a tag count,
the run may move to another node when that one dies (the soak lost such runs: failed as
"node ... is gone" while another agent was alive)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.models import Agent, Execution, Job
from jobs.services.jobs import job_upsert
from jobs.services.maintenance import sweep
from jobs.services.runs import run_now


def make_agent(name: str, *, alive: bool = True) -> Agent:
    beat = datetime.now(UTC) + (timedelta(days=3650) if alive else -timedelta(hours=1))
    return Agent.objects.create(
        name=name, tags={"role": "dkron"}, last_heartbeat=beat, concurrency=4
    )


@pytest.fixture
def one(settings):  # type: ignore[no-untyped-def]
    settings.DKRON = {**settings.DKRON, "UNTAGGED_TARGET": "one"}


def test_an_untagged_run_under_one_is_placed_on_any_node(db, one):
    make_agent("a1")
    make_agent("a2")
    job = job_upsert(
        data={
            "name": "u",
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": {"command": "true"},
        }
    )[0]
    run_now(job=Job.objects.get(pk=job.pk))
    [execution] = Execution.objects.all()
    assert execution.placement == "any"


def test_a_queued_untagged_run_of_a_dead_node_moves_to_a_live_one(db, one):
    make_agent("a1")
    make_agent("a2")
    job = job_upsert(
        data={
            "name": "u",
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": {"command": "true"},
        }
    )[0]
    run_now(job=Job.objects.get(pk=job.pk))
    [execution] = Execution.objects.all()
    dead = execution.node_name
    live = "a2" if dead == "a1" else "a1"
    Agent.objects.filter(name=dead).update(last_heartbeat=datetime.now(UTC) - timedelta(hours=1))
    Execution.objects.filter(pk=execution.pk).update(
        published_at=datetime.now(UTC) - timedelta(hours=1),
        queued_at=datetime.now(UTC) - timedelta(hours=1),
    )
    report = sweep()
    execution.refresh_from_db()
    assert (report.moved, report.failed) == (1, 0)
    assert execution.status == "queued" and execution.node_name == live


def test_runs_picked_among_agents_spread_by_the_work_queued_on_each(db, one):
    # Prefork agents heartbeat running=0 (the parent cannot see its pool children), so the
    # load comes from the executions queued for or running on each node, within a batch too.
    make_agent("a1")
    make_agent("a2")
    for i in range(6):
        job = job_upsert(
            data={
                "name": f"s{i}",
                "schedule": "@manually",
                "executor": "shell",
                "executor_config": {"command": "true"},
            }
        )[0]
        run_now(job=Job.objects.get(pk=job.pk))
    per_node = sorted(Execution.objects.values_list("node_name", flat=True))
    assert per_node == ["a1", "a1", "a1", "a2", "a2", "a2"]


def test_fires_of_one_batch_alternate_between_idle_agents(db, one):
    from jobs.services.runs import Fire, start_runs

    make_agent("a1")
    make_agent("a2")
    jobs = [
        job_upsert(
            data={
                "name": f"b{i}",
                "schedule": "@manually",
                "executor": "shell",
                "executor_config": {"command": "true"},
            }
        )[0]
        for i in range(4)
    ]
    start_runs([Fire(job=j, scheduled_at=None, trigger="manual") for j in jobs])
    nodes = [e.node_name for e in Execution.objects.order_by("pk")]
    assert nodes == ["a1", "a2", "a1", "a2"]
