"""Agent faults: kill -9 mid-run, SIGTERM mid-run, and an agent frozen past its dead time.

Every bound derives from the shortened heartbeat settings (tests/faults/services.py) and the
scheduler's sweep period; the measured times are printed and appended to artifacts/report.jsonl.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from scheduler.beat import SWEEP_EVERY
from tests.faults.services import (
    AGENT_DEAD_AFTER,
    HEARTBEAT_INTERVAL,
    FaultCluster,
    Services,
    assert_nothing_running,
    drain,
    report,
)
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

# A dead agent's run is closed by the active scheduler's sweep: its heartbeat must be older
# than AGENT_DEAD_AFTER, and the sweep runs every SWEEP_EVERY seconds. Slack for a busy box.
CLOSE_BOUND = AGENT_DEAD_AFTER + SWEEP_EVERY + 4 * HEARTBEAT_INTERVAL + 10.0


def _row(services: Services, execution_id: int) -> dict:
    [row] = services.db.rows("SELECT * FROM jobs_execution WHERE id = %s", execution_id)
    return row


def _running(services: Services, job: str):
    def check():
        rows = [e for e in services.db.executions(job) if e["status"] == "running"]
        return rows[0] if rows else None

    return check


def test_an_agent_killed_mid_run_is_closed_retried_elsewhere_and_forbid_is_not_blocked(
    faults: FaultCluster, services: Services, tmp_path: Path
):
    db, api = services.db, services.api
    scheduler = faults.scheduler()
    procs = dict(zip(("fault-a", "fault-b"), faults.agents("fault-a", "fault-b"), strict=True))
    faults.wait_leader(scheduler)
    effects, lock = tmp_path / "effects", tmp_path / "lock"
    # The first run to get the lock hangs (the victim's); every later one returns at once.
    command = (
        f'echo "$DKRON_SCHEDULED_AT $DKRON_ATTEMPT $DKRON_AGENT_NAME" >> {effects}; '
        f"if mkdir {lock} 2>/dev/null; then sleep 300; fi"
    )
    api.create_job(
        "crash",
        command,
        schedule="@every 2s",
        concurrency="forbid",
        retries=1,
        retry_backoff=0.5,
        tags={"server": "true:1"},
    )
    first = wait_for(_running(services, "crash"), timeout=30, what="the first run to start")
    wait_for(lock.exists, timeout=10, what="the shell to take the lock")
    victim_name = first["node_name"]
    [survivor] = [n for n in procs if n != victim_name]

    killed = time.monotonic()
    procs[victim_name].kill_group()
    closed = wait_for(
        lambda: (r := _row(services, first["id"]))["status"] != "running" and r,
        timeout=CLOSE_BOUND + 10,
        what="the dead agent's execution to be closed",
    )
    closed_after = time.monotonic() - killed
    assert closed["status"] == "failed"
    # Its reaper (agent/reaper.py, in a session of its own, so the group kill spares it) closes
    # the run at once; without it the sweep would, once the heartbeat is AGENT_DEAD_AFTER old.
    assert f"agent {victim_name} died while running this execution" in closed["output"]
    assert closed["reason"] == f"agent {victim_name} died; its job processes were killed"
    assert closed_after < CLOSE_BOUND, f"closed after {closed_after:.1f}s > {CLOSE_BOUND}s"

    def retried():
        rows = [e for e in db.executions("crash") if e["run_id"] == first["run_id"]]
        return rows[-1] if rows[-1]["attempt"] == 2 and rows[-1]["status"] == "success" else None

    retry = wait_for(retried, timeout=30, what="the retry to succeed on the other agent")
    retried_after = time.monotonic() - killed
    assert retry["node_name"] == survivor

    # Forbid was holding later fires back while the run hung; the next scheduled fire runs.
    def next_fire():
        later = [
            e
            for e in db.executions("crash")
            if e["run_id"] != first["run_id"] and e["status"] == "success"
        ]
        return later[0] if later else None

    later = wait_for(next_fire, timeout=30, what="the next scheduled fire to run")
    unblocked_after = time.monotonic() - killed
    assert later["scheduled_at"] > first["scheduled_at"]
    assert later["node_name"] == survivor
    skipped = sum(1 for e in db.executions("crash") if e["status"] == "skipped")

    db.execute("UPDATE jobs_job SET disabled = true")
    drain(db)
    assert_nothing_running(db)
    members = api.members()
    assert members[victim_name]["statusText"] == "failed"
    assert members[survivor]["statusText"] == "alive"
    report(
        "agent-kill-9",
        closed_after=closed_after,
        bound=CLOSE_BOUND,
        retried_after=retried_after,
        next_fire_after=unblocked_after,
        skipped_while_hung=skipped,
        lost=0,
        duplicated=0,
    )


def test_sigterm_lets_the_running_execution_finish_and_hands_queued_work_to_another_agent(
    faults: FaultCluster, services: Services, tmp_path: Path
):
    db, api = services.db, services.api
    scheduler = faults.scheduler()
    # Prefork, the production pool: warm shutdown waits for the child running the job.
    first = faults.agent("fault-a", "zone=x", pool="prefork", concurrency=1)
    faults.wait_leader(scheduler)
    api.create_job(
        "warm",
        "sleep 4; echo done on $DKRON_AGENT_NAME",
        tags={"zone": "x:1"},
        retries=0,
    )
    api.run("warm")
    running = wait_for(_running(services, "warm"), timeout=30, what="the first run to start")
    api.run("warm")  # a second run waits in fault-a's queue behind the first
    wait_for(lambda: len(db.executions("warm")) == 2, what="the second run to be queued")
    second = faults.agent("fault-b", "zone=x", wait=False)

    signalled = time.monotonic()
    first.signal(signal.SIGTERM)
    done = wait_for(
        lambda: (r := _row(services, running["id"]))["status"] != "running" and r,
        timeout=30,
        what="the running execution to finish",
    )
    finished_after = time.monotonic() - signalled
    assert done["status"] == "success", done
    assert done["output"] == "done on fault-a\n"
    first.popen.wait(timeout=30)
    exited_after = time.monotonic() - signalled
    assert first.popen.returncode == 0, first.log()[-3000:]

    faults.wait_registered(second, "fault-b")
    [queued] = [e for e in db.executions("warm") if e["id"] != running["id"]]
    moved = wait_for(
        lambda: (r := _row(services, queued["id"]))["status"] == "success" and r,
        timeout=CLOSE_BOUND + 20,
        what="the queued run to complete on fault-b",
    )
    handed_after = time.monotonic() - signalled
    assert moved["node_name"] == "fault-b"
    assert moved["output"] == "done on fault-b\n"
    assert api.members()["fault-a"]["statusText"] == "left"
    drain(db)
    assert_nothing_running(db)
    report(
        "agent-sigterm",
        running_finished_after=finished_after,
        agent_exited_after=exited_after,
        queued_done_elsewhere_after=handed_after,
        lost=0,
        duplicated=0,
    )


def test_an_agent_frozen_past_its_dead_time_rejoins_without_overwriting_its_closed_run(
    faults: FaultCluster, services: Services, tmp_path: Path
):
    db, api = services.db, services.api
    scheduler = faults.scheduler()
    procs = dict(
        zip(
            ("fault-a", "fault-b"),
            [faults.agent("fault-a", "host=a", wait=False), faults.agent("fault-b", "host=b")],
            strict=True,
        )
    )
    faults.wait_registered(procs["fault-a"], "fault-a")
    faults.wait_leader(scheduler)
    effects = tmp_path / "effects"
    command = (
        '[ "$DKRON_ATTEMPT" = 1 ] && sleep 60; '
        f'echo "attempt $DKRON_ATTEMPT on $DKRON_AGENT_NAME" >> {effects}'
    )
    api.create_job("stale", command, retries=1, retry_backoff=0.5, tags={"server": "true:1"})
    api.run("stale")
    first = wait_for(_running(services, "stale"), timeout=30, what="the run to start")
    frozen_name = first["node_name"]
    [other] = [n for n in procs if n != frozen_name]
    frozen = procs[frozen_name]

    stopped = time.monotonic()
    os.killpg(frozen.pid, signal.SIGSTOP)  # the agent, not its job (own session): it sleeps on
    try:
        closed = wait_for(
            lambda: (r := _row(services, first["id"]))["status"] != "running" and r,
            timeout=CLOSE_BOUND + 10,
            what="the frozen agent's execution to be closed",
        )
        closed_after = time.monotonic() - stopped
        assert closed["status"] == "failed"
        assert api.members()[frozen_name]["statusText"] == "failed"

        def retried():
            rows = db.executions("stale")
            return (
                rows[-1] if rows[-1]["attempt"] == 2 and rows[-1]["status"] == "success" else None
            )

        retry = wait_for(retried, timeout=30, what="the retry to succeed elsewhere")
        assert retry["node_name"] == other
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    resumed = time.monotonic()

    wait_for(
        lambda: api.members()[frozen_name]["statusText"] == "alive",
        timeout=10,
        what="the agent to be alive again",
    )
    alive_after = time.monotonic() - resumed
    # Its stale run learns at the next output flush that the row is closed, and stops.
    wait_for(lambda: "finished status=" in frozen.log(), timeout=15, what="the stale run to end")
    time.sleep(1)
    again = _row(services, first["id"])
    for key in ("status", "output", "reason", "finished_at", "success", "node_name"):
        assert again[key] == closed[key], f"{key} overwritten: {closed[key]!r} -> {again[key]!r}"
    assert effects.read_text().splitlines() == [f"attempt 2 on {other}"]  # the stale one died
    assert len(db.executions("stale")) == 2

    api.create_job("after", "echo back on $DKRON_AGENT_NAME", tags={"host": frozen_name[-1]})
    api.run("after")
    wait_for(
        lambda: [e for e in db.executions("after") if e["status"] == "success"],
        timeout=30,
        what="new work on the agent that came back",
    )
    [after] = db.executions("after")
    assert after["node_name"] == frozen_name and after["output"] == f"back on {frozen_name}\n"
    drain(db)
    assert_nothing_running(db)
    assert frozen.alive()
    report(
        "agent-frozen-rejoins",
        closed_after=closed_after,
        alive_again_after=alive_after,
        overwritten=0,
        duplicated=0,
        lost=0,
    )
