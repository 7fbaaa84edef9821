"""A run that must not reach its executor (its executor disabled since the job was saved, or
a job stored with problems by a restore) fails at once with the reason, on a real run."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from agent.runner import run_execution
from jobs.models import Execution, Job, Run
from jobs.services.runs import run_now
from jobs.services.transfer import jobs_restore
from tests.factories import agent, job


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


def restored(**fields) -> Job:
    """A job as a restore stores it: Dkron accepts it, dkronweb's own validation does not."""
    data = {"name": "restored", "schedule": "@manually", **fields}
    [result] = jobs_restore(items=[data])
    assert result.ok, result.error
    return Job.objects.get(name="restored")


def test_a_job_restored_with_problems_fails_its_runs_with_them_and_runs_nothing(
    transactional_db, tmp_path: Path
):
    agent("n1")
    marker = tmp_path / "ran"
    stored = restored(
        executor="shell",
        executor_config={"command": f"touch {marker}"},
        processors={"nope": {"forward": "true"}},
        retries=1,
    )
    assert "processors.nope" in stored.problems

    execution = run("restored")

    assert execution.status == "failed"
    assert execution.output.startswith("invalid job: processors.nope: ")
    assert not marker.exists()
    assert Job.objects.get(name="restored").error_count == 1


def test_a_job_without_an_executor_is_restored_and_its_runs_fail_with_no_executor_defined(
    transactional_db,
):
    agent("n1")
    restored(executor="", executor_config=None)

    execution = run("restored")

    assert (execution.status, execution.output) == ("failed", "No executor defined\n")


def test_a_run_after_an_upsert_fixed_the_job_succeeds(transactional_db):
    agent("n1")
    restored(executor="shell", executor_config={"command": "echo hi", "typo": "x"})
    job("restored", executor_config={"command": "echo hi"})

    execution = run("restored")

    assert (execution.status, execution.output) == ("success", "hi\n")
