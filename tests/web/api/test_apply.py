"""POST /v1/apply: a dry run answers the plan and changes nothing, apply does it all or
nothing, and it takes the same permissions as creating, changing and deleting jobs one by one."""

from __future__ import annotations

import json

import pytest

from jobs.models import AuditEntry, Job
from tests import factories
from tests.web.api.helpers import client_for, http_body, job_body, make_user

pytestmark = pytest.mark.django_db

TEAM = {"team": "a"}


def body(*jobs, **extra):
    return {"jobs": list(jobs), **extra}


def test_a_dry_run_answers_the_plan_and_changes_nothing(api):
    response = api.post("/v1/apply?dry_run=true", body(job_body("job-a")), format="json")
    assert response.status_code == 200, response.content
    plan = response.json()
    assert plan["applied"] is False and plan["changes"] is True
    assert [i["name"] for i in plan["create"]] == ["job-a"]
    assert plan["summary"] == "Plan: 1 to create, 0 to update, 0 to delete, 0 unchanged."
    assert not Job.objects.exists()
    assert not AuditEntry.objects.filter(action__in=["create", "apply"]).exists()


def test_apply_creates_updates_and_prunes_in_the_scope(api):
    factories.job("old-a", metadata=TEAM)
    factories.job("other", metadata={"team": "b"})
    api.post("/v1/apply", [job_body("job-a", metadata=TEAM)], format="json")  # a plain list
    jobs = [job_body("job-a", metadata=TEAM, retries=2), job_body("job-b", metadata=TEAM)]
    response = api.post("/v1/apply", body(*jobs, prune=True, scope="team=a"), format="json")
    assert response.status_code == 200, response.content
    plan = response.json()
    assert plan["applied"] is True
    assert [i["name"] for i in plan["create"]] == ["job-b"]
    assert plan["update"][0]["changes"] == [{"path": "retries", "before": 0, "after": 2}]
    assert [i["name"] for i in plan["delete"]] == ["old-a"]
    assert set(Job.objects.values_list("name", flat=True)) == {"job-a", "job-b", "other"}
    entry = AuditEntry.objects.filter(action="apply").latest("id")
    assert entry.via == "apply" and entry.actor == "root"


def test_an_invalid_job_answers_400_with_the_plan_and_changes_nothing(api):
    jobs = [job_body("job-a"), job_body("job-bad", schedule="whenever")]
    response = api.post("/v1/apply", body(*jobs), format="json")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["job"] == "job-bad" and "schedule" in error["error"]
    assert not Job.objects.exists()


def test_prune_without_a_scope_is_refused(api):
    response = api.post("/v1/apply", body(job_body("job-a"), prune=True), format="json")
    assert response.status_code == 400
    assert response.json()["details"] == {"scope": "required with prune"}


def test_a_body_that_is_not_jobs_is_refused(api):
    response = api.post("/v1/apply", {"job": []}, format="json")
    assert response.status_code == 400 and "jobs" in response.json()["details"]


def test_secrets_are_never_in_the_answer(api):
    config = {"command": "env", "env": "DB_PASSWORD=hunter2-db"}
    api.post("/v1/apply", body(job_body("job-s", executor_config=config)), format="json")
    changed = {"command": "env", "env": "DB_PASSWORD=new-pass-1"}
    response = api.post(
        "/v1/apply?dry_run=true", body(job_body("job-s", executor_config=changed)), format="json"
    )
    assert response.json()["update"][0]["changes"] == [
        {"path": "executor_config.env", "secret": True}
    ]
    assert "hunter2" not in response.content.decode()
    assert "new-pass" not in response.content.decode()


def test_an_editor_cannot_apply_a_shell_job_without_the_run_code_permission():
    editor = client_for(make_user("ed", "add_job", "change_job", "delete_job"))
    response = editor.post("/v1/apply", body(job_body("job-a")), format="json")
    assert response.status_code == 403
    assert "run code jobs" in response.json()["errors"][0]["error"]
    assert not Job.objects.exists()
    ok = editor.post("/v1/apply", body(http_body("ping")), format="json")
    assert ok.status_code == 200 and Job.objects.filter(name="ping").exists()


def test_each_action_needs_its_own_permission():
    factories.job("old-a", metadata=TEAM)
    creator = client_for(make_user("cr", "add_job"))
    prune = body(http_body("ping", metadata=TEAM), prune=True, scope="team=a")
    for url in ("/v1/apply", "/v1/apply?dry_run=true"):
        response = creator.post(url, prune, format="json")
        assert response.status_code == 403
        assert "delete jobs" in response.json()["error"]
    assert set(Job.objects.values_list("name", flat=True)) == {"old-a"}
    assert creator.post("/v1/apply", body(http_body("ping")), format="json").status_code == 200
    changed = body(http_body("ping", retries=1))
    assert creator.post("/v1/apply", changed, format="json").status_code == 403
    assert Job.objects.get(name="ping").retries == 0


def test_a_reader_cannot_apply():
    reader = client_for(make_user("rd"))
    response = reader.post("/v1/apply?dry_run=true", body(http_body("ping")), format="json")
    assert response.status_code == 403


def test_jobs_applied_round_trip_through_the_dkron_api(api, dkron):
    api.post("/v1/apply", body(job_body("job-a", metadata=TEAM)), format="json")
    listed = json.loads(dkron.get("/v1/jobs").content)
    assert dkron.post("/v1/jobs", listed[0], format="json").status_code == 201
    again = api.post("/v1/apply?dry_run=true", body(*listed), format="json").json()
    assert again["changes"] is False and again["unchanged"] == 1


def test_the_openapi_document_describes_apply(api):
    document = api.get("/v1/openapi.json").json()
    operation = document["paths"]["/v1/apply"]["post"]
    assert operation["operationId"] == "applyJobs"
    assert any(p["name"] == "dry_run" for p in operation["parameters"])
