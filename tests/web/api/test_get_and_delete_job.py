"""GET and DELETE /v1/jobs/{name}."""

from __future__ import annotations

import pytest

from jobs.models import Execution, Job, Run
from tests.web.api.helpers import add_execution, assert_error, create

pytestmark = pytest.mark.django_db


def test_get_returns_the_job(api):
    create(api, "job1", displayname="One")

    response = api.get("/v1/jobs/job1")

    assert response.status_code == 200
    assert response.json()["displayname"] == "One"


def test_get_with_a_trailing_slash_works_too(api):
    create(api, "job1")

    assert api.get("/v1/jobs/job1/").status_code == 200


def test_get_of_an_unknown_job_is_a_404_json_error(api):
    body = assert_error(api.get("/v1/jobs/nope"), 404)

    assert "nope" in body["error"]


def test_delete_returns_the_deleted_job_and_removes_it(api):
    created = create(api, "job1")

    response = api.delete("/v1/jobs/job1")

    assert response.status_code == 200
    assert response.json() == created
    assert not Job.objects.filter(name="job1").exists()
    assert_error(api.get("/v1/jobs/job1"), 404)


def test_delete_of_an_unknown_job_is_a_404(api):
    assert_error(api.delete("/v1/jobs/nope"), 404)


def test_deleting_a_job_removes_its_runs_and_executions(api):
    create(api, "job1")
    create(api, "other")
    add_execution("job1", status="success", output="done")
    add_execution("job1", status="queued")
    add_execution("job1", status="running")
    kept = add_execution("other", status="success")

    api.delete("/v1/jobs/job1")

    assert list(Execution.objects.values_list("pk", flat=True)) == [kept.pk]
    assert Run.objects.filter(job__name="job1").count() == 0
