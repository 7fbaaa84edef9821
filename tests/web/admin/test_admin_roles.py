"""Admin actions against the roles (staff users in the role groups): each action goes through
a service, is recorded via "admin", and is missing for a role without its permission. API
tokens can be listed and revoked there, never added or shown with their hash; the audit log
is read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from jobs.models import ApiToken, AuditEntry, Execution, Job, Run
from jobs.services.jobs import job_upsert
from jobs.services.tokens import token_create
from tests.web.api.helpers import PASSWORD, http_body, job_body
from tests.web.api.roles import member

pytestmark = pytest.mark.django_db

OPERATORS = {"operator", "editor", "superuser"}
EDITORS = {"editor", "superuser"}
SUPERUSER = {"superuser"}

# (admin changelist, action, what is selected, who may)
TABLE = [
    ("job", "run_now", "job", OPERATORS),
    ("job", "disable", "job", OPERATORS),
    ("job", "delete_selected", "job", EDITORS),
    ("execution", "kill", "execution", OPERATORS),
    ("apitoken", "revoke", "token", SUPERUSER),
]


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    job = job_upsert(data=job_body("job1"))[0]
    run = Run.objects.create(job=job, trigger="manual", snapshot={})
    execution = Execution.objects.create(
        run=run, job=job, job_name="job1", node_name="n1", status="queued"
    )
    token, _ = token_create(user=member("someone"), name="theirs")
    return {"job": job.pk, "execution": execution.pk, "token": token.pk}


def staff_client(who: str) -> Client:
    if who == "superuser":
        user = get_user_model().objects.create_superuser("su", "su@example.com", PASSWORD)
    else:
        user = member(who, who, is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["read-only", "operator", "editor", "superuser"])
@pytest.mark.parametrize("row", TABLE, ids=[f"{m} {a}" for m, a, _, _ in TABLE])
def test_each_role_may_or_may_not_use_each_admin_action(world, row, who):
    model, action, selected, allowed = row
    client = staff_client(who)
    entries = AuditEntry.objects.count()

    form = {"action": action, "_selected_action": [world[selected]], "post": "yes"}
    response = client.post(f"/admin/jobs/{model}/", form)

    assert response.status_code in (200, 302, 403)
    if who in allowed:
        entry = AuditEntry.objects.order_by("-id").first()
        assert AuditEntry.objects.count() == entries + 1, response.content[:500]
        username = "su" if who == "superuser" else who
        assert entry is not None and (entry.via, entry.actor) == ("admin", username)
    else:
        assert AuditEntry.objects.count() == entries


def test_an_editor_saving_a_shell_job_in_the_admin_needs_the_run_code_permission(world):
    client = staff_client("editor")
    job_upsert(data=http_body("web"))

    client.post(
        "/admin/jobs/job/add/",
        {
            "name": "shelly",
            "executor": "shell",
            "executor_config": '{"command": "true"}',
            "schedule": "@every 1m",
        },
    )

    assert not Job.objects.filter(name="shelly").exists()
    assert not AuditEntry.objects.filter(target="shelly").exists()


def test_tokens_in_the_admin_can_be_listed_but_not_added_and_never_show_the_hash(world, admin_user):
    client = Client()
    client.force_login(admin_user)
    token = ApiToken.objects.get(pk=world["token"])

    listing = client.get("/admin/jobs/apitoken/")
    page = client.get(f"/admin/jobs/apitoken/{token.pk}/change/")

    assert listing.status_code == 200 and token.prefix in listing.content.decode()
    assert page.status_code == 200
    assert token.key_hash not in listing.content.decode() + page.content.decode()
    assert client.get("/admin/jobs/apitoken/add/").status_code == 403


def test_the_audit_log_is_read_only_in_the_admin(world, admin_user):
    client = Client()
    client.force_login(admin_user)
    entry = AuditEntry.objects.order_by("-id").first()
    assert entry is not None

    assert client.get("/admin/jobs/auditentry/").status_code == 200
    assert client.get("/admin/jobs/auditentry/add/").status_code == 403
    client.post(f"/admin/jobs/auditentry/{entry.pk}/delete/", {"post": "yes"})
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
