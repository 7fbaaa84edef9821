"""DELETE /v1/jobs/{name}/executions: clear the history and reset the counters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.models import Execution, Job, Run
from tests.web.api.helpers import add_execution, assert_error, create, now

pytestmark = pytest.mark.django_db


def test_clearing_removes_finished_executions_and_resets_the_counters(api):
    create(api, "job1")
    add_execution("job1", status="success")
    add_execution("job1", status="failed")
    Job.objects.filter(name="job1").update(
        success_count=1, error_count=1, last_success=now(), last_error=now() - timedelta(hours=1)
    )

    response = api.delete("/v1/jobs/job1/executions")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "job1"
    assert (body["success_count"], body["error_count"]) == (0, 0)
    assert body["last_success"] is None
    assert body["last_error"] is None
    assert Execution.objects.filter(job__name="job1").count() == 0
    assert api.get("/v1/jobs/job1/executions")["X-Total-Count"] == "0"


def test_clearing_keeps_executions_that_are_still_queued_or_running(api):
    create(api, "job1")
    add_execution("job1", status="success")
    queued = add_execution("job1", status="queued")
    running = add_execution("job1", status="running")

    api.delete("/v1/jobs/job1/executions")

    assert set(Execution.objects.values_list("pk", flat=True)) == {queued.pk, running.pk}
    assert Run.objects.filter(job__name="job1").count() == 2


def test_clearing_leaves_other_jobs_alone(api):
    create(api, "job1")
    create(api, "other")
    add_execution("other", status="success")
    Job.objects.filter(name="other").update(success_count=1)

    api.delete("/v1/jobs/job1/executions")

    assert Execution.objects.filter(job__name="other").count() == 1
    assert Job.objects.get(name="other").success_count == 1


def test_clearing_the_executions_of_an_unknown_job_is_a_404(api):
    assert_error(api.delete("/v1/jobs/ghost/executions"), 404)
