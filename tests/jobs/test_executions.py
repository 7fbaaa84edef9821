"""Execution lifecycle services: finish, retries, run status, dependents, history, the sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.models import Agent, Execution, Job, Run
from jobs.services.executions import (
    TRIM_EVERY,
    execution_claim,
    execution_finish,
    execution_kill,
    retry_delay,
    run_settle,
    trim_history,
)
from jobs.services.maintenance import sweep
from jobs.services.runs import run_now
from tests.factories import agent, job

FUTURE = datetime.now(UTC) + timedelta(days=3650)


def claim_all(node: str | None = None) -> list[Execution]:
    claimed = []
    for e in Execution.objects.filter(status="queued"):
        got = execution_claim(execution_id=e.pk, node_name=node or e.node_name)
        assert got is not None
        claimed.append(got)
    return claimed


def test_a_claimed_execution_cannot_be_claimed_twice(transactional_db):
    agent("n1")
    run_now(job=job("claim"))
    [execution] = claim_all()
    assert execution_claim(execution_id=execution.pk, node_name="n1") is None


def test_a_failed_attempt_queues_the_next_attempt_in_the_same_group_with_backoff(transactional_db):
    agent("n1")
    run_now(job=job("retry", retries=2, retry_backoff=4))
    [first] = claim_all()
    nxt = execution_finish(execution_id=first.pk, status="failed", output="boom\n")
    assert nxt is not None
    assert (nxt.attempt, nxt.run_id, nxt.status) == (2, first.run_id, "queued")
    assert nxt.not_before is not None
    first.refresh_from_db()
    assert first.final is False
    assert retry_delay(base=4, attempt=1) == 4 and retry_delay(base=4, attempt=3) == 16


def test_the_last_attempt_is_final_and_a_kill_is_never_retried(transactional_db):
    agent("n1")
    run_now(job=job("no-more", retries=1))
    [first] = claim_all()
    second = execution_finish(execution_id=first.pk, status="failed", output="")
    assert second is not None
    [second] = claim_all()
    assert execution_finish(execution_id=second.pk, status="failed", output="") is None
    assert Job.objects.get(name="no-more").status == "failed"

    run_now(job=job("killed", retries=3))
    [running] = claim_all()
    execution_kill(execution=running)
    assert execution_finish(execution_id=running.pk, status="failed", output="") is None
    running.refresh_from_db()
    assert running.status == "killed"


def test_a_retry_of_a_counted_run_may_move_to_a_less_busy_node(transactional_db):
    agent("busy", running=4, pool="x")
    agent("idle", running=0, pool="x")
    run_now(job=job("mover", retries=1, tags={"pool": "x:1"}))
    [first] = claim_all("busy")
    Agent.objects.filter(name="busy").update(running=4)
    nxt = execution_finish(execution_id=first.pk, status="failed", output="")
    assert nxt is not None and nxt.node_name == "idle"


def test_a_retry_of_an_all_nodes_run_stays_on_its_node(transactional_db):
    agent("a1", running=4)
    agent("a2")
    run_now(job=job("stay", retries=1))
    e1 = Execution.objects.get(node_name="a1")
    execution_claim(execution_id=e1.pk, node_name="a1")
    nxt = execution_finish(execution_id=e1.pk, status="failed", output="")
    assert nxt is not None and nxt.node_name == "a1"


@pytest.mark.parametrize(
    ("results", "status"),
    [
        (["success", "success"], "success"),
        (["failed", "failed"], "failed"),
        (["success", "failed"], "partially_failed"),
    ],
)
def test_job_status_comes_from_the_final_results_of_the_run(transactional_db, results, status):
    agent("n1")
    agent("n2")
    run_now(job=job("status"))
    for execution, result in zip(claim_all(), results, strict=True):
        execution_finish(execution_id=execution.pk, status=result, output="")
    assert Job.objects.get(name="status").status == status
    assert Run.objects.get().status == status


def test_a_failed_first_attempt_then_a_successful_retry_is_success_and_fires_children(
    transactional_db,
):
    agent("n1")
    parent = job("parent", retries=1)
    job("child", parent_job="parent")
    run_now(job=parent)
    [first] = claim_all()
    execution_finish(execution_id=first.pk, status="failed", output="")
    [second] = claim_all()
    execution_finish(execution_id=second.pk, status="success", output="")
    assert Job.objects.get(name="parent").status == "success"
    assert Execution.objects.filter(job_name="child").count() == 1
    run_settle(run_id=first.run_id)  # settling again changes nothing
    assert Execution.objects.filter(job_name="child").count() == 1


def test_an_ephemeral_job_is_deleted_after_its_first_success(transactional_db):
    agent("n1")
    run_now(job=job("once-only", ephemeral=True))
    [execution] = claim_all()
    execution_finish(execution_id=execution.pk, status="success", output="")
    assert not Job.objects.filter(name="once-only").exists()


def test_history_keeps_the_newest_executions_up_to_the_limit(transactional_db):
    agent("n1")
    j = job("short-memory", history_limit=3)
    for _ in range(25):
        run_now(job=j)
        [execution] = claim_all()
        execution_finish(execution_id=execution.pk, status="success", output="")
    # Trimming runs on every TRIM_EVERY-th run, so the job is at most that far over its limit.
    assert Execution.objects.filter(job=j).count() < 3 + TRIM_EVERY
    trim_history(job=j)
    newest = list(Execution.objects.filter(job=j).order_by("-id").values_list("id", flat=True))
    assert newest == sorted(newest, reverse=True) and len(newest) == 3
    assert newest[0] == Execution.objects.filter(job_name="short-memory").latest("id").pk
    assert Job.objects.get(pk=j.pk).success_count == 25


def test_the_sweep_closes_runs_whose_agent_stopped_heartbeating(transactional_db):
    agent("n1")
    run_now(job=job("stale", retries=0))
    [execution] = claim_all()
    Execution.objects.filter(pk=execution.pk).update(
        heartbeat_at=datetime.now(UTC) - timedelta(minutes=5)
    )
    report = sweep()
    assert report.closed == 1
    execution.refresh_from_db()
    assert execution.status == "failed" and "stopped responding" in execution.output


def test_the_sweep_moves_a_queued_counted_run_off_a_dead_node(transactional_db):
    agent("live", pool="y")
    Agent.objects.create(
        name="gone", tags={"pool": "y"}, last_heartbeat=datetime(2000, 1, 1, tzinfo=UTC)
    )
    j = job("orphaned", tags={"pool": "y:1"})
    run_now(job=j)
    old = datetime.now(UTC) - timedelta(minutes=10)
    Execution.objects.update(node_name="gone", queued_at=old, published_at=old)
    report = sweep()
    assert report.moved == 1
    assert Execution.objects.get().node_name == "live"
