"""Agent lifecycle with real `celery worker` agents and the real Celery CLI (issue 13, 6/8/10).

- Celery's node name follows `--node-name` (no `-n`), so `celery status` counts every agent on
  a host and `control -d <name>@<host>` reaches exactly one.
- A stopping agent is `leaving` with its running executions until they end, then `left`.
- `celery control terminate` / `revoke` of a run is recorded as killed at once, with the reason.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults.agent_cli import (
    HOST,
    Broker,
    celery_cli,
    celery_worker,
    inspect_json,
    job_processes,
)
from tests.faults.services import FaultCluster, Services, report
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def _execution(services: Services, job: str, status: str | None = None):
    def check():
        rows = services.db.executions(job)
        rows = [r for r in rows if status is None or r["status"] == status]
        return rows[-1] if rows else None

    return check


def test_celery_node_name_follows_the_agent_name_and_an_explicit_n_wins(
    faults: FaultCluster, services: Services
):
    a = celery_worker(faults, "nn-a", wait=False)
    b = celery_worker(faults, "nn-b", wait=False)
    c = celery_worker(faults, "nn-c", "-n", f"explicit-c@{HOST}", wait=False)
    for proc, name in ((a, "nn-a"), (b, "nn-b"), (c, "nn-c")):
        faults.wait_registered(proc, name)
    # The banner and the ready line name the Celery node.
    assert f"nn-a@{HOST} v" in a.log() and f"nn-a@{HOST} ready." in a.log()
    assert f"nn-b@{HOST} ready." in b.log()
    assert f"explicit-c@{HOST} ready." in c.log()

    status = celery_cli(services, "status", "-t", "5")
    assert "3 nodes online" in status, status
    for node in (f"nn-a@{HOST}", f"nn-b@{HOST}", f"explicit-c@{HOST}"):
        assert f"{node}: OK" in status, status
    assert f"celery@{HOST}" not in status

    # `control -d` reaches one agent, and only that one.
    out = celery_cli(services, "control", "-d", f"nn-b@{HOST}", "-t", "5", "enable_events")
    assert f"nn-b@{HOST}: OK" in out, out
    assert out.count("->") == 1, out
    pong = celery_cli(services, "inspect", "-d", f"nn-a@{HOST}", "-t", "5", "ping")
    assert f"nn-a@{HOST}: OK" in pong and "1 node online" in pong, pong


def test_a_stopping_agent_is_leaving_with_its_runs_until_they_end_then_left(
    faults: FaultCluster, services: Services
):
    api, db = services.api, services.db
    leaver = celery_worker(faults, "lv-a", "--tag", "box=lv", wait=False)
    celery_worker(faults, "lv-b")
    faults.wait_registered(leaver, "lv-a")
    api.create_job("finishing", "sleep 6; echo finished", tags={"box": "lv"})
    api.create_job("elsewhere", "echo here")
    api.run("finishing")
    run = wait_for(_execution(services, "finishing", "running"), timeout=30, what="the run")
    assert run["node_name"] == "lv-a"

    asked = time.monotonic()
    leaver.signal(signal.SIGTERM)  # a warm stop, as systemd or `celery control shutdown` do

    def leaving():
        member = api.members()["lv-a"]
        return member if member["statusText"] == "leaving" else None

    member = wait_for(leaving, timeout=10, interval=0.2, what="lv-a to show as leaving")
    leaving_after = time.monotonic() - asked
    assert member["Status"] == 2  # Serf's StatusLeaving
    assert member["running"] == 1, member
    # It takes no new work: an untagged run goes to the other agent.
    api.run("elsewhere")
    other = wait_for(_execution(services, "elsewhere", "success"), timeout=30, what="elsewhere")
    assert other["node_name"] == "lv-b"
    # Still leaving while the run goes on (the heartbeat carries its real load).
    time.sleep(1.5)
    member = api.members()["lv-a"]
    assert member["statusText"] == "leaving" and member["running"] == 1, member

    done = wait_for(_execution(services, "finishing", "success"), timeout=30, what="the end")
    assert "finished" in done["output"]

    def left():
        member = api.members()["lv-a"]
        return member if member["statusText"] == "left" else None

    member = wait_for(left, timeout=20, interval=0.2, what="lv-a to have left")
    assert member["running"] == 0
    assert not db.value("SELECT leaving FROM jobs_agent WHERE name = 'lv-a'")
    report("agent-leaving", leaving_after=leaving_after, left_after=time.monotonic() - asked)


@pytest.mark.parametrize("on_broker", ["redis", "rabbitmq"], indirect=True)
def test_celery_terminate_and_revoke_are_recorded_as_killed_at_once(
    faults: FaultCluster, services: Services, on_broker: Broker
):
    api, env = on_broker.api, on_broker.env
    node = f"rv-a@{HOST}"
    # prefork: Celery's terminate signals the pool child running the task.
    # (an explicit -n, so this test does not depend on the node-name default)
    celery_worker(faults, "rv-a", "-n", node, pool="prefork", concurrency=1, **env)
    api.create_job("victim", "sh -c 'sleep 45 & wait'; echo never")
    api.run("victim")
    run = wait_for(_execution(services, "victim", "running"), timeout=30, what="the run")
    wait_for(lambda: len(job_processes(run["id"])) >= 2, timeout=10, what="the job's processes")

    def active_task():
        tasks = inspect_json(services, "active", node, env).get(node) or []
        ids = [t["id"] for t in tasks if t.get("type", t.get("name")) == "dkronweb.run_execution"]
        return ids[0] if ids else None

    task_id = wait_for(active_task, timeout=20, interval=0.5, what="celery inspect active")
    asked = time.monotonic()
    out = celery_cli(services, "control", "-d", node, "terminate", "SIGTERM", task_id, env=env)
    assert "terminat" in out.lower(), out

    def closed():
        [row] = services.db.rows("SELECT * FROM jobs_execution WHERE id = %s", run["id"])
        return row if row["status"] != "running" else None

    row = wait_for(closed, timeout=10, interval=0.1, what="the terminated run to be closed")
    terminated_after = time.monotonic() - asked
    assert row["status"] == "killed", row
    assert "terminated by Celery" in row["reason"] and "SIGTERM" in row["reason"], row
    assert "died" not in row["reason"]
    wait_for(lambda: not job_processes(run["id"]), timeout=5, what="the job's processes to go")
    assert terminated_after < 5.0, terminated_after
    assert api.members()["rv-a"]["statusText"] == "alive"

    # revoke before start: one run occupies the only slot, the next waits reserved.
    api.create_job("busy", "sleep 4")
    api.create_job("waiting", "echo ran")
    api.run("busy")
    wait_for(_execution(services, "busy", "running"), timeout=30, what="busy to run")
    api.run("waiting")

    def reserved_task():
        tasks = inspect_json(services, "reserved", node, env).get(node) or []
        return tasks[0]["id"] if tasks else None

    waiting_id = wait_for(reserved_task, timeout=20, interval=0.3, what="a reserved task")
    out = celery_cli(services, "control", "-d", node, "revoke", waiting_id, env=env)
    assert "revok" in out.lower(), out
    wait_for(_execution(services, "busy", "success"), timeout=30, what="busy to end")
    revoked = wait_for(_execution(services, "waiting", "killed"), timeout=10, what="revoked")
    assert "revoked by Celery" in revoked["reason"] and "before it started" in revoked["reason"]
    assert "ran" not in (revoked["output"] or "")
    time.sleep(1)
    assert [r["status"] for r in services.db.executions("waiting")] == ["killed"]
    report(f"celery-terminate-{on_broker.name}", terminated_after=terminated_after)
