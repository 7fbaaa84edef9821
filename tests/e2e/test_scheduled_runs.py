"""End to end: real scheduler and agent processes run scheduled shell jobs."""

from __future__ import annotations

import pytest

from jobs.models import Execution, Job
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def test_an_every_second_shell_job_runs_at_least_three_times_with_output(cluster, api):
    cluster.agent("agent-a")
    cluster.scheduler()
    response = api.post(
        "/v1/jobs",
        {
            "name": "tick",
            "schedule": "@every 1s",
            "executor": "shell",
            "executor_config": {"command": "echo tick $DKRON_JOB_NAME", "shell": "true"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content

    def three_successes() -> bool:
        return Execution.objects.filter(job_name="tick", status="success").count() >= 3

    wait_for(three_successes, timeout=30, what="three successful runs")
    outputs = set(Execution.objects.filter(status="success").values_list("output", flat=True))
    assert outputs == {"tick tick\n"}
    job = Job.objects.get(name="tick")
    assert job.success_count >= 3
    keys = list(Execution.objects.values_list("scheduled_at", flat=True))
    assert len(keys) == len(set(keys))
