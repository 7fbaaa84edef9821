"""Permissions: read for any signed-in user; operate (run, toggle, kill); edit; run-code jobs."""

from __future__ import annotations

import pytest

from jobs.models import Execution, Job, Run
from tests.web.api.helpers import (
    add_execution,
    assert_error,
    client_for,
    create,
    http_body,
    job_body,
    make_user,
)

pytestmark = pytest.mark.django_db

EDITOR = ("add_job", "change_job", "delete_job", "view_job")


@pytest.fixture
def job(api):
    create(api, "job1")
    return add_execution("job1", status="queued")


@pytest.fixture
def reader(db):
    return client_for(make_user("reader"))


@pytest.mark.parametrize(
    "path",
    ["/v1", "/v1/members", "/v1/busy", "/v1/jobs", "/v1/jobs/job1", "/v1/jobs/job1/executions"],
)
def test_a_user_without_permissions_can_read(reader, job, path):
    assert reader.get(path).status_code == 200


def test_a_user_without_permissions_can_read_one_execution(reader, job):
    assert reader.get(f"/v1/jobs/job1/executions/{job.pk}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/jobs"),
        ("patch", "/v1/jobs"),
        ("put", "/v1/jobs/job1"),
        ("delete", "/v1/jobs/job1"),
        ("post", "/v1/jobs/job1"),
        ("post", "/v1/jobs/job1/run"),
        ("post", "/v1/jobs/job1/toggle"),
        ("delete", "/v1/jobs/job1/executions"),
        ("post", "/v1/jobs/job1/executions/{id}/kill"),
    ],
)
def test_a_user_without_permissions_gets_403_on_every_write(reader, job, method, path):
    path = path.replace("{id}", str(job.pk))

    response = getattr(reader, method)(path, job_body("job1", displayname="x"), format="json")

    assert_error(response, 403)
    stored = Job.objects.get(name="job1")
    assert (stored.displayname, stored.disabled) == ("", False)
    assert Run.objects.count() == 1
    assert Execution.objects.get(pk=job.pk).status == "queued"


def test_an_operator_can_run_toggle_and_kill_but_not_edit(job):
    operator = client_for(make_user("operator", "operate_job"))

    assert operator.post("/v1/jobs/job1/run").status_code == 202
    assert operator.post("/v1/jobs/job1").status_code == 202
    assert operator.post("/v1/jobs/job1/toggle").status_code == 200
    assert operator.post(f"/v1/jobs/job1/executions/{job.pk}/kill").status_code == 202
    assert_error(operator.post("/v1/jobs", job_body("new"), format="json"), 403)
    assert_error(operator.delete("/v1/jobs/job1"), 403)


def test_an_editor_without_the_run_code_permission_cannot_create_a_shell_job(db):
    editor = client_for(make_user("editor", *EDITOR))

    response = editor.post("/v1/jobs", job_body("job1"), format="json")

    body = assert_error(response, 403)
    assert "shell" in body["error"]
    assert "permission" in body["error"]
    assert Job.objects.count() == 0


def test_an_editor_without_the_run_code_permission_can_create_an_http_job(db):
    editor = client_for(make_user("editor", *EDITOR))

    response = editor.post("/v1/jobs", http_body("ping"), format="json")

    assert response.status_code == 201
    assert Job.objects.get(name="ping").executor == "http"


def test_an_editor_without_the_run_code_permission_cannot_turn_a_job_into_a_shell_job(db):
    editor = client_for(make_user("editor", *EDITOR))
    editor.post("/v1/jobs", http_body("ping"), format="json")

    assert_error(editor.put("/v1/jobs/ping", job_body("ping"), format="json"), 403)
    assert Job.objects.get(name="ping").executor == "http"


def test_an_editor_with_the_run_code_permission_can_create_a_shell_job(db):
    editor = client_for(make_user("coder", *EDITOR, "run_code_jobs"))

    assert editor.post("/v1/jobs", job_body("job1"), format="json").status_code == 201


def test_updating_an_existing_job_needs_the_change_permission(api):
    create(api, "ping", **{k: v for k, v in http_body("ping").items() if k != "name"})
    adder = client_for(make_user("adder", "add_job"))

    assert_error(adder.post("/v1/jobs", http_body("ping", owner="me"), format="json"), 403)
    assert adder.post("/v1/jobs", http_body("fresh"), format="json").status_code == 201
    assert Job.objects.get(name="ping").owner == ""


def test_creating_a_job_needs_the_add_permission(db):
    changer = client_for(make_user("changer", "change_job"))

    assert_error(changer.post("/v1/jobs", http_body("ping"), format="json"), 403)
    assert Job.objects.count() == 0


def test_clearing_executions_needs_the_delete_permission(job):
    operator = client_for(make_user("operator", "operate_job"))

    assert_error(operator.delete("/v1/jobs/job1/executions"), 403)
    assert Execution.objects.count() == 1


def test_a_superuser_may_do_everything(api, job):
    assert api.post("/v1/jobs/job1/toggle").status_code == 200
    assert api.delete("/v1/jobs/job1").status_code == 200
