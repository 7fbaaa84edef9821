"""Dkron fidelity on the wire (issue 11): bodies, errors, executions and types as Dkron has them."""

from __future__ import annotations

import pytest

from jobs.models import Execution
from tests.api.helpers import add_execution, create

pytestmark = pytest.mark.django_db

# Dkron's Execution struct (dkron/execution.go) plus the list's `output_truncated` (apiExecution).
DKRON_EXECUTION_FIELDS = {
    "id",
    "job_name",
    "started_at",
    "finished_at",
    "success",
    "output",
    "node_name",
    "group",
    "attempt",
    "output_truncated",
}


# --- every execution carries Dkron's whole field set -------------------------------------------


@pytest.mark.parametrize("status", ["queued", "running", "success", "failed", "killed"])
def test_an_execution_in_any_state_has_every_dkron_field_in_the_list_and_the_detail(api, status):
    create(api, "job1")
    execution = add_execution("job1", status=status, output="")

    [listed] = api.get("/v1/jobs/job1/executions").json()
    detail = api.get(f"/v1/jobs/job1/executions/{execution.pk}").json()

    assert listed.keys() >= DKRON_EXECUTION_FIELDS
    assert detail.keys() >= DKRON_EXECUTION_FIELDS
    assert listed["output"] == detail["output"] == ""


def test_an_output_size_limit_of_zero_still_answers_an_output_key(api):
    create(api, "job1")
    add_execution("job1", status="success", output="hello")

    [item] = api.get("/v1/jobs/job1/executions?output_size_limit=0").json()

    assert item["output"] == ""
    assert item["output_truncated"] is True


def test_busy_and_kill_answer_every_dkron_field_even_with_no_output_yet(api):
    create(api, "job1")
    running = add_execution("job1", status="running", output="")
    queued = add_execution("job1", status="queued", output="")

    [busy] = api.get("/v1/busy").json()
    killed = api.post(f"/v1/jobs/job1/executions/{queued.pk}/kill")

    assert busy["id"] == str(running.pk)
    assert busy.keys() >= DKRON_EXECUTION_FIELDS
    assert killed.status_code == 202
    assert killed.json().keys() >= DKRON_EXECUTION_FIELDS
    assert Execution.objects.get(pk=queued.pk).status == "killed"
