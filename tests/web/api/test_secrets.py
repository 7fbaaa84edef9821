"""Write-only secrets through /v1: env and header values are masked in every response, a job
read and written back unchanged keeps its stored secrets, and a new value replaces one."""

from __future__ import annotations

import json

import pytest

from jobs.models import Job
from tests.web.api.helpers import job_body

pytestmark = pytest.mark.django_db

SHELL = {"command": "env", "env": "DB_PASSWORD=hunter2-db,LOG_LEVEL=debug"}
HTTP = {
    "method": "GET",
    "url": "http://example.com/",
    "headers": '["Authorization: Bearer t0ken-http", "Accept: text/plain"]',
}
SECRETS = ("hunter2-db", "t0ken-http")


def put(api, name: str, executor: str, config: dict):
    return api.post(
        "/v1/jobs", job_body(name, executor=executor, executor_config=config), format="json"
    )


def no_secret_in(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_responses_mask_env_and_header_values_and_keep_the_names(api):
    created = put(api, "with-env", "shell", SHELL)
    assert created.status_code == 201
    assert created.json()["executor_config"]["env"] == "DB_PASSWORD=********,LOG_LEVEL=********"
    put(api, "with-headers", "http", HTTP)

    shown = api.get("/v1/jobs/with-headers").json()["executor_config"]["headers"]
    assert json.loads(shown) == ["Authorization: ********", "Accept: ********"]
    no_secret_in(api.get("/v1/jobs").content.decode())
    no_secret_in(api.get("/v1/jobs/with-env").content.decode())


@pytest.mark.parametrize(("executor", "config"), [("shell", SHELL), ("http", HTTP)])
def test_a_job_read_and_written_back_unchanged_keeps_its_secrets(api, executor, config):
    put(api, "job", executor, config)
    before = Job.objects.get(name="job").executor_config

    body = api.get("/v1/jobs/job").json()
    response = api.post("/v1/jobs", body, format="json")

    assert response.status_code in (200, 201), response.content
    no_secret_in(response.content.decode())
    assert Job.objects.get(name="job").executor_config == before


def test_a_new_value_replaces_the_secret_and_the_masked_ones_stay(api):
    put(api, "job", "shell", SHELL)
    body = api.get("/v1/jobs/job").json()
    body["executor_config"]["env"] = "DB_PASSWORD=new-pass,LOG_LEVEL=********"

    api.post("/v1/jobs", body, format="json")

    stored = Job.objects.get(name="job").executor_config["env"]
    assert stored == "DB_PASSWORD=new-pass,LOG_LEVEL=debug"
