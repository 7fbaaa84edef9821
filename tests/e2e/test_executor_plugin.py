"""A third-party executor installed as a package (examples/) runs a job on a real agent."""

from __future__ import annotations

import pytest

from executors.registry import available
from jobs.models import Execution
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def test_an_executor_from_an_installed_package_runs_a_job_created_through_the_api(cluster, api):
    assert "echo" in available(), "the example plugin (requirements-dev.txt) is not installed"
    cluster.agent("agent-a")
    body = {
        "name": "plugin-job",
        "schedule": "@manually",
        "executor": "echo",
        "executor_config": {"message": "hello", "repeat": "2", "apiToken": "s3cret"},
    }
    created = api.post("/v1/jobs", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["executor_config"]["apiToken"] == "********"
    api.post("/v1/jobs/plugin-job/run")
    execution = wait_for(
        lambda: Execution.objects.filter(job_name="plugin-job", status="success").first(),
        what="the plugin job to succeed",
    )
    assert execution.output == "hello (job plugin-job)\nhello (job plugin-job)\n"


def test_a_plugin_config_error_is_refused_at_save_time_with_the_key_named(api):
    body = {
        "name": "bad-plugin-job",
        "schedule": "@manually",
        "executor": "echo",
        "executor_config": {"message": "x", "repeat": "many"},
    }
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 400
    assert "repeat" in response.json()["details"]["executor_config"]
