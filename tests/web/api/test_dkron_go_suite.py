"""Dkron's own API tests (dkron/api_test.go), case by case, against dkronweb.

Each test posts the body Dkron's test posts, with the same `Content-Type` (Dkron's tests send
`encoding/json`), and asserts what Dkron's test asserts: status codes, and the body texts
Dkron's tests compare. Where dkronweb adds save-time validation that Dkron lacks, the case
uses a job that passes it (a registered executor), as the Go test means a valid job.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db


def post_job(client, body: str):
    return client.post("/v1/jobs", body, content_type="encoding/json")


def test_create_then_update_overwrites_the_job(dkron):
    created = post_job(
        dkron,
        """{"name": "test_job", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"command": "date"}, "owner": "mec",
            "owner_email": "foo@bar.com", "disabled": true}""",
    )
    assert created.status_code == 201, created.content
    updated = post_job(
        dkron,
        """{"name": "test_job", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"command": "test"}, "disabled": false}""",
    )
    assert updated.status_code == 201, updated.content
    job = json.loads(updated.content)
    assert job["name"] == "test_job"
    assert job["disabled"] is False
    assert job["executor_config"]["command"] == "test"


def test_a_job_cannot_be_its_own_parent(dkron):
    response = post_job(
        dkron,
        """{"name": "test_job", "schedule": "@every 1m", "command": "date", "owner": "mec",
            "owner_email": "foo@bar.com", "disabled": true, "parent_job": "test_job"}""",
    )
    assert response.status_code == 400
    assert "the job can not have itself as parent" in response.content.decode()


def test_an_unknown_parent_is_404_with_dkrons_text_and_nothing_is_stored(dkron):
    response = post_job(
        dkron,
        """{"name": "test_job", "schedule": "@every 1m", "command": "date", "owner": "mec",
            "owner_email": "foo@bar.com", "disabled": true, "parent_job": "parent_test_job"}""",
    )
    assert response.status_code == 404
    assert response.content.decode() == "specified parent job not found"
    assert dkron.get("/v1/jobs/test_job").status_code == 404


def test_updating_a_parent_keeps_its_dependents(dkron):
    parent = """{"name": "parentjobkeep", "schedule": "@every 1m", "executor": "shell",
                 "executor_config": {"command": "date"}, "disabled": true}"""
    assert post_job(dkron, parent).status_code == 201
    child = """{"name": "childjobkeep", "parent_job": "parentjobkeep", "schedule": "@every 1m",
                "executor": "shell", "executor_config": {"command": "date"}, "disabled": true}"""
    assert post_job(dkron, child).status_code == 201
    assert post_job(dkron, parent).status_code == 201
    job = dkron.get("/v1/jobs/parentjobkeep").json()
    assert job["dependent_jobs"] == ["childjobkeep"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('"name": "BAD JOB NAME!"', id="bad-name"),
        pytest.param('"name": "testjob", "schedule": "@at badtime"', id="bad-schedule"),
        pytest.param('"name": "testjob", "concurrency": "badvalue"', id="bad-concurrency"),
        pytest.param('"name": "testjob", "timezone": "notatimezone"', id="bad-timezone"),
    ],
)
def test_invalid_jobs_are_400_and_not_stored(dkron, body):
    fields = {"schedule": "@every 1m", "executor": "shell", "disabled": True}
    fields["executor_config"] = {"command": "date"}  # type: ignore[assignment]
    merged = {**fields, **json.loads("{" + body + "}")}
    response = post_job(dkron, json.dumps(merged))
    assert response.status_code == 400, response.content
    assert dkron.get("/v1/jobs").json() == []


def test_a_shell_timeout_that_is_not_a_duration_is_400(dkron):
    response = post_job(
        dkron,
        """{"name": "testjob", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"command": "date", "timeout": "foreverandever"},
            "disabled": true}""",
    )
    assert response.status_code == 400


def test_a_name_of_unicode_lowercase_letters_digits_dash_and_underscore_is_valid(dkron):
    name = "abcdefghijklmnopqrstuvwxyz0123456789-_ßñëäïüøüáéíóýćàèìòùâêîôûæšłç"
    response = post_job(
        dkron,
        json.dumps(
            {
                "name": name,
                "schedule": "@every 1m",
                "executor": "shell",
                "executor_config": {"command": "date"},
                "disabled": True,
            }
        ),
    )
    assert response.status_code == 201, response.content


def test_an_empty_name_is_400(dkron):
    parent = """{"name": "testjob1", "schedule": "@every 1m", "executor": "shell",
                 "executor_config": {"command": "date"}, "disabled": true}"""
    assert post_job(dkron, parent).status_code == 201
    response = post_job(
        dkron,
        """{"name": "", "parent_job": "testjob1", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"command": "date"}, "disabled": true}""",
    )
    assert response.status_code == 400


def test_an_unknown_job_is_404(dkron):
    assert dkron.get("/v1/jobs/notajob").status_code == 404


def test_a_new_job_has_an_empty_execution_list(dkron):
    post_job(
        dkron,
        """{"name": "test_job", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"command": "date"}, "disabled": true}""",
    )
    response = dkron.get("/v1/jobs/test_job/executions")
    assert response.status_code == 200
    assert response.content == b"[]"


def test_pause_refuses_new_jobs_with_503_until_unpaused(dkron):
    assert '"paused":false' in dkron.get("/v1/pause").content.decode().replace(" ", "")
    assert '"paused":true' in dkron.post("/v1/pause").content.decode().replace(" ", "")
    body = """{"name": "test_job_paused", "schedule": "@every 1m", "executor": "shell",
               "executor_config": {"command": "date"}}"""
    paused = dkron.post("/v1/jobs", body, content_type="application/json")
    assert paused.status_code == 503
    assert "paused" in paused.content.decode()
    assert '"paused":false' in dkron.post("/v1/unpause").content.decode().replace(" ", "")
    assert dkron.post("/v1/jobs", body, content_type="application/json").status_code == 201


def test_leader_endpoints_answer_with_a_valid_status(dkron):
    assert dkron.get("/v1/isleader").status_code in {200, 404}
    assert dkron.get("/v1/leader").status_code in {200, 404, 500}
