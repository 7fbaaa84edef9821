"""POST /v1/jobs/{name}/executions/{id}/kill (beyond Dkron)."""

from __future__ import annotations

import pytest

from jobs.models import Execution, Job, Run
from tests.web.api.helpers import ZERO_TIME, add_execution, assert_error, create

pytestmark = pytest.mark.django_db


def test_killing_a_queued_execution_marks_it_killed_at_once(api):
    create(api, "job1")
    execution = add_execution("job1", status="queued")

    response = api.post(f"/v1/jobs/job1/executions/{execution.pk}/kill")

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "killed"
    assert body["success"] is False
    assert body["finished_at"] != ZERO_TIME
    assert Execution.objects.get(pk=execution.pk).status == "killed"


def test_killing_the_last_queued_execution_settles_its_run(api, django_capture_on_commit_callbacks):
    create(api, "job1")
    execution = add_execution("job1", status="queued")

    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/v1/jobs/job1/executions/{execution.pk}/kill")

    run = Run.objects.get(pk=execution.run_id)
    assert run.finished is True
    assert run.status == "failed"
    assert Job.objects.get(name="job1").status == "failed"


def test_killing_a_running_execution_asks_its_agent_to_stop_it(api):
    create(api, "job1")
    execution = add_execution("job1", status="running")

    response = api.post(f"/v1/jobs/job1/executions/{execution.pk}/kill/")

    assert response.status_code == 202
    execution.refresh_from_db()
    assert execution.kill_requested is True
    assert execution.status == "running"  # the agent reports "killed" once it has stopped


@pytest.mark.parametrize("status", ["success", "failed", "killed", "timeout", "skipped"])
def test_killing_a_finished_execution_is_a_409(api, status):
    create(api, "job1")
    execution = add_execution("job1", status=status)

    body = assert_error(api.post(f"/v1/jobs/job1/executions/{execution.pk}/kill"), 409)

    assert "not running" in body["error"]
    assert Execution.objects.get(pk=execution.pk).status == status


def test_killing_an_unknown_execution_is_a_404(api):
    create(api, "job1")

    assert_error(api.post("/v1/jobs/job1/executions/424242/kill"), 404)


def test_killing_an_execution_through_another_job_is_a_404(api):
    create(api, "job1")
    create(api, "other")
    execution = add_execution("other", status="queued")

    assert_error(api.post(f"/v1/jobs/job1/executions/{execution.pk}/kill"), 404)
    assert Execution.objects.get(pk=execution.pk).status == "queued"
