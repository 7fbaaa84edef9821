"""/health (no credentials needed) and the generated OpenAPI document."""

from __future__ import annotations

import json

import pytest

from dkronweb.celery import app
from tests.web.api.helpers import add_execution, create

pytestmark = pytest.mark.django_db


def test_health_is_200_when_the_database_and_the_broker_answer(anon):
    from jobs.services.lease import lease_acquire

    assert lease_acquire(holder="sched-1", ttl=60)  # and a scheduler is active
    response = anon.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["database"] == "ok"
    assert body["broker"] == "ok"


def test_health_is_503_and_names_the_broker_when_it_does_not_answer(anon):
    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = anon.get("/health")
    finally:
        app.conf.broker_url = original

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["database"] == "ok"
    assert body["broker"].startswith("error")


@pytest.fixture
def document(api) -> dict:
    response = api.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    return json.loads(response.content)


def test_the_openapi_document_is_json_and_lists_the_dkron_paths(document):
    assert document["openapi"].startswith("3.")
    assert {
        "/v1",
        "/v1/members",
        "/v1/leader",
        "/v1/isleader",
        "/v1/busy",
        "/v1/jobs",
        "/v1/jobs/{name}",
        "/v1/jobs/{name}/run",
        "/v1/jobs/{name}/toggle",
        "/v1/jobs/{name}/executions",
        "/v1/jobs/{name}/executions/{execution_id}",
        "/v1/jobs/{name}/executions/{execution_id}/kill",
    } <= document["paths"].keys()
    assert not [p for p in document["paths"] if p.endswith("/")]


def test_the_openapi_document_uses_dkron_operation_ids(document):
    ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}

    assert {
        "status", "getJobs", "createOrUpdateJob", "createOrUpdateJobPatch", "showJobByName",
        "runJob", "deleteJob", "toggleJob", "getMember", "getLeader", "getIsLeader",
        "listExecutionsByJob", "deleteExecutionsByJob", "showExecutionByID", "busy",
    } <= ids  # fmt: skip


def test_the_documented_job_schema_covers_every_field_the_api_returns(api, document):
    job = create(api, "job1")

    assert set(job) <= set(document["components"]["schemas"]["Job"]["properties"])


def test_the_documented_execution_schema_covers_every_field_the_api_returns(api, document):
    create(api, "job1")
    add_execution("job1", status="success", output="x")
    [execution] = api.get("/v1/jobs/job1/executions").json()

    assert set(execution) <= set(document["components"]["schemas"]["Execution"]["properties"])


def test_the_openapi_document_describes_token_and_basic_authentication(document):
    schemes = document["components"]["securitySchemes"]

    assert schemes["BearerAuth"] == {**schemes["BearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["TokenAuth"]["name"] == "X-Dkron-Token"
    assert any(s.get("scheme") == "basic" for s in schemes.values())
