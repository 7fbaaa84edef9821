"""Fixtures of the fault tests: private servers for the session, a fresh cluster per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.agent_cli import Broker, broker
from tests.faults.services import FaultCluster, Services, private_services
from tests.harness import require


@pytest.fixture(scope="session")
def fault_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = Path(os.environ.get("DKRON_TEST_LOGS") or tmp_path_factory.mktemp("fault-logs"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def services(fault_logs: Path) -> Iterator[Services]:
    """Private PostgreSQL + Redis + a web process, started once for the whole package."""
    try:
        manager = private_services(fault_logs)
        started = manager.__enter__()
    except FileNotFoundError as exc:
        require(False, f"the fault tests need {exc}")
        raise
    try:
        yield started
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture
def faults(
    services: Services, fault_logs: Path, request: pytest.FixtureRequest
) -> Iterator[FaultCluster]:
    """A clean slate on the private servers and a cluster whose processes stop afterwards."""
    services.ensure_up()
    services.reset()
    log_dir = fault_logs / request.node.name
    log_dir.mkdir(parents=True, exist_ok=True)
    cluster = FaultCluster(services, log_dir)
    try:
        yield cluster
    finally:
        cluster.stop_all()
        services.ensure_up()


@pytest.fixture
def on_broker(
    request: pytest.FixtureRequest, faults: FaultCluster, services: Services
) -> Iterator[Broker]:
    """The fault cluster on the broker a test is parametrized with (indirect: redis or
    rabbitmq; see tests/faults/agent_cli.py)."""
    with broker(request.param, faults, services) as chosen:
        yield chosen
