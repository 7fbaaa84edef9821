"""End to end: a shell job with files and log processors on a real agent (Celery worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.models import Execution
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def finished(job: str):
    def check():
        done = Execution.objects.filter(job_name=job).exclude(status__in=["queued", "running"])
        return list(done) or None

    return check


@pytest.fixture
def log_dir(settings, tmp_path: Path) -> Path:
    path = tmp_path / "proc-logs"
    settings.DKRON = {**settings.DKRON, "PROCESSOR_LOG_DIRS": [str(path)]}
    return path


def create(api, name: str, processors: dict) -> None:
    body = {
        "name": name,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": "echo hello from $DKRON_JOB_NAME", "shell": "true"},
        "processors": processors,
    }
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 201, response.content


def test_the_file_holds_the_output_and_the_record_follows_forward(cluster, api, log_dir):
    agent = cluster.agent("agent-p", DKRON_PROCESSOR_LOG_DIRS=str(log_dir))
    create(api, "kept", {"files": {"forward": "true"}, "log": {"forward": "true"}})
    create(api, "pointed", {"files": {"log_dir": str(log_dir / "sub")}, "log": {"forward": "true"}})

    assert api.post("/v1/jobs/kept/run").status_code == 202
    assert api.post("/v1/jobs/pointed/run").status_code == 202
    [kept] = wait_for(finished("kept"), what="the run of kept")
    [pointed] = wait_for(finished("pointed"), what="the run of pointed")

    assert kept.status == pointed.status == "success"
    kept_file = log_dir / "kept" / f"{kept.pk}.log"
    pointed_file = log_dir / "sub" / "pointed" / f"{pointed.pk}.log"
    assert kept_file.read_text() == "hello from kept\n"
    assert pointed_file.read_text() == "hello from pointed\n"
    # forward true everywhere keeps the output; files with forward false stores a pointer.
    assert kept.output == "hello from kept\n"
    assert pointed.output.startswith("output sent to ")
    assert f"files: {pointed_file}" in pointed.output
    assert "hello from pointed" not in pointed.output
    api_output = api.get("/v1/jobs/pointed/executions").json()[0]["output"]
    assert api_output == pointed.output
    # The log processor wrote the output between markers to the agent's log.
    log = agent.log()
    assert f"BEGIN OUTPUT job=kept execution={kept.pk} status=success" in log
    assert f"END OUTPUT job=pointed execution={pointed.pk}" in log
