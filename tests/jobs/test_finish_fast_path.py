"""The agent's usual path: a claimed execution finishes in one statement on PostgreSQL.

The same outcomes as the ORM path (tests/jobs/test_executions.py), reached through
`execution_finish(..., claimed=...)`, which the runner always passes. On SQLite the same calls
take the ORM path, so these tests hold for both.
"""

from __future__ import annotations

import pytest

from jobs.models import Execution, Job, Run
from jobs.services import execution_sql
from jobs.services.executions import execution_claim, execution_finish, execution_kill
from jobs.services.runs import run_now
from tests.factories import agent, job


def claim_all() -> list[Execution]:
    claimed = []
    for e in Execution.objects.filter(status="queued").order_by("id"):
        got = execution_claim(execution_id=e.pk, node_name=e.node_name)
        assert got is not None
        claimed.append(got)
    return claimed


def finish(execution: Execution, status: str, output: str = "") -> Execution | None:
    return execution_finish(
        execution_id=execution.pk, status=status, output=output, claimed=execution
    )


def test_the_claim_returns_the_row_with_its_run_snapshot(transactional_db):
    agent("n1")
    run_now(job=job("snap", retries=2))
    [execution] = claim_all()
    assert execution.status == "running" and execution.node_name == "n1"
    assert execution.started_at is not None
    assert execution.run.snapshot["retries"] == 2
    assert execution.run.pk == execution.run_id


@pytest.mark.parametrize(
    ("results", "status"),
    [
        (["success", "success"], "success"),
        (["failed", "failed"], "failed"),
        (["success", "failed"], "partially_failed"),
        (["failed", "success"], "partially_failed"),
    ],
)
def test_the_last_execution_of_a_run_settles_it(transactional_db, results, status):
    agent("n1")
    agent("n2")
    run_now(job=job("multi"))
    first, second = claim_all()
    assert finish(first, results[0], "one\n") is None
    assert not Run.objects.get().finished
    assert Job.objects.get(name="multi").status == "running"
    assert finish(second, results[1]) is None
    run = Run.objects.get()
    assert run.finished and run.status == status
    j = Job.objects.get(name="multi")
    assert j.status == status
    assert j.success_count == results.count("success")
    assert j.error_count == results.count("failed")
    assert Execution.objects.get(pk=first.pk).output == "one\n"
    assert all(e.final and e.finished_at for e in Execution.objects.all())


def test_a_job_with_another_active_run_stays_running(transactional_db):
    agent("n1")
    j = job("overlap")
    run_now(job=j)
    run_now(job=j, force=True)
    first, _second = claim_all()
    finish(first, "success")
    assert Run.objects.get(pk=first.run_id).status == "success"
    assert Job.objects.get(name="overlap").status == "running"


def test_a_kill_requested_while_running_wins_over_the_result(transactional_db):
    agent("n1")
    run_now(job=job("killme"))
    [execution] = claim_all()
    execution_kill(execution=Execution.objects.get(pk=execution.pk))
    finish(execution, "failed")
    closed = Execution.objects.get(pk=execution.pk)
    assert closed.status == "killed"
    assert Run.objects.get().status == "failed"


def test_a_failure_with_retries_left_queues_the_next_attempt(transactional_db):
    agent("n1")
    run_now(job=job("again", retries=1, retry_backoff=0))
    [execution] = claim_all()
    retry = finish(execution, "failed")
    assert retry is not None and retry.attempt == 2 and retry.status == "queued"
    assert not Run.objects.get().finished


def test_a_success_fires_the_dependents_once(transactional_db):
    agent("n1")
    job("parent-fast")
    job("child-fast", parent_job="parent-fast")
    run_now(job=Job.objects.get(name="parent-fast"))
    [execution] = claim_all()
    finish(execution, "success")
    assert Execution.objects.filter(job_name="child-fast").count() == 1


def test_an_ephemeral_job_is_deleted_after_its_first_success(transactional_db):
    agent("n1")
    run_now(job=job("fast-once", ephemeral=True))
    [execution] = claim_all()
    finish(execution, "success")
    assert not Job.objects.filter(name="fast-once").exists()


def test_a_second_result_for_a_closed_execution_changes_nothing(transactional_db):
    agent("n1")
    run_now(job=job("twice"))
    [execution] = claim_all()
    finish(execution, "success")
    finish(execution, "failed")
    assert Execution.objects.get(pk=execution.pk).status == "success"
    assert Job.objects.get(name="twice").error_count == 0


def test_postgresql_takes_the_one_statement_path(transactional_db):
    from django.db import connection

    assert execution_sql.available() == (connection.vendor == "postgresql")
