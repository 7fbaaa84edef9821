"""The run task reports how an execution ended from what the agent recorded, not from a read.

A Celery task ends SUCCESS or FAILURE (Flower, `celery events`) as the execution ended; the
status comes back from the finish itself, so the usual execution costs its claim and its finish
and nothing more. Only when the agent recorded nothing (someone closed the row first) is the
row read.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agent import runner, tasks
from jobs import node
from jobs.models import Execution, Job
from jobs.services import executions
from jobs.services.executions import execution_claim, execution_close, execution_kill
from jobs.services.runs import run_now
from tests.factories import agent, job


@pytest.fixture
def here(monkeypatch):
    monkeypatch.setattr(node, "_identity", node.Identity(name="n1"))
    agent("n1")


def queued(name: str, **fields) -> Execution:
    run_now(job=job(name, **fields), force=True)
    return Execution.objects.filter(job_name=name).latest("pk")


def test_a_success_is_reported_without_reading_the_row_back(transactional_db, here, monkeypatch):
    # Every TRIM_EVERY-th run id also trims the job's history (two statements more): not the
    # usual execution this counts, and which id the run gets depends on the tests before it.
    monkeypatch.setattr(executions, "TRIM_EVERY", 10**9)
    execution = queued("ok", executor="echo", executor_config={"message": "hi"})
    with CaptureQueriesContext(connection) as queries:
        result = tasks.run_execution.apply(kwargs={"execution_id": execution.pk})
    assert result.successful(), result.traceback
    execution.refresh_from_db()
    assert execution.status == "success" and "hi (job ok)" in execution.output
    if connection.vendor == "postgresql":
        # the one-statement claim and the one-statement finish (execution_sql)
        assert len(queries) == 2, [str(q["sql"])[:200] for q in queries]


def test_a_failure_without_retries_fails_the_task_with_the_recorded_reason(transactional_db, here):
    execution = queued("bad", executor="echo", executor_config={"message": "x", "fail": "true"})
    result = tasks.run_execution.apply(kwargs={"execution_id": execution.pk})
    assert result.failed()
    exc = result.result
    assert isinstance(exc, tasks.ExecutionFailed)
    assert (exc.execution_id, exc.job, exc.status) == (execution.pk, "bad", "failed")
    execution.refresh_from_db()
    assert exc.reason == execution.reason == "echo: failing as configured"


def test_a_delivery_that_ran_nothing_stays_a_success(transactional_db, here):
    execution = queued("gone", executor="echo", executor_config={"message": "x"})
    Job.objects.filter(name="gone").delete()
    outcome = runner.run(execution.pk, node_name="n1")
    assert outcome == runner.Outcome()
    assert tasks.run_execution.apply(kwargs={"execution_id": execution.pk}).successful()


def test_a_kill_requested_meanwhile_is_reported_as_killed(transactional_db, here):
    execution = queued("killed", executor="echo", executor_config={"message": "x"})
    claimed = execution_claim(execution_id=execution.pk, node_name="n1")
    assert claimed is not None
    execution_kill(execution=Execution.objects.get(pk=execution.pk))
    closed = execution_close(execution_id=execution.pk, status="failed", output="", claimed=claimed)
    assert closed.status == "killed" and closed.retry is None
    assert Execution.objects.get(pk=execution.pk).status == "killed"


def test_a_row_closed_by_someone_else_records_nothing(transactional_db, here):
    execution = queued("swept", executor="echo", executor_config={"message": "x"})
    claimed = execution_claim(execution_id=execution.pk, node_name="n1")
    assert claimed is not None
    Execution.objects.filter(pk=execution.pk).update(status="failed", final=True)
    closed = execution_close(
        execution_id=execution.pk, status="success", output="", claimed=claimed
    )
    assert closed.status == "" and closed.retry is None


def test_a_failure_with_retries_left_records_the_next_attempt(transactional_db, here):
    execution = queued(
        "again", executor="echo", executor_config={"message": "x", "fail": "true"}, retries=1
    )
    outcome = runner.run(execution.pk, node_name="n1")
    assert outcome.status == "failed" and outcome.retry is not None
    assert outcome.retry.attempt == 2 and outcome.retry.status == "queued"
