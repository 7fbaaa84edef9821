"""Authentication: Bearer tokens, Dkron Pro's X-Dkron-Token, HTTP Basic and session login."""

from __future__ import annotations

import base64

import pytest
from django.http import HttpRequest
from rest_framework.test import APIClient

from jobs.models import ApiToken, Job
from tests.web.api.helpers import (
    JSON_ERRORS,
    PASSWORD,
    add_execution,
    assert_error,
    create,
    job_body,
    make_user,
)

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/v1"),
    ("get", "/v1/"),
    ("get", "/v1/members"),
    ("get", "/v1/leader"),
    ("get", "/v1/isleader"),
    ("get", "/v1/busy"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/jobs"),
    ("post", "/v1/jobs"),
    ("patch", "/v1/jobs"),
    ("get", "/v1/jobs/job1"),
    ("put", "/v1/jobs/job1"),
    ("delete", "/v1/jobs/job1"),
    ("post", "/v1/jobs/job1"),
    ("post", "/v1/jobs/job1/run"),
    ("post", "/v1/jobs/job1/toggle"),
    ("get", "/v1/jobs/job1/executions"),
    ("delete", "/v1/jobs/job1/executions"),
    ("get", "/v1/jobs/job1/executions/{id}"),
    ("post", "/v1/jobs/job1/executions/{id}/kill"),
]


@pytest.fixture
def existing(api):
    create(api, "job1")
    return add_execution("job1", status="queued")


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_an_unauthenticated_request_is_a_401_with_a_challenge(anon, existing, method, path):
    path = path.replace("{id}", str(existing.pk))

    response = getattr(anon, method)(path, job_body("job1"), format="json")

    body = assert_error(response, 401)
    assert response["WWW-Authenticate"]
    assert "credentials" in body["error"].lower() or "auth" in body["error"].lower()
    assert Job.objects.get(name="job1").disabled is False
    existing.refresh_from_db()
    assert existing.status == "queued"


def test_health_needs_no_credentials(anon):
    from jobs.services.lease import lease_acquire

    assert lease_acquire(holder="sched-1", ttl=60)  # healthy needs an active scheduler
    assert anon.get("/health").status_code == 200


def test_a_bearer_token_authenticates(api):
    assert api.get("/v1/jobs").status_code == 200


def test_a_bearer_token_may_create_jobs(api):
    assert api.post("/v1/jobs", job_body("job1"), format="json").status_code == 201


def test_the_dkron_pro_token_header_authenticates(token):
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS, HTTP_X_DKRON_TOKEN=token)

    assert client.get("/v1/jobs").status_code == 200
    assert client.post("/v1/jobs", job_body("job1"), format="json").status_code == 201


def test_http_basic_with_username_and_password_authenticates(admin_user):
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS, HTTP_AUTHORIZATION=basic("root", "rootpass"))

    assert client.get("/v1/jobs").status_code == 200
    assert client.post("/v1/jobs", job_body("job1"), format="json").status_code == 201


def test_http_basic_with_a_wrong_password_is_a_401(admin_user):
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS, HTTP_AUTHORIZATION=basic("root", "wrong"))

    assert_error(client.get("/v1/jobs"), 401)


def test_a_session_login_authenticates(admin_user):
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS)
    assert client.login(
        request=HttpRequest(), username="root", password="rootpass"
    )  # axes needs a request

    assert client.get("/v1/jobs").status_code == 200


def test_a_session_write_without_the_csrf_token_is_refused(admin_user):
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS, enforce_csrf_checks=True)
    client.login(
        request=HttpRequest(), username="root", password="rootpass"
    )  # axes needs a request

    response = client.post("/v1/jobs", job_body("job1"), format="json")

    body = assert_error(response, 403)
    assert "CSRF" in body["error"]
    assert Job.objects.count() == 0


def test_a_token_write_needs_no_csrf_token(token):
    client = APIClient(
        HTTP_ACCEPT=JSON_ERRORS, enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {token}"
    )

    assert client.post("/v1/jobs", job_body("job1"), format="json").status_code == 201


def test_an_unknown_token_is_a_401(db):
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS, HTTP_AUTHORIZATION="Bearer dkw_not-a-real-token")

    assert_error(client.get("/v1/jobs"), 401)


def test_an_unknown_dkron_pro_token_is_a_401(db):
    assert_error(APIClient(HTTP_ACCEPT=JSON_ERRORS, HTTP_X_DKRON_TOKEN="nope").get("/v1/jobs"), 401)


def test_a_revoked_token_is_refused(api, token):
    ApiToken.objects.update(revoked=True)

    body = assert_error(api.get("/v1/jobs"), 401)

    assert "revoked" in body["error"] or "invalid" in body["error"]


def test_a_token_of_a_deactivated_user_is_refused(api, admin_user):
    admin_user.is_active = False
    admin_user.save()

    assert_error(api.get("/v1/jobs"), 401)


def test_an_empty_bearer_token_is_not_a_login(db):
    assert_error(
        APIClient(HTTP_ACCEPT=JSON_ERRORS, HTTP_AUTHORIZATION="Bearer ").get("/v1/jobs"), 401
    )


def test_tokens_are_stored_hashed_and_record_their_last_use(api, token):
    stored = ApiToken.objects.get()
    assert token not in (stored.key_hash, stored.prefix)
    assert stored.last_used is None

    api.get("/v1/jobs")

    stored.refresh_from_db()
    assert stored.last_used is not None


def test_a_regular_user_can_log_in_with_basic_auth(db):
    make_user("reader")
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS, HTTP_AUTHORIZATION=basic("reader", PASSWORD))

    assert client.get("/v1/jobs").status_code == 200
