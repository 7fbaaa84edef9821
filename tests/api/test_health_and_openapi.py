"""/health (no credentials needed) and the generated OpenAPI document."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db


def test_health_is_200_when_the_database_and_the_broker_answer(anon):
    response = anon.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["database"] == "ok"
    assert body["broker"] == "ok"


def test_health_is_503_and_names_the_broker_when_it_does_not_answer(anon, settings):
    from dkronweb.celery import app

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


def test_the_openapi_document_is_json_and_describes_the_jobs_api(api):
    response = api.get("/v1/openapi.json")

    assert response.status_code == 200
    assert "json" in response["Content-Type"]
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    assert "/v1/jobs" in {p.rstrip("/") for p in document["paths"]}
