"""Dkron fidelity on the wire (issue 11): bodies, errors, executions and types as Dkron has them."""

from __future__ import annotations

import json

import pytest
from django.http import HttpRequest
from rest_framework.test import APIClient

from jobs.models import Execution, Job
from tests.web.api.helpers import add_execution, create, job_body

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


# --- a JSON body whatever the Content-Type says (Dkron's BindJSON) ------------------------------


def post_body(client: APIClient, content_type: str, **extra: str):
    """POST job1 as JSON text under `content_type` ("" sends no Content-Type at all)."""
    return client.generic(
        "POST", "/v1/jobs", json.dumps(job_body("job1")), content_type=content_type, **extra
    )


@pytest.mark.parametrize(
    "content_type", ["text/plain", "", "encoding/json", "application/x-www-form-urlencoded"]
)
def test_a_json_body_is_accepted_whatever_the_content_type_says(api, content_type):
    response = post_body(api, content_type)

    assert response.status_code == 201, response.content
    assert Job.objects.get(name="job1").executor_config == {"command": "echo hello"}


@pytest.mark.parametrize("content_type", ["text/plain", "", "application/json"])
def test_a_session_write_without_the_csrf_token_is_refused_whatever_the_content_type(
    admin_user, content_type
):
    browser = APIClient(enforce_csrf_checks=True)
    browser.login(
        request=HttpRequest(), username="root", password="rootpass"
    )  # axes needs a request

    response = post_body(browser, content_type)

    assert response.status_code == 403
    assert "CSRF" in response.content.decode()
    assert not Job.objects.exists()


def test_a_cross_site_text_plain_post_is_refused_when_authentication_is_off(settings, anon):
    # A form on another site can post text/plain without a CORS preflight; with no credentials
    # to check, only the browser's Origin header tells this request from a Dkron client's.
    settings.AUTH_ENABLED = False

    response = post_body(anon, "text/plain", HTTP_ORIGIN="https://evil.example")

    assert response.status_code == 403
    assert "cross-site" in response.content.decode()
    assert not Job.objects.exists()


def test_a_same_origin_text_plain_post_is_accepted_when_authentication_is_off(settings, anon):
    settings.AUTH_ENABLED = False

    response = post_body(anon, "text/plain", HTTP_ORIGIN="http://testserver")

    assert response.status_code == 201, response.content


# --- types as Go's encoding/json binds them into Dkron's Job ------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "json_kind", "go_type"),
    [
        ("disabled", "yes", "string", "bool"),
        ("name", 123, "number 123", "string"),
        ("ephemeral", 1, "number 1", "bool"),
        ("retries", "3", "string", "uint"),
        ("retries", 1.5, "number 1.5", "uint"),
        ("retries", -1, "number -1", "uint"),
        ("tags", {"role": 1}, "number 1", "string"),
        ("metadata", {"ok": "y", "n": False}, "bool", "string"),
        ("tags", ["role=web"], "array", "map[string]string"),
        ("schedule", 5, "number 5", "string"),
        ("concurrency", True, "bool", "string"),
        ("parent_job", ["p"], "array", "string"),
        ("executor_config", "command=echo", "string", "plugin.ExecutorPluginConfig"),
        ("processors", {"log": "yes"}, "string", "plugin.Config"),
        ("starts_at", 12, "number 12", "ntime.NullableTime"),
        ("id", 7, "number 7", "string"),
        ("success_count", "5", "string", "int"),
        ("dependent_jobs", "child", "string", "[]string"),
        ("next", 0, "number 0", "time.Time"),
        ("history_limit", "5", "string", "int"),
        ("misfire_policy", 1, "number 1", "string"),
    ],
)
def test_a_value_go_cannot_bind_is_a_400_unable_to_parse_payload(
    api, field, value, json_kind, go_type
):
    response = api.post("/v1/jobs", {**job_body("job1"), field: value}, format="json")

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == (
        f"Unable to parse payload: json: cannot unmarshal {json_kind} "
        f"into Go struct field Job.{field} of type {go_type}."
    )
    assert field in body["details"]
    assert not Job.objects.exists()


def test_null_leaves_a_field_at_its_zero_value_as_in_go(api):
    body = job_body(
        "job1", displayname=None, disabled=None, retries=None, concurrency=None, tags=None,
        metadata={"team": None}, starts_at=None, id=None, next=None, success_count=None,
    )  # fmt: skip

    response = api.post("/v1/jobs", body, format="json")

    assert response.status_code == 201, response.content
    job = response.json()
    assert (job["displayname"], job["disabled"], job["retries"]) == ("", False, 0)
    assert job["concurrency"] == "allow"
    assert job["metadata"] == {"team": ""}


def test_unknown_fields_and_well_typed_read_only_fields_are_accepted_and_ignored(api):
    body = job_body(
        "job1", id="other", success_count=9, status="success", dependent_jobs=["x"],
        next="2030-01-01T00:00:00Z", last_error=None, Executor_Timeout=5, extra={"a": [1]},
    )  # fmt: skip

    response = api.post("/v1/jobs", body, format="json")

    assert response.status_code == 201, response.content
    job = response.json()
    assert (job["id"], job["success_count"], job["status"]) == ("job1", 0, "")
    assert job["dependent_jobs"] is None


# --- errors as Dkron writes them: its status, its text, plain unless JSON is asked for ---------


def dkron_error(response, status: int) -> str:
    """The plain-text body Dkron writes for an error, checked to be plain text."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    return response.content.decode()


def test_an_unknown_parent_is_a_404_with_dkrons_text_before_any_other_check(dkron):
    # No executor, which dkronweb requires: Dkron looks the parent up first, and so do we.
    body = {"name": "child", "parent_job": "missing"}

    response = dkron.post("/v1/jobs", body, format="json")

    assert dkron_error(response, 404) == "specified parent job not found"
    assert not Job.objects.exists()


def test_a_job_that_is_its_own_parent_is_a_400_with_dkrons_text_before_the_schedule(dkron):
    body = job_body("job1", parent_job="job1", schedule="not a schedule")

    response = dkron.post("/v1/jobs", body, format="json")

    text = dkron_error(response, 400)
    assert text == "Job validation failed: the job can not have itself as parent."


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"name": "Job1"}, "Job validation failed: name contains illegal character 'J'."),
        ({"name": ""}, "Job validation failed: name cannot be empty."),
        ({"name": None}, "Job validation failed: name cannot be empty."),
        ({"schedule": "bogus"}, "Job validation failed: can't parse job schedule: "),
        ({"disabled": "yes"}, "Unable to parse payload: json: cannot unmarshal string "),
    ],
)
def test_a_refused_job_gets_dkrons_400_text_as_plain_text(dkron, fields, text):
    response = dkron.post("/v1/jobs", {**job_body("job1"), **fields}, format="json")

    body = dkron_error(response, 400)
    assert body.startswith(text) and body.endswith(".")
    assert not Job.objects.exists()


def test_an_unparsable_body_is_a_400_unable_to_parse_payload(dkron):
    response = dkron.generic("POST", "/v1/jobs", '{"name": ', content_type="application/json")

    assert dkron_error(response, 400).startswith("Unable to parse payload: JSON parse error")


def test_while_paused_a_submission_is_a_503_with_dkrons_text_before_its_body_is_read(dkron):
    assert dkron.post("/v1/pause").status_code == 200

    response = dkron.generic("POST", "/v1/jobs", "not json", content_type="text/plain")

    assert dkron_error(response, 503) == "New job submissions are currently paused"


def test_deleting_a_job_with_dependents_is_refused_with_dkrons_text(dkron, api):
    create(api, "parent")
    create(api, "child", parent_job="parent", schedule="")

    text = dkron_error(dkron.delete("/v1/jobs/parent"), 409)

    assert text.startswith("could not delete job with dependent jobs, delete children first")
    assert Job.objects.count() == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/jobs/nope"),
        ("post", "/v1/jobs/nope/run"),
        ("post", "/v1/jobs/nope/toggle"),
        ("get", "/v1/jobs/nope"),
        ("delete", "/v1/jobs/nope"),
        ("get", "/v1/jobs/nope/executions"),
    ],
)
def test_an_unknown_job_is_a_404_in_plain_text(dkron, method, path):
    assert dkron_error(getattr(dkron, method)(path), 404) == "job 'nope' not found"


def test_curls_accept_any_gets_the_plain_text_too(dkron):
    response = dkron.post(
        "/v1/jobs", {"name": "c", "parent_job": "x"}, format="json", HTTP_ACCEPT="*/*"
    )

    assert dkron_error(response, 404) == "specified parent job not found"


def test_a_client_asking_for_json_gets_the_same_text_with_the_field_details(dkron):
    body = {"name": "child", "parent_job": "missing"}

    response = dkron.post("/v1/jobs", body, format="json", HTTP_ACCEPT="application/json")

    assert response.status_code == 404
    assert response.json() == {
        "error": "specified parent job not found",
        "details": {"parent_job": "no job named 'missing'"},
    }


def test_an_authentication_failure_is_plain_text_too_and_keeps_its_challenge(db):
    response = APIClient(HTTP_AUTHORIZATION="Bearer dkw_wrong").get("/v1/jobs")

    assert dkron_error(response, 401) == "invalid, expired or revoked API token"
    assert response["WWW-Authenticate"] == 'Bearer realm="dkronweb"'
