"""With AUTH_ENABLED off (trusted networks, Dkron OSS clients) anonymous requests work."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from jobs.models import Job, Run
from tests.web.api.helpers import JSON_ERRORS, job_body

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def auth_off(settings):
    settings.AUTH_ENABLED = False


def test_anonymous_requests_can_read(anon):
    assert anon.get("/v1/jobs").status_code == 200
    assert anon.get("/v1").status_code == 200


def test_anonymous_requests_can_create_a_shell_job_run_toggle_and_delete_it(anon):
    assert anon.post("/v1/jobs", job_body("job1"), format="json").status_code == 201
    assert anon.post("/v1/jobs/job1/run").status_code == 202
    assert anon.post("/v1/jobs/job1/toggle").json()["disabled"] is True
    assert anon.delete("/v1/jobs/job1").status_code == 200
    assert Job.objects.count() == 0
    assert Run.objects.count() == 0


def test_bad_credentials_are_still_refused(db):
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS, HTTP_AUTHORIZATION="Bearer dkw_wrong")

    assert client.get("/v1/jobs").status_code == 401
