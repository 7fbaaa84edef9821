"""End to end: a real prefork agent counts what it runs; /metrics shows it after a heartbeat."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import pytest

from jobs.dispatch import node_queue
from jobs.models import Agent, Execution
from tests.e2e.helpers import create, finished
from tests.harness import wait_for
from tests.web.metrics.conftest import samples, scrape, value

pytestmark = pytest.mark.e2e

AGENT = "agent-m"


def run_and_wait(api, job: str, n: int) -> None:
    assert api.post(f"/v1/jobs/{job}/run").status_code == 202
    wait_for(finished(job, n), timeout=30, what=f"run {n} of {job}")


def counted(api, job: str, **expected: float):
    """The scrape once the agent's snapshot shows `expected` executions of `job` by status."""

    def check():
        metrics = scrape(api)
        got = {
            s.labels["status"]: s.value
            for s in samples(
                metrics, "dkronweb_executions", "dkronweb_executions_total", agent=AGENT, job=job
            )
        }
        return metrics if got == expected else None

    return wait_for(check, timeout=20, interval=0.3, what=f"{job} counted as {expected}")


def test_a_prefork_agents_executions_reach_metrics(cluster, api, tmp_path: Path):
    proc = cluster.agent(AGENT, pool="prefork", concurrency=2)
    marker = tmp_path / "ok"
    create(api, "flaky", f"test -e {marker}")
    create(api, "pair", "sleep 1")

    run_and_wait(api, "flaky", 1)
    run_and_wait(api, "flaky", 2)
    marker.touch()
    for n in (3, 4, 5):
        run_and_wait(api, "flaky", n)
    assert [e.status for e in Execution.objects.filter(job_name="flaky").order_by("id")] == [
        "failed",
        "failed",
        "success",
        "success",
        "success",
    ]
    # Two runs at once: each prefork child runs one and counts it in its own file.
    api.post("/v1/jobs/pair/run")
    api.post("/v1/jobs/pair/run")
    wait_for(finished("pair", 2), timeout=30, what="both pair runs")

    metrics = counted(api, "flaky", success=3, failed=2)
    metrics = counted(api, "pair", success=2)
    d = "dkronweb_execution_duration_seconds"
    assert value(metrics, d, f"{d}_count", agent=AGENT, job="flaky") == 5
    assert value(metrics, d, f"{d}_count", agent=AGENT, job="pair") == 2
    assert value(metrics, d, f"{d}_sum", agent=AGENT, job="pair") >= 2.0
    assert value(metrics, d, f"{d}_bucket", agent=AGENT, job="pair", le="0.5") == 0
    assert value(metrics, "dkronweb_broker_up") == 1
    assert value(metrics, "dkronweb_queue_depth", queue=node_queue(AGENT)) == 0
    states = {s.labels["state"]: s.value for s in metrics["dkronweb_agents"].samples}
    assert states["alive"] == 1

    # The children wrote into the agent instance's private directory.
    agent = Agent.objects.get(name=AGENT)
    directory = Path(tempfile.gettempdir()) / f"dkronweb-metrics-{agent.instance_id}"
    files = {p.name for p in directory.glob("counter_*.db")}
    assert len(files) >= 2, files  # at least the two children that ran the pair

    # Messages waiting for the agent show as the depth of its queue: freeze the agent (its
    # heartbeat keeps it alive for a few seconds), publish, scrape, thaw.
    from dkronweb.celery import app

    proc.signal(signal.SIGSTOP)
    try:
        with app.connection_for_write() as conn, conn.Producer() as producer:
            for _ in range(3):
                producer.publish({"x": 1}, routing_key=node_queue(AGENT), declare=None)
        depth = value(scrape(api), "dkronweb_queue_depth", queue=node_queue(AGENT))
    finally:
        proc.signal(signal.SIGCONT)
    # A consumer blocked in BRPOP may have been handed one before it stopped.
    assert depth is not None and depth >= 2
