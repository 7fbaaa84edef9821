"""API tokens: /v1/tokens (list, create once, revoke), role scoping, expiry, createtoken."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from jobs import timeutil
from jobs.models import ApiToken, Job
from jobs.services.tokens import hash_token, token_create
from tests.web.api.helpers import JSON_ERRORS, assert_error, create, http_body, job_body
from tests.web.api.roles import member, principal

pytestmark = pytest.mark.django_db


def bearer(raw: str) -> APIClient:
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_creating_a_token_answers_its_key_once_and_the_key_works(api, admin_user):
    response = api.post("/v1/tokens", {"name": "ci", "role": "operator"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["key"].startswith("dkw_") and body["prefix"] == body["key"][:10]
    assert (body["name"], body["role"], body["revoked"]) == ("ci", "operator", False)
    stored = ApiToken.objects.get(pk=body["id"])
    assert stored.key_hash == hash_token(body["key"]) and stored.user == admin_user
    assert bearer(body["key"]).get("/v1/jobs").status_code == 200


def test_the_list_shows_the_callers_tokens_and_never_a_key_or_hash(api, admin_user):
    api.post("/v1/tokens", {"name": "ci"}, format="json")
    token_create(user=member("someone-else"), name="not-mine")

    response = api.get("/v1/tokens")

    assert response.status_code == 200
    names = [t["name"] for t in response.json()]
    assert sorted(names) == ["ci", "tests"]
    assert response["X-Total-Count"] == "2"
    for token in response.json():
        assert set(token) == {
            "id",
            "name",
            "prefix",
            "role",
            "created_at",
            "expires_at",
            "last_used",
            "revoked",
        }
    assert "key_hash" not in response.content.decode()


def test_a_revoked_token_is_refused_at_once(api):
    raw = api.post("/v1/tokens", {"name": "ci"}, format="json").json()["key"]
    other = bearer(raw)
    assert other.get("/v1/jobs").status_code == 200
    token_id = ApiToken.objects.get(key_hash=hash_token(raw)).pk

    response = api.delete(f"/v1/tokens/{token_id}")

    assert response.status_code == 200 and response.json()["revoked"] is True
    assert_error(other.get("/v1/jobs"), 401)


def test_a_token_can_revoke_itself(api):
    token_id = api.get("/v1/tokens").json()[0]["id"]

    assert api.delete(f"/v1/tokens/{token_id}").status_code == 200
    assert_error(api.get("/v1/jobs"), 401)


def test_nobody_can_see_or_revoke_another_users_token(api):
    theirs, _ = token_create(user=member("someone-else"), name="theirs")

    assert_error(api.delete(f"/v1/tokens/{theirs.pk}"), 404)
    assert_error(api.delete("/v1/tokens/not-a-number"), 404)
    assert ApiToken.objects.get(pk=theirs.pk).revoked is False


def test_a_token_scoped_to_read_only_held_by_a_superuser_can_read_but_not_change(api):
    create(api, "job1")
    _, scoped, _ = principal("superuser token as read-only")

    assert scoped.get("/v1/jobs/job1").status_code == 200
    assert_error(scoped.post("/v1/jobs/job1/toggle"), 403)
    assert_error(scoped.delete("/v1/jobs/job1"), 403)
    assert Job.objects.get(name="job1").disabled is False


def test_a_superusers_editor_token_may_not_create_a_shell_job(db):
    _, scoped, _ = principal("superuser token as editor")

    body = assert_error(scoped.post("/v1/jobs", job_body("job1"), format="json"), 403)
    assert "run_code_jobs" in body["error"]
    assert scoped.post("/v1/jobs", http_body("ping"), format="json").status_code == 201


def test_a_token_never_has_more_than_its_user(db):
    user = member("demoted", "code-editor")
    _, raw = token_create(user=user, name="t", role=Group.objects.get(name="code-editor"))
    user.groups.set([Group.objects.get(name="read-only")])  # demoted after the token was made

    assert_error(bearer(raw).post("/v1/jobs", http_body("ping"), format="json"), 403)


def test_a_scoped_token_cannot_create_a_wider_token(db):
    _, scoped, _ = principal("superuser token as read-only")

    for body in ({"name": "x"}, {"name": "x", "role": "editor"}):
        error = assert_error(scoped.post("/v1/tokens", body, format="json"), 403)
        assert "wider" in error["error"]
    body = {"name": "x", "role": "read-only"}
    assert scoped.post("/v1/tokens", body, format="json").status_code == 201


def test_a_scoped_token_cannot_revoke_a_wider_token(db):
    user, scoped, _ = principal("superuser token as read-only")
    wide, _ = token_create(user=user, name="wide")

    assert_error(scoped.delete(f"/v1/tokens/{wide.pk}"), 403)
    assert ApiToken.objects.get(pk=wide.pk).revoked is False


def test_an_unknown_role_or_a_missing_name_is_a_400(api):
    body = assert_error(api.post("/v1/tokens", {"name": "x", "role": "nope"}, format="json"), 400)
    assert "editor" in body["details"]["role"]
    assert_error(api.post("/v1/tokens", {"role": "editor"}, format="json"), 400)


def test_an_expired_token_is_refused(api):
    soon = timeutil.now() + timedelta(seconds=30)
    response = api.post("/v1/tokens", {"name": "x", "expires_at": soon.isoformat()}, format="json")
    raw = response.json()["key"]
    assert bearer(raw).get("/v1/jobs").status_code == 200

    ApiToken.objects.filter(key_hash=hash_token(raw)).update(
        expires_at=timeutil.now() - timedelta(seconds=1)
    )

    assert_error(bearer(raw).get("/v1/jobs"), 401)


def test_a_role_held_by_tokens_cannot_be_deleted(admin_user):
    from django.db.models import ProtectedError

    token_create(user=admin_user, name="t", role=Group.objects.get(name="operator"))

    with pytest.raises(ProtectedError):
        Group.objects.get(name="operator").delete()


def test_the_openapi_document_describes_the_token_and_audit_endpoints(api):
    document = api.get("/v1/openapi.json").json()
    paths = document["paths"]

    assert {"get", "post"} <= paths["/v1/tokens"].keys()
    assert "delete" in paths["/v1/tokens/{token_id}"]
    assert "get" in paths["/v1/audit"]
    assert "key" in document["components"]["schemas"]["NewToken"]["properties"]
    assert "key" not in document["components"]["schemas"]["Token"]["properties"]


def test_createtoken_makes_a_token_scoped_to_a_role(admin_user):
    out = io.StringIO()

    call_command("createtoken", "root", "--name", "deploy", "--role", "editor", stdout=out)

    raw = out.getvalue().strip()
    token = ApiToken.objects.get(key_hash=hash_token(raw))
    assert (token.name, token.role.name if token.role else None) == ("deploy", "editor")
    assert_error(bearer(raw).post("/v1/jobs", job_body("job1"), format="json"), 403)


def test_createtoken_refuses_an_unknown_role(admin_user):
    with pytest.raises(CommandError, match="no role named 'boss'"):
        call_command("createtoken", "root", "--role", "boss", stdout=io.StringIO())
