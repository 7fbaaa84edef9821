"""Run now: POST /v1/jobs/{name} and /v1/jobs/{name}/run answer 202 once the run is queued."""

from __future__ import annotations

import pytest

from jobs.models import Execution, Job, Run
from tests.web.api.helpers import add_agent, add_execution, assert_error, create

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/v1/jobs/job1", "/v1/jobs/job1/run", "/v1/jobs/job1/run/"])
def test_run_now_answers_202_with_the_job_and_starts_a_run(api, path):
    create(api, "job1")

    response = api.post(path)

    assert response.status_code == 202
    assert response.json()["name"] == "job1"
    run = Run.objects.get(job__name="job1")
    assert run.trigger == Run.Trigger.MANUAL
    assert response["X-Run-Group"] == str(run.pk)
    assert response["Location"] == f"/v1/jobs/job1/executions?group={run.pk}"


def test_a_run_with_no_alive_agent_fails_at_once_saying_why(api):
    create(api, "job1")

    api.post("/v1/jobs/job1/run")

    execution = Execution.objects.get(job__name="job1")
    assert execution.status == "failed"
    assert "no target nodes found" in execution.output
    assert api.get("/v1/jobs/job1").json()["status"] == "failed"


def test_a_run_queues_one_execution_per_alive_target_node(api):
    add_agent("agent-a", tags={"role": "web"})
    add_agent("agent-b", tags={"role": "web"})
    add_agent("agent-c", tags={"role": "db"})
    add_agent("agent-dead", tags={"role": "web"}, heartbeat_age=3600)
    create(api, "job1", tags={"role": "web"})

    response = api.post("/v1/jobs/job1/run")

    assert response.json()["status"] == "running"
    executions = Execution.objects.filter(job__name="job1").order_by("node_name")
    assert [(e.node_name, e.status) for e in executions] == [
        ("agent-a", "queued"),
        ("agent-b", "queued"),
    ]


def test_a_disabled_job_can_still_be_run_by_hand(api):
    create(api, "job1", disabled=True)

    assert api.post("/v1/jobs/job1/run").status_code == 202
    assert Run.objects.filter(job__name="job1").count() == 1


def test_a_manually_job_can_be_run_by_hand(api):
    create(api, "job1", schedule="@manually")

    assert api.post("/v1/jobs/job1").status_code == 202


def test_running_an_unknown_job_is_a_404(api):
    assert_error(api.post("/v1/jobs/ghost/run"), 404)
    assert Run.objects.count() == 0


def test_a_forbid_job_with_an_active_run_is_a_409(api):
    create(api, "job1", concurrency="forbid")
    add_execution("job1", status="running")

    body = assert_error(api.post("/v1/jobs/job1/run"), 409)

    assert "force" in body["error"]
    assert Run.objects.filter(job__name="job1").count() == 1


def test_a_forbid_job_with_a_queued_run_is_a_409_too(api):
    create(api, "job1", concurrency="forbid")
    add_execution("job1", status="queued")

    assert_error(api.post("/v1/jobs/job1"), 409)


def test_force_runs_a_forbid_job_despite_its_active_run(api):
    create(api, "job1", concurrency="forbid")
    add_execution("job1", status="running")

    assert api.post("/v1/jobs/job1/run?force=true").status_code == 202
    assert Run.objects.filter(job__name="job1").count() == 2


def test_a_forbid_job_whose_runs_are_finished_runs_normally(api):
    create(api, "job1", concurrency="forbid")
    add_execution("job1", status="success")

    assert api.post("/v1/jobs/job1/run").status_code == 202


def test_an_allow_job_runs_again_while_a_run_is_active(api):
    create(api, "job1")
    add_execution("job1", status="running")

    assert api.post("/v1/jobs/job1/run").status_code == 202
    assert Run.objects.filter(job__name="job1").count() == 2


def test_get_on_the_run_endpoint_is_a_405_json_error(api):
    create(api, "job1")

    assert_error(api.get("/v1/jobs/job1/run"), 405)


def test_running_does_not_change_the_job_definition(api):
    before = create(api, "job1")

    api.post("/v1/jobs/job1/run")

    after = api.get("/v1/jobs/job1").json()
    # Only server-maintained fields move (no agent: the run fails and is counted).
    server = {"status", "error_count", "last_error"}
    assert {k: v for k, v in after.items() if k not in server} == {
        k: v for k, v in before.items() if k not in server
    }
    assert Job.objects.count() == 1
