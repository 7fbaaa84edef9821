"""An ecs job created with Dkron-style JSON runs on a real agent against moto in server mode.

moto runs no containers: the test plays the container's part (its log lines and exit code)
through moto's backend, which lives in this process (see tests/executors/servers_ecs.py). The
agent is a separate process that reaches moto over HTTP like any AWS endpoint, with the dummy
credentials the moto fixture put in os.environ.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from jobs.models import Execution
from tests.executors.servers_ecs import (
    CONTAINER,
    FAMILY,
    LOG_GROUP,
    REGION,
    STREAM_PREFIX,
    Moto,
    moto_server,
)
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    with moto_server() as server:
        yield server


@pytest.fixture
def ecs_cluster(moto: Moto) -> str:
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    moto.ecs.create_cluster(clusterName=name)
    return name


def create(api, moto: Moto, name: str, ecs_cluster: str, **extra: str) -> None:
    body = {
        "name": name,
        "schedule": "@manually",
        "executor": "ecs",
        "executor_config": {
            "taskdefName": FAMILY,
            "region": REGION,
            "cluster": ecs_cluster,
            "fargate": "true",
            "subnet": moto.subnet,
            "securityGroup": moto.security_group,
            "service": CONTAINER,
            "endpointUrl": moto.url,
            "timeout": "2m",
            **extra,
        },
    }
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 201, response.content


def finished(name: str):
    return lambda: (
        Execution.objects.filter(job_name=name).exclude(status__in=["queued", "running"]).first()
    )


def run_env(task) -> list[dict[str, str]]:
    """The DKRON_* variables after the job's env (issue 17), of the task's one execution."""
    execution = Execution.objects.get(job_name=task.started_by)
    values = {
        "DKRON_JOB_NAME": execution.job_name,
        "DKRON_EXECUTION_ID": str(execution.pk),
        "DKRON_ATTEMPT": "1",
        "DKRON_SCHEDULED_AT": "",
        "DKRON_FIRE_KEY": f"{execution.job_name}@run-{execution.run_id}",
    }
    return [{"name": name, "value": value} for name, value in values.items()]


def test_an_ecs_job_runs_a_task_and_records_its_logs_and_exit_code(
    cluster, api, moto: Moto, ecs_cluster: str
):
    cluster.agent("agent-a")
    create(
        api,
        moto,
        "ecs-report",
        ecs_cluster,
        env="REPORT=daily",
        overrides='sh,-c,"echo report for $REPORT"',
        logGroup=LOG_GROUP,
    )
    assert api.post("/v1/jobs/ecs-report/run").status_code == 202

    task = moto.started_task(ecs_cluster, timeout=30)
    assert task.started_by == "ecs-report"
    assert task.overrides == {
        "containerOverrides": [
            {
                "name": CONTAINER,
                "command": ["sh", "-c", "echo report for $REPORT"],
                "environment": [{"name": "REPORT", "value": "daily"}, *run_env(task)],
            }
        ]
    }
    moto.put_logs(f"{STREAM_PREFIX}/{CONTAINER}/{task.id}", "report for daily")
    moto.finish(task, 0)

    execution = wait_for(finished("ecs-report"), timeout=30, what="the ecs job to finish")
    assert execution.status == "success", execution.output
    assert execution.output == (
        f"ecs: started task {task.id} ({moto.taskdef}) on cluster {ecs_cluster}\n"
        "report for daily\n"
        f"ecs: task {task.id} stopped; container {CONTAINER} exited with 0\n"
    )


def test_killing_an_ecs_job_through_the_api_stops_its_task_in_ecs(
    cluster, api, moto: Moto, ecs_cluster: str
):
    cluster.agent("agent-a")
    create(api, moto, "ecs-forever", ecs_cluster)
    api.post("/v1/jobs/ecs-forever/run")
    task = moto.started_task(ecs_cluster, timeout=30)
    running = wait_for(
        lambda: Execution.objects.filter(job_name="ecs-forever", status="running").first(),
        what="the execution to be running",
    )

    response = api.post(f"/v1/jobs/ecs-forever/executions/{running.pk}/kill")
    assert response.status_code == 202
    execution = wait_for(finished("ecs-forever"), timeout=30, what="the kill to land")
    assert execution.status == "killed", execution.output
    assert f"ecs: task {task.id} was stopped: the job was killed" in execution.output
    assert (task.last_status, task.stopped_reason) == ("STOPPED", "dkronweb: the job was killed")
