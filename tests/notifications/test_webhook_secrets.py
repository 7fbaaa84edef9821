"""Webhook URLs and header values are secrets: read-only users see the URL's path masked, the
values are encrypted at rest when DKRON_ENCRYPTION_KEY is set, and the webhook still gets
them in clear (issue 12, finding 6)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection

from jobs.models import Job
from jobs.services.notifications import notify_run
from tests.notifications.test_notify_run import settled_run
from tests.web.api.helpers import http_body, job_body
from tests.web.api.roles import principal

pytestmark = pytest.mark.django_db

PATH = "/services/T000/B000/hook-s3cret"


def raw_notify(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT notify FROM jobs_job WHERE name = %s", [name])
        value = cursor.fetchone()[0]
    return value if isinstance(value, str) else repr(value)


def test_a_read_only_user_sees_the_webhook_url_without_its_path():
    _, owner, _ = principal("superuser")
    hook = {"url": f"https://hooks.example.com{PATH}", "headers": {"X-Key": "hook-key-1"}}
    owner.post("/v1/jobs", job_body("job", notify={"webhooks": [hook]}), format="json")
    _, reader, _ = principal("read-only")

    shown = reader.get("/v1/jobs/job").json()["notify"]["webhooks"][0]
    assert shown == {"url": "https://hooks.example.com/********", "headers": {"X-Key": "********"}}
    assert "hook-s3cret" not in reader.get("/v1/jobs").content.decode()


def test_a_masked_webhook_sent_back_keeps_its_url_and_headers():
    _, editor, _ = principal("editor")
    hook = {"url": f"https://hooks.example.com{PATH}", "headers": {"X-Key": "hook-key-1"}}
    editor.post("/v1/jobs", http_body("job", notify={"webhooks": [hook]}), format="json")
    body = editor.get("/v1/jobs/job").json()
    body["notify"]["on"] = "always"

    assert editor.post("/v1/jobs", body, format="json").status_code in (200, 201)
    assert Job.objects.get(name="job").notify["webhooks"] == [hook]


def test_webhook_secrets_are_encrypted_at_rest_and_sent_in_clear(
    receiver, notify_settings, monkeypatch
):
    monkeypatch.setitem(settings.DKRON, "ENCRYPTION_KEYS", [Fernet.generate_key().decode()])
    _, owner, _ = principal("superuser")
    hook = {"url": receiver.url + PATH, "headers": {"Authorization": "Bearer hook-t0ken"}}
    body = job_body("job", notify={"on": "always", "webhooks": [hook]})
    assert owner.post("/v1/jobs", body, format="json").status_code == 201

    row = raw_notify("job")
    assert "hook-t0ken" not in row and "hook-s3cret" not in row and "enc:v1:" in row
    notify_run(run_id=settled_run(Job.objects.get(name="job"), "failed").pk)

    request = receiver.wait_for(1)[0]
    assert request.path == PATH
    assert request.headers["Authorization"] == "Bearer hook-t0ken"
