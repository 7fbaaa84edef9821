"""A killed agent (kill -9) with real `celery worker` agents (issue 13, items 7 and 9).

- Its reaper kills the job processes it left (a grandchild too) within a couple of seconds,
  closes its running executions saying so, and marks it dead at once.
- From then on no placement picks it, its queued work moves to a live matching agent (or fails
  at once with the reason when the run was for that node), and its node queue is drained.

The agents and the scheduler run with the production dead time and republish delay (20 s and
60 s), so what happens faster than those is the work of the reaper and the sweep, not timing.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest

from scheduler.beat import SWEEP_EVERY
from tests.faults.agent_cli import Broker, celery_worker, job_processes
from tests.faults.services import AGENT_DEAD_AFTER, FaultCluster, Services, report
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


PRODUCTION = {"DKRON_AGENT_DEAD_AFTER": "20", "DKRON_QUEUED_REPUBLISH_AFTER": "60"}


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_kill_9_of_an_agent_kills_its_job_processes_and_the_execution_says_so(
    faults: FaultCluster, services: Services, pool: str
):
    api, db = services.api, services.db
    agent = celery_worker(faults, "rp-a", pool=pool, concurrency=1, **PRODUCTION)
    api.create_job("grandchild", "sh -c 'sleep 45 & wait'", retries=0)
    api.run("grandchild")

    def running():
        rows = [r for r in db.executions("grandchild") if r["status"] == "running"]
        return rows[0] if rows else None

    run = wait_for(running, timeout=30, what="the run")
    wait_for(lambda: len(job_processes(run["id"])) >= 2, timeout=10, what="sh and its sleep")
    time.sleep(1.0)  # a heartbeat or two: the reaper has heard of the pool's children

    killed = time.monotonic()
    os.kill(agent.pid, signal.SIGKILL)  # the agent's main process only, as `kill -9 <pid>`
    wait_for(lambda: not job_processes(run["id"]), timeout=10, interval=0.1, what="no job procs")
    gone_after = time.monotonic() - killed

    def closed():
        [row] = db.rows("SELECT * FROM jobs_execution WHERE id = %s", run["id"])
        return row if row["status"] != "running" else None

    row = wait_for(closed, timeout=15, interval=0.1, what="the execution to be closed")
    closed_after = time.monotonic() - killed
    assert row["status"] == "failed"
    assert row["reason"] == "agent rp-a died; its job processes were killed", row["reason"]
    assert "its reaper killed the job's processes" in row["output"]
    assert db.value("SELECT last_heartbeat FROM jobs_agent WHERE name = 'rp-a'") is None
    assert api.members()["rp-a"]["statusText"] == "failed"
    assert gone_after < 5.0, gone_after
    assert closed_after < 8.0, closed_after
    report(f"agent-reaper-{pool}", processes_gone_after=gone_after, closed_after=closed_after)


def _queued_on(db, node: str) -> list[dict]:
    return db.rows(
        "SELECT id, job_name, placement FROM jobs_execution WHERE status = 'queued' "
        "AND node_name = %s ORDER BY id",
        node,
    )


@pytest.mark.parametrize(
    ("on_broker", "reaper"),
    [("redis", True), ("redis", False), ("rabbitmq", True)],
    ids=["redis-reaper", "redis-heartbeat", "rabbitmq-reaper"],
    indirect=["on_broker"],
)
def test_a_dead_agent_gets_no_work_its_queue_moves_at_once_and_is_drained(
    faults: FaultCluster, services: Services, on_broker: Broker, reaper: bool
):
    """With its reaper the agent is known dead at once; without (a reaper killed too), after
    AGENT_DEAD_AFTER (3 s here). Either way its queued work moves on the next sweep, not
    after QUEUED_REPUBLISH_AFTER (60 s here)."""
    db, api = services.db, on_broker.api
    env = {**PRODUCTION, **on_broker.env}
    if not reaper:
        env.update(DKRON_AGENT_REAPER="false", DKRON_AGENT_DEAD_AFTER=str(AGENT_DEAD_AFTER))
    scheduler = faults.scheduler(**env)
    victim = celery_worker(faults, "dd-v", "--tag", "box=v", "--tag", "grp=g", wait=False,
                           concurrency=1, **env)  # fmt: skip
    celery_worker(faults, "dd-s", "--tag", "box=s", "--tag", "grp=g", concurrency=1, **env)
    faults.wait_registered(victim, "dd-v")
    faults.wait_leader(scheduler)
    # Each agent's only slot is held, so runs queue up on both (least busy first).
    for box in ("v", "s"):
        api.create_job(f"hold-{box}", "sleep 300", schedule="@every 1s", concurrency="forbid",
                       tags={"box": box})  # fmt: skip
    for i in range(3):
        api.create_job(f"any-{i}", "echo ok", schedule="@every 1s")
    api.create_job("grp", "echo ok", schedule="@every 1s", tags={"grp": "g:1"})
    api.create_job("node-v", "echo ok", schedule="@every 2s", tags={"box": "v"})

    def backlog():
        rows = _queued_on(db, "dd-v")
        anys = [r for r in rows if r["placement"] == "any"]
        nodes = [r for r in rows if r["placement"] == "node"]
        return (
            rows if len(anys) >= 4 and nodes and on_broker.queue_length("dkron.node.dd-v") else None
        )

    wait_for(backlog, timeout=60, interval=0.5, what="a backlog queued on dd-v")
    killed_at = db.value("SELECT now()")
    killed = time.monotonic()
    if reaper:
        os.kill(victim.pid, signal.SIGKILL)
    else:
        victim.kill_group()
    stranded = {r["id"]: r for r in _queued_on(db, "dd-v")}

    def cleared():
        return not _queued_on(db, "dd-v") and on_broker.queue_length("dkron.node.dd-v") == 0

    wait_for(cleared, timeout=80, interval=0.2, what="nothing queued on dd-v, its queue drained")
    cleared_after = time.monotonic() - killed
    # No new work goes there: watch for two sweeps and a few dozen fires.
    time.sleep(SWEEP_EVERY + 2)
    late = db.rows(
        "SELECT id, job_name FROM jobs_execution WHERE node_name = 'dd-v' AND queued_at > %s",
        killed_at + timedelta(seconds=cleared_after + 0.5),
    )
    assert late == [], late
    assert _queued_on(db, "dd-v") == [] and on_broker.queue_length("dkron.node.dd-v") == 0

    rows = {
        r["id"]: r
        for r in db.rows("SELECT * FROM jobs_execution WHERE id = ANY(%s)", list(stranded))
    }
    moved = [r for r in rows.values() if r["placement"] == "any"]
    failed = [r for r in rows.values() if r["placement"] == "node"]
    assert moved and all(r["node_name"] == "dd-s" for r in moved), moved
    assert failed and all(r["status"] == "failed" for r in failed), failed
    for row in failed:
        assert row["reason"] == "agent dd-v died before it started this run", row["reason"]
    assert "moved to dd-s" in scheduler.log()
    if reaper:
        [held] = [r for r in db.executions("hold-v") if r["node_name"] == "dd-v"]
        assert held["status"] == "failed" and "died" in held["reason"]

    # A restarted agent of that name gets new work again (and no stale message).
    db.execute("UPDATE jobs_job SET disabled = true WHERE name LIKE 'any-%%' OR name = 'grp'")
    db.execute("UPDATE jobs_job SET disabled = true WHERE name = 'hold-v'")
    restarted = time.monotonic()
    celery_worker(faults, "dd-v", "--tag", "box=v", "--tag", "grp=g", concurrency=1, **env)

    def node_run_after_restart():
        rows = [
            r
            for r in db.executions("node-v")
            if r["status"] == "success" and r["node_name"] == "dd-v"
        ]
        return rows[-1] if rows else None

    wait_for(node_run_after_restart, timeout=40, interval=0.5, what="dd-v to run again")
    db.execute("UPDATE jobs_job SET disabled = true")
    db.execute("UPDATE jobs_execution SET kill_requested = true WHERE status = 'running'")
    bound = 15.0 if reaper else AGENT_DEAD_AFTER + 15.0
    report(
        f"agent-dead-work-moved-{on_broker.name}-{'reaper' if reaper else 'heartbeat'}",
        cleared_after=cleared_after,
        stranded=len(stranded),
        moved=len(moved),
        failed_at_once=len(failed),
        back_after=time.monotonic() - restarted,
    )
    assert cleared_after < bound, f"queued work left on the dead agent for {cleared_after:.1f}s"
