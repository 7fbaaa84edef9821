"""Helpers shared by the API tests: Dkron-shaped job bodies, users, ORM-made executions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from jobs.models import Agent, Execution, Job, Run
from web.api.auth import token_create

ZERO_TIME = "0001-01-01T00:00:00Z"
JSON_ERRORS = "application/json"  # the Accept the test clients send: errors as JSON (conftest)
PASSWORD = "s3cret-pass"


def job_body(name: str = "job1", **fields: Any) -> dict[str, Any]:
    """A minimal valid Dkron shell job; keyword arguments add or replace fields."""
    body: dict[str, Any] = {
        "name": name,
        "schedule": "@every 1m",
        "executor": "shell",
        "executor_config": {"command": "echo hello"},
    }
    body.update(fields)
    return body


def http_body(name: str = "ping", **fields: Any) -> dict[str, Any]:
    body = job_body(
        name, executor="http", executor_config={"method": "GET", "url": "http://example.com/"}
    )
    body.update(fields)
    return body


def create(client: APIClient, name: str = "job1", **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", job_body(name, **fields), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def now() -> datetime:
    return datetime.now(UTC)


def assert_error(response: Any, status: int) -> dict[str, Any]:
    """The JSON error a client asking for JSON gets: {"error": "...", "details": {...}} with
    the given status (without Accept: application/json the body is the error text alone)."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("details"), dict), body
    return body


def make_user(username: str, *perms: str, **extra: Any) -> Any:
    """A user holding the named `jobs.*` permissions (codenames without the app label)."""
    user = get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)
    for codename in perms:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="jobs", codename=codename)
        )
    for key, value in extra.items():
        setattr(user, key, value)
    user.save()
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


def client_for(user: Any) -> APIClient:
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=user, name='t')[1]}")
    return client


def add_execution(
    job_name: str,
    *,
    status: str = "queued",
    output: str = "",
    run: Run | None = None,
    node: str = "node-a",
    attempt: int = 1,
    started: datetime | None = None,
    finished: datetime | None = None,
) -> Execution:
    """An execution row in the given state (and its run unless one is given)."""
    job = Job.objects.get(name=job_name)
    active = status in ("queued", "running")
    if run is None:
        run = Run.objects.create(
            job=job,
            trigger=Run.Trigger.MANUAL,
            snapshot={"retries": 0},
            finished=not active,
            status="" if active else status,
        )
    if status != "queued" and started is None:
        started = now() - timedelta(seconds=5)
    if not active and finished is None:
        finished = now()
    return Execution.objects.create(
        run=run,
        job=job,
        job_name=job.name,
        node_name=node,
        attempt=attempt,
        status=status,
        success=status == "success",
        output=output,
        started_at=started,
        finished_at=finished,
        final=not active,
    )


def add_agent(name: str, *, heartbeat_age: float = 0.0, left: bool = False, **kw: Any) -> Agent:
    return Agent.objects.create(
        name=name,
        tags=kw.pop("tags", {"role": "dkron", "server": "true"}),
        address=kw.pop("address", "10.0.0.1"),
        port=kw.pop("port", 8946),
        last_heartbeat=now() - timedelta(seconds=heartbeat_age),
        started_at=now() - timedelta(hours=1),
        left=left,
        **kw,
    )
