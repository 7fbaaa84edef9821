"""Agent faults with RabbitMQ as the broker (docs/brokers.md): the private PostgreSQL and web
process of the fault tests, the machine's RabbitMQ (a vhost of its own, never restarted here).

The behaviour is the Redis test's own; on RabbitMQ the killed agent's unacknowledged
messages go back to its queue at once instead of after Redis' visibility timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import test_agent_faults, test_scheduler_failover
from tests.faults.services import FaultCluster, Services
from tests.harness import AMQP_URL, require_rabbitmq

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def on_rabbitmq(services: Services, fault_logs: Path) -> Iterator[Services]:
    require_rabbitmq()
    services.use_broker(AMQP_URL, fault_logs)
    try:
        yield services
    finally:
        services.use_broker(None, fault_logs)


@pytest.fixture
def rabbit_faults(on_rabbitmq: Services, faults: FaultCluster) -> FaultCluster:
    return faults


def test_rabbitmq_an_agent_killed_mid_run_is_closed_and_retried_elsewhere(
    rabbit_faults: FaultCluster, on_rabbitmq: Services, tmp_path: Path
):
    assert on_rabbitmq.env()["DKRON_BROKER_URL"] == AMQP_URL
    test_agent_faults.test_an_agent_killed_mid_run_is_closed_retried_elsewhere_and_forbid_is_not_blocked(
        rabbit_faults, on_rabbitmq, tmp_path
    )
    log = (rabbit_faults.log_dir / "agent-fault-a.log").read_text()
    assert "amqp://guest:**@127.0.0.1:5672" in log


def test_rabbitmq_killing_the_active_scheduler_hands_over_without_double_fires(
    rabbit_faults: FaultCluster, on_rabbitmq: Services, tmp_path: Path
):
    test_scheduler_failover.test_killing_the_active_scheduler_hands_over_without_double_fires(
        rabbit_faults, on_rabbitmq, tmp_path
    )
