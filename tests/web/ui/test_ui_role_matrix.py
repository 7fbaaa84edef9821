"""Every UI action (a POST under /ui/) against every role, signed in with a session: allowed
(and recorded in the audit log, via "ui") or refused with a 403 page and nothing changed."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from jobs.models import AuditEntry, Execution, Job, Run
from jobs.services.jobs import job_upsert
from jobs.services.tokens import token_create
from tests.web.api.helpers import PASSWORD, http_body, job_body
from tests.web.api.roles import member
from tests.web.ui.test_job_form import form_data

pytestmark = pytest.mark.django_db

USERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "read-only": (("read-only",), ()),
    "operator": (("operator",), ()),
    "editor": (("editor",), ()),
    "editor+run_code_jobs": (("editor",), ("run_code_jobs",)),
    "code-editor": (("code-editor",), ()),
}
EVERYONE = {*USERS, "superuser"}
OPERATORS = EVERYONE - {"read-only"}
EDITORS = OPERATORS - {"operator"}
CODERS = {"editor+run_code_jobs", "code-editor", "superuser"}

HTTP_FORM = {
    **{k: v for k, v in form_data(name="webform").items() if not k.startswith("config.")},
    "executor": "http",
    "_config_executor": "http",
    "config.method": "GET",
    "config.url": "http://example.com/",
}

# (path, form, who may). {id}: a queued execution of job1; {token}: the user's own token.
TABLE: list[tuple[str, dict[str, Any], set[str]]] = [
    ("/ui/jobs/job1/run/", {}, OPERATORS),
    ("/ui/jobs/job1/toggle/", {}, OPERATORS),
    ("/ui/executions/{id}/kill/", {}, OPERATORS),
    ("/ui/jobs/bulk/", {"action": "run", "names": ["job1"], "confirm": "1"}, OPERATORS),
    ("/ui/jobs/bulk/", {"action": "disable", "names": ["job1"], "confirm": "1"}, OPERATORS),
    ("/ui/jobs/bulk/", {"action": "delete", "names": ["web"], "confirm": "1"}, EDITORS),
    ("/ui/jobs/web/delete/", {}, EDITORS),
    ("/ui/jobs/new/", HTTP_FORM, EDITORS),
    ("/ui/jobs/new/", form_data(name="shelly"), CODERS),
    ("/ui/jobs/job1/edit/", form_data(name="job1", owner="me"), CODERS),
    ("/ui/tokens/", {"name": "mine", "role": "read-only"}, EVERYONE),
    ("/ui/tokens/{token}/revoke/", {}, EVERYONE),
]


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    job = job_upsert(data=job_body("job1"))[0]
    job_upsert(data=http_body("web"))
    run = Run.objects.create(job=job, trigger="manual", snapshot={})
    return Execution.objects.create(
        run=run, job=job, job_name="job1", node_name="n1", status="queued"
    )


def signed_in(who: str) -> tuple[Client, int]:
    client = Client()
    if who == "anonymous":
        return client, 1
    if who == "superuser":
        user = get_user_model().objects.create_superuser("su", "su@example.com", PASSWORD)
    else:
        groups, perms = USERS[who]
        user = member(who.replace("+", "-"), *groups, perms=perms)
    client.force_login(user)
    return client, token_create(user=user, name="own")[0].pk


@pytest.mark.parametrize("who", ["anonymous", *sorted(EVERYONE)])
@pytest.mark.parametrize("row", TABLE, ids=[f"{p} {f.get('action', '')}" for p, f, _ in TABLE])
def test_each_role_is_allowed_or_refused_each_ui_action(world, row, who):
    path, form, allowed = row
    client, token_id = signed_in(who)
    path = path.replace("{id}", str(world.pk)).replace("{token}", str(token_id))
    entries = AuditEntry.objects.count()
    jobs = sorted(Job.objects.values_list("name", "disabled", "owner"))

    response = client.post(path, form)

    if who == "anonymous":
        assert response.status_code == 302 and "/login/" in response["Location"]
    elif who in allowed:
        assert response.status_code in (200, 201, 302), (who, response.status_code)
        entry = AuditEntry.objects.order_by("-id").first()
        assert AuditEntry.objects.count() > entries and entry is not None
        assert entry.via == "ui"
        return
    else:
        assert response.status_code == 403, (who, response.status_code)
    assert AuditEntry.objects.count() == entries, "a refused action changes nothing"
    assert sorted(Job.objects.values_list("name", "disabled", "owner")) == jobs


def test_the_tokens_page_shows_a_new_key_once_and_lists_without_it(client, admin_user):
    client.force_login(admin_user)

    created = client.post("/ui/tokens/", {"name": "laptop", "role": "operator"})

    assert created.status_code == 201
    key = created.context["key"]
    assert key.startswith("dkw_") and key in created.content.decode()
    assert created["Cache-Control"] == "no-store"
    listing = client.get("/ui/tokens/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "laptop" in page and "operator" in page and key[:10] in page
    assert key not in page


def test_revoking_from_the_tokens_page_refuses_the_token_at_once(client, admin_user):
    client.force_login(admin_user)
    token, raw = token_create(user=admin_user, name="laptop")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/v1/jobs").status_code == 200

    response = client.post(f"/ui/tokens/{token.pk}/revoke/")

    assert response.status_code == 302
    assert api.get("/v1/jobs").status_code == 401


def test_nobody_revokes_another_users_token_from_the_ui(client, admin_user):
    theirs, _ = token_create(user=member("someone"), name="theirs")
    client.force_login(admin_user)

    assert client.post(f"/ui/tokens/{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked is False


def test_a_token_without_a_name_is_refused_with_a_message(client, admin_user):
    client.force_login(admin_user)

    response = client.post("/ui/tokens/", {"name": " "})

    assert response.status_code == 400
    assert "needs a name" in response.content.decode()
