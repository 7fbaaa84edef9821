"""End to end: job history with a real scheduler and agent. A scheduled job's executions
record the revision they ran; an update is revision 2; restoring revision 1 is revision 3 with
revision 1's content, and the executions after it record revision 3 and run revision 1's
command."""

from __future__ import annotations

import pytest

from jobs.models import Execution
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def body(command: str) -> dict:
    return {
        "name": "tick",
        "schedule": "@every 1s",
        "executor": "shell",
        "executor_config": {"command": command, "shell": "true"},
    }


def ran(revision: int, output: str):
    """The first finished execution (newest runs first) that ran `revision` of the job."""

    def check():
        done = (
            Execution.objects.filter(job_name="tick", run__revision=revision, status="success")
            .order_by("id")
            .first()
        )
        return done if done is not None and done.output == output else None

    return check


def test_a_rollback_restores_the_job_and_the_next_execution_records_the_new_revision(cluster, api):
    cluster.agent("agent-a")
    cluster.scheduler()
    assert api.post("/v1/jobs", body("echo one"), format="json").status_code == 201

    first = wait_for(ran(1, "one\n"), timeout=30, what="an execution of revision 1")
    assert api.get(f"/v1/jobs/tick/executions/{first.pk}").json()["revision"] == 1

    assert api.post("/v1/jobs", body("echo two"), format="json").status_code == 201
    wait_for(ran(2, "two\n"), timeout=30, what="an execution of revision 2")

    restored = api.post("/v1/jobs/tick/revisions/1/restore")
    assert restored.status_code == 200, restored.content
    revision = restored.json()["revision"]
    assert (revision["number"], revision["change"], revision["restored_from"]) == (3, "restore", 1)
    one = api.get("/v1/jobs/tick/revisions/1").json()["job"]
    assert revision["job"] == one
    assert api.get("/v1/jobs/tick/revisions/3/diff?against=1").json()["changes"] == []

    after = wait_for(ran(3, "one\n"), timeout=30, what="an execution of revision 3")
    listed = api.get("/v1/jobs/tick/executions").json()
    assert next(e for e in listed if e["id"] == str(after.pk))["revision"] == 3
    # Every execution ran the command of the revision it records.
    for execution in Execution.objects.filter(job_name="tick", status="success"):
        expected = {1: "one\n", 2: "two\n", 3: "one\n"}[execution.run.revision]
        assert execution.output == expected, (execution.run.revision, execution.output)
