"""GET /v1/jobs/{name}/executions/{id}: one execution with its full output."""

from __future__ import annotations

import pytest

from tests.web.api.helpers import add_execution, assert_error, create

pytestmark = pytest.mark.django_db


def test_one_execution_is_returned_with_its_full_output(api):
    create(api, "job1")
    output = "line\n" * 20_000
    execution = add_execution("job1", status="success", output=output)

    response = api.get(f"/v1/jobs/job1/executions/{execution.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(execution.pk)
    assert body["output"] == output
    assert body["output_truncated"] is False


def test_a_trailing_slash_is_accepted(api):
    create(api, "job1")
    execution = add_execution("job1", status="success")

    assert api.get(f"/v1/jobs/job1/executions/{execution.pk}/").status_code == 200


def test_an_unknown_execution_is_a_404(api):
    create(api, "job1")

    assert_error(api.get("/v1/jobs/job1/executions/999999"), 404)


def test_a_non_numeric_execution_id_is_a_404(api):
    create(api, "job1")

    assert_error(api.get("/v1/jobs/job1/executions/abc"), 404)


def test_an_execution_of_another_job_is_a_404(api):
    create(api, "job1")
    create(api, "other")
    execution = add_execution("other", status="success")

    assert_error(api.get(f"/v1/jobs/job1/executions/{execution.pk}"), 404)


def test_an_execution_of_an_unknown_job_is_a_404(api):
    assert_error(api.get("/v1/jobs/ghost/executions/1"), 404)
