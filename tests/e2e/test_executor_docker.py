"""End to end: a docker job created through /v1 runs a container on a real agent (Podman API)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.models import Execution
from tests.executors.servers_docker import IMAGE, Podman, podman
from tests.harness import wait_for

__all__ = ["podman"]  # the session fixture, imported so pytest finds it here

pytestmark = pytest.mark.e2e


def finished(job: str):
    def check():
        done = Execution.objects.filter(job_name=job).exclude(status__in=("queued", "running"))
        return list(done) or None

    return check


def test_a_docker_job_runs_its_container_on_an_agent_and_records_the_logs(
    cluster, api, podman: Podman, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DOCKER_HOST", podman.url)  # the agent subprocess inherits it
    cluster.agent("agent-a")
    body = {
        "name": "containerised",
        "schedule": "@manually",
        "executor": "docker",
        "executor_config": {
            "image": IMAGE,
            "command": "sh -c 'echo \"$GREETING from $DKRON_JOB_NAME\"; echo done > /out/marker'",
            "env": "GREETING=hello",
            "volumes": f"{tmp_path}:/out",
            "pull": "never",
            "timeout": "30s",
            "remove": "true",
        },
    }
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["executor_config"]["image"] == IMAGE

    assert api.post("/v1/jobs/containerised/run").status_code == 202
    [execution] = wait_for(finished("containerised"), timeout=60, what="the container run")
    assert execution.status == "success", execution.output
    assert execution.output == "hello from containerised\n"
    assert (tmp_path / "marker").read_text() == "done\n"
    assert podman.containers(**{"dkronweb.job": "containerised"}) == []  # removed afterwards

    body["name"] = "exits-three"
    body["executor_config"] = {"image": IMAGE, "command": "sh -c 'echo oops; exit 3'"}
    assert api.post("/v1/jobs", body, format="json").status_code == 201
    api.post("/v1/jobs/exits-three/run")
    [failed] = wait_for(finished("exits-three"), timeout=60, what="the failing container")
    assert failed.status == "failed"
    assert "exit status 3" in failed.output and "oops" in failed.output


def test_a_docker_job_with_a_bad_config_is_rejected_naming_the_key(api):
    body = {
        "name": "bad-docker",
        "schedule": "@manually",
        "executor": "docker",
        "executor_config": {"image": "busybox", "pull": "sometimes"},
    }
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 400
    assert "pull" in response.content.decode()
