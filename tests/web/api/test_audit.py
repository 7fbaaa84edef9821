"""The audit log: who did what, through which door, and when; never a secret; GET /v1/audit."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from jobs.models import AuditEntry
from tests.web.api.helpers import add_execution, assert_error, create, http_body, job_body
from tests.web.api.roles import principal

pytestmark = pytest.mark.django_db

NATS = {
    "executor": "nats",
    "executor_config": {
        "url": "nats://127.0.0.1:4222",
        "subject": "s",
        "userName": "u",
        "password": "nats-secret-pw",
    },
}


def last() -> AuditEntry:
    return AuditEntry.objects.order_by("-id").first()  # type: ignore[return-value]


def test_every_api_change_is_recorded_with_who_and_how(api):
    create(api, "job1")
    assert (last().actor, last().via, last().action, last().target) == (
        "root",
        "api",
        "create",
        "job1",
    )

    api.post("/v1/jobs", job_body("job1", owner="me"), format="json")
    assert (last().action, last().detail["changed"]) == ("update", ["owner"])

    api.post("/v1/jobs/job1/run")
    assert last().action == "run" and last().detail["run"]

    execution = add_execution("job1", status="queued")
    api.post(f"/v1/jobs/job1/executions/{execution.pk}/kill")
    assert (last().action, last().detail["execution"]) == ("kill", execution.pk)

    api.post("/v1/jobs/job1/toggle")
    assert (last().action, last().detail) == ("toggle", {"disabled": True})

    api.delete("/v1/jobs/job1/executions")
    assert last().action == "clear"

    api.post("/v1/pause")
    assert last().action == "pause"
    api.post("/v1/unpause")
    assert last().action == "unpause"

    api.delete("/v1/jobs/job1")
    assert (last().action, last().target) == ("delete", "job1")

    upload = SimpleUploadedFile("j.json", json.dumps([http_body("r")]).encode())
    api.post("/v1/restore", {"file": upload}, format="multipart")
    assert (last().action, last().detail) == (
        "restore",
        {"jobs": 1, "ok": 1, "failed": 0, "with_problems": 0},
    )

    key = api.post("/v1/tokens", {"name": "ci"}, format="json").json()
    assert (last().action, last().target) == ("token_create", "root/ci")
    api.delete(f"/v1/tokens/{key['id']}")
    assert (last().action, last().detail["prefix"]) == ("token_revoke", key["prefix"])
    assert key["key"] not in json.dumps(list(AuditEntry.objects.values("detail")))


def test_no_secret_reaches_the_audit_log(api):
    api.post("/v1/jobs", {**job_body("bus"), **NATS}, format="json")
    config = {**NATS["executor_config"], "password": "another-secret-pw"}
    api.post("/v1/jobs", {**job_body("bus"), **NATS, "executor_config": config}, format="json")

    assert last().detail["changed"] == ["executor_config"]
    dump = json.dumps(list(AuditEntry.objects.values()), default=str)
    assert "nats-secret-pw" not in dump and "another-secret-pw" not in dump


def test_a_refused_change_leaves_no_entry(db):
    _, editor, _ = principal("editor")

    assert_error(editor.post("/v1/jobs", job_body("job1"), format="json"), 403)

    assert not AuditEntry.objects.filter(action="create").exists()


def test_the_cli_import_is_recorded_as_the_cli(tmp_path, db):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([http_body("imported")]))

    call_command("import_jobs", str(path), stdout=io.StringIO())

    actions = list(AuditEntry.objects.order_by("id").values_list("via", "action", "target"))
    assert actions == [("cli", "create", "imported"), ("cli", "import", "")]


def test_reading_the_audit_log_needs_its_permission(api, db):
    create(api, "job1")
    _, scoped, _ = principal("superuser token as editor")
    _, reader, _ = principal("read-only")

    assert_error(scoped.get("/v1/audit"), 403)
    assert_error(reader.get("/v1/audit"), 403)
    response = api.get("/v1/audit?action=create")
    assert response.status_code == 200 and response["X-Total-Count"] == "1"
    assert response.json()[0]["target"] == "job1"
    assert set(response.json()[0]) == {"id", "at", "actor", "via", "action", "target", "detail"}
