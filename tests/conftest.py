"""Shared fixtures: API clients with real credentials, and a cluster of real processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.harness import Cluster, reachable, require

# The executors' test servers (Kafka, NATS, Pub/Sub emulators and stand-ins) as fixture plugins,
# available to the executor unit tests and the end-to-end tests alike.
pytest_plugins = [
    "tests.executors.servers_gcppubsub",
    "tests.executors.servers_kafka",
    "tests.executors.servers_nats",
]

_skipped: list[str] = []

JSON_ERRORS = "application/json"  # the Accept of the test clients: errors as JSON, with details


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and report.when in {"setup", "call"}:
        _skipped.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        terminalreporter.write_line(
            f"SKIPPED {len(_skipped)} test(s); CI fails instead of "
            "skipping. See the reasons above (-ra)."
        )


@pytest.fixture(autouse=True)
def no_database_outage() -> Iterator[None]:
    """Every test starts with no database outage noted in this process: a scheduler ticked
    in-process on a test's closed connection must not stretch agent liveness for later tests."""
    from jobs.services import agents

    agents._outage = agents._Outage()
    yield
    agents._outage = agents._Outage()


@pytest.fixture
def admin_user(db):  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", "root@example.com", "rootpass")


@pytest.fixture
def token(admin_user) -> str:  # type: ignore[no-untyped-def]
    from web.api.auth import token_create

    return token_create(user=admin_user, name="tests")[1]


@pytest.fixture
def api(token: str) -> APIClient:
    """An API client sending a Bearer token, as a Dkron client with credentials would, and
    asking for JSON errors (`{"error", "details"}`, see web.api.errors) as the Dkron UI
    does. A request can send another Accept (`HTTP_ACCEPT="*/*"`) for Dkron's plain text."""
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def dkron(token: str) -> APIClient:
    """A Dkron client: the same Bearer token, and no Accept header (Go's net/http sends none),
    so errors come back as Dkron writes them, in plain text."""
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def anon() -> APIClient:
    return APIClient(HTTP_ACCEPT=JSON_ERRORS)


@pytest.fixture(scope="session")
def broker_url() -> str:
    return settings.CELERY_BROKER_URL


@pytest.fixture
def cluster(transactional_db, tmp_path: Path, broker_url: str) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    """Real agents and schedulers (subprocesses) on the test database and Redis db 7."""
    require(
        settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        "PostgreSQL at 127.0.0.1:5432 is needed for multi-process tests",
    )
    require(reachable("127.0.0.1", 6379), "Redis at 127.0.0.1:6379 is needed")
    import redis

    client = redis.Redis.from_url(broker_url)
    client.flushdb()
    log_dir = Path(os.environ.get("DKRON_TEST_LOGS", tmp_path))
    log_dir.mkdir(parents=True, exist_ok=True)
    c = Cluster(log_dir, broker_url)
    try:
        yield c
    finally:
        c.stop_all()
        client.flushdb()
