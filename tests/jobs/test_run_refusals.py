"""A run that must not reach its executor (its executor disabled since the job was saved, or
a job stored with problems by a restore) fails at once with the reason, on a real run."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from jobs.models import Execution, Job, Run
from jobs.runner import run_execution
from jobs.services.runs import run_now
from tests.jobs.test_executions import agent, job


def run(name: str) -> Execution:
    run_now(job=Job.objects.get(name=name), force=True)
    execution = Execution.objects.filter(job_name=name).latest("pk")
    assert run_execution(execution.pk, node_name="n1") is None  # never retried
    execution.refresh_from_db()
    return execution


@pytest.fixture
def disable(monkeypatch):
    def use(*names: str) -> None:
        monkeypatch.setitem(settings.DKRON, "DISABLED_EXECUTORS", set(names))

    return use


def test_a_job_saved_before_its_executor_was_disabled_fails_without_running(
    transactional_db, disable, tmp_path: Path
):
    agent("n1")
    marker = tmp_path / "ran"
    job("legacy", retries=2, executor_config={"command": f"touch {marker}"})
    disable("shell")

    execution = run("legacy")

    assert execution.status == "failed" and not execution.success
    assert "disabled by DKRON_DISABLED_EXECUTORS" in execution.output
    assert "shell" in execution.reason and execution.finished_at is not None
    assert not marker.exists()
    stored = Job.objects.get(name="legacy")
    assert (stored.status, stored.error_count, stored.success_count) == ("failed", 1, 0)
    assert Run.objects.get(job=stored).finished
    assert Execution.objects.filter(job=stored).count() == 1  # no retry of a refusal


def test_other_executors_still_run_while_one_is_disabled(transactional_db, disable, tmp_path):
    agent("n1")
    job("fine", executor_config={"command": "echo ok"})
    disable("http")

    execution = run("fine")

    assert execution.status == "success", execution.output
