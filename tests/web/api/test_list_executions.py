"""GET /v1/jobs/{name}/executions: Dkron's execution shape, paging and output limits."""

from __future__ import annotations

import pytest

from jobs.models import Execution
from tests.web.api.helpers import ZERO_TIME, add_execution, assert_error, create, parse_time

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(api):
    return create(api, "job1")


def test_an_execution_has_dkron_shape_with_a_string_id_and_an_integer_group(api, job):
    execution = add_execution("job1", status="success", output="hello\n", node="agent-a")

    response = api.get("/v1/jobs/job1/executions")

    assert response.status_code == 200
    [item] = response.json()
    assert item["id"] == str(execution.pk)
    assert item["group"] == execution.run_id
    assert isinstance(item["group"], int)
    assert item["job_name"] == "job1"
    assert item["node_name"] == "agent-a"
    assert item["success"] is True
    assert item["status"] == "success"
    assert item["attempt"] == 1
    assert item["output"] == "hello\n"
    assert item["output_truncated"] is False
    assert parse_time(item["started_at"]) <= parse_time(item["finished_at"])


def test_finished_at_is_zero_time_while_queued_or_running(api, job):
    add_execution("job1", status="queued")
    add_execution("job1", status="running")

    running, queued = api.get("/v1/jobs/job1/executions").json()

    assert queued["status"] == "queued"
    assert queued["started_at"] == ZERO_TIME
    assert queued["finished_at"] == ZERO_TIME
    assert running["status"] == "running"
    assert running["started_at"] != ZERO_TIME
    assert running["finished_at"] == ZERO_TIME


def test_an_empty_output_is_an_empty_string_not_a_missing_key(api, job):
    # Dkron omits it (`omitempty`); a client reading `output` crashed on the missing key.
    add_execution("job1", status="success", output="")

    [item] = api.get("/v1/jobs/job1/executions").json()

    assert item["output"] == ""


def test_the_list_is_newest_first_with_a_total_count(api, job):
    ids = [add_execution("job1", status="success").pk for _ in range(3)]

    response = api.get("/v1/jobs/job1/executions")

    assert [int(e["id"]) for e in response.json()] == ids[::-1]
    assert response["X-Total-Count"] == "3"


def test_order_asc_lists_oldest_first(api, job):
    ids = [add_execution("job1", status="success").pk for _ in range(3)]

    response = api.get("/v1/jobs/job1/executions?_sort=id&_order=ASC")

    assert [int(e["id"]) for e in response.json()] == ids


def test_start_and_end_page_the_executions_and_the_count_is_the_total(api, job):
    ids = [add_execution("job1", status="success").pk for _ in range(5)]

    response = api.get("/v1/jobs/job1/executions?_start=1&_end=3")

    assert [int(e["id"]) for e in response.json()] == [ids[3], ids[2]]
    assert response["X-Total-Count"] == "5"


def test_group_filters_the_executions_of_one_run(api, job):
    first = add_execution("job1", status="failed", attempt=1)
    retry = add_execution("job1", status="success", attempt=2, run=first.run)
    add_execution("job1", status="success")

    response = api.get(f"/v1/jobs/job1/executions?group={first.run_id}")

    assert sorted(int(e["id"]) for e in response.json()) == [first.pk, retry.pk]
    assert response["X-Total-Count"] == "2"


def test_only_the_job_own_executions_are_listed(api, job):
    create(api, "other")
    add_execution("other", status="success")

    assert api.get("/v1/jobs/job1/executions").json() == []


def test_output_size_limit_keeps_the_last_bytes_and_marks_the_output_truncated(api, job):
    add_execution("job1", status="success", output="0123456789abcdef")

    [item] = api.get("/v1/jobs/job1/executions?output_size_limit=6").json()

    assert item["output"] == "abcdef"
    assert item["output_truncated"] is True


def test_output_shorter_than_the_limit_is_left_whole(api, job):
    add_execution("job1", status="success", output="short")

    [item] = api.get("/v1/jobs/job1/executions?output_size_limit=100").json()

    assert item["output"] == "short"
    assert item["output_truncated"] is False


def test_output_size_limit_counts_bytes_and_never_splits_a_character(api, job):
    add_execution("job1", status="success", output="ab€€")  # € is three bytes in UTF-8

    [item] = api.get("/v1/jobs/job1/executions?output_size_limit=4").json()

    assert item["output"] == "€"
    assert item["output_truncated"] is True


def test_an_output_truncated_by_the_agent_stays_marked_truncated(api, job):
    execution = add_execution("job1", status="success", output="tail")
    Execution.objects.filter(pk=execution.pk).update(output_truncated=True)

    [item] = api.get("/v1/jobs/job1/executions").json()

    assert item["output_truncated"] is True


def test_the_executions_of_an_unknown_job_are_a_404(api):
    assert_error(api.get("/v1/jobs/ghost/executions"), 404)


@pytest.mark.parametrize(
    "query",
    ["output_size_limit=abc", "output_size_limit=-1", "group=abc", "_sort=bogus", "_end=x"],
)
def test_bad_list_parameters_are_a_400(api, job, query):
    assert_error(api.get(f"/v1/jobs/job1/executions?{query}"), 400)
