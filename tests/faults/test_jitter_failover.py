"""Jitter across a scheduler failover (issue 16 part 4): kill -9 the active scheduler while
jittered jobs fire; the standby takes over and every fire keeps its scheduled time as key and
its offset: none starts before scheduled time + offset, none runs twice, none is lost (counted
from the jobs' own side effects).

The offsets are computed here, in the test, from the job's name and the scheduled time
(`jobs.timing.jitter_offset`): the same function every scheduler uses, so a fire recorded at
another offset would show that a scheduler drew it some other way.
"""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from jobs import timing
from jobs.models import Job
from tests.faults.services import (
    LEASE_TTL,
    FaultCluster,
    Services,
    assert_nothing_running,
    check_fires,
    drain,
    leader_pid,
    report,
    total,
)
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

EVERY, JITTER = 2.0, 1.5
TAKEOVER_BOUND = LEASE_TTL + 0.5 + 4.0
TOLERANCE = timedelta(milliseconds=50)  # clocks of two processes on one machine


def test_jitter_offsets_hold_across_a_scheduler_failover(
    faults: FaultCluster, services: Services, tmp_path: Path
):
    db, api = services.db, services.api
    first = faults.scheduler("jitter-s1")
    [agent] = faults.agents("jitter-a", concurrency=8)
    faults.wait_leader(first)
    second = faults.scheduler("jitter-s2")
    wait_for(lambda: "beat: Starting" in second.log(), timeout=30, what="jitter-s2 to start")

    out = tmp_path / "effects"
    out.mkdir()
    names = [f"jit-{i}" for i in range(6)]
    for name in names:
        body = api.create_job(
            name,
            f"echo $DKRON_SCHEDULED_AT >> {out}/$DKRON_JOB_NAME",
            schedule=f"@every {int(EVERY)}s",
            jitter=f"{JITTER}s",
        )
        assert body["jitter"] == JITTER
    wait_for(
        lambda: db.value("SELECT count(*) FROM jobs_execution WHERE status = 'success'") >= 12,
        timeout=30,
        what="fires from jitter-s1",
    )
    killed = time.monotonic()
    first.signal(signal.SIGKILL)
    wait_for(
        lambda: leader_pid(services) == second.pid,
        timeout=TAKEOVER_BOUND + 10,
        interval=0.1,
        what="jitter-s2 to take over",
    )
    takeover = time.monotonic() - killed
    time.sleep(3 * EVERY)  # fires from the new leader
    db.execute("UPDATE jobs_job SET disabled = true")
    drain(db)
    assert_nothing_running(db)
    assert agent.alive() and second.alive()

    checks = [check_fires(db, name, out / name, every=EVERY) for name in names]
    early, offsets = [], set()
    for name in names:
        job = Job(name=name, jitter=JITTER)
        rows = db.rows(
            "SELECT r.scheduled_at, min(e.queued_at) AS queued FROM jobs_run r "
            "JOIN jobs_job j ON j.id = r.job_id JOIN jobs_execution e ON e.run_id = r.id "
            "WHERE j.name = %s GROUP BY r.scheduled_at",
            name,
        )
        for row in rows:
            start = timing.fire_start(job, row["scheduled_at"])
            offsets.add(start - row["scheduled_at"])
            if row["queued"] < start - TOLERANCE:
                early.append((name, row["scheduled_at"], row["queued"], start))
    report(
        "jitter-scheduler-kill-9",
        takeover=takeover,
        distinct_offsets=len(offsets),
        **{k: total(checks, k) for k in ("window", "effects", "duplicated", "lost")},
    )
    assert not early, f"fired before their offset: {early[:5]}"
    assert len(offsets) > len(names), "the offsets did not spread"
    for check in checks:
        assert check.duplicated == 0 and check.lost == 0, check
        assert check.unexecuted == 0 and check.stray == 0 and check.not_success == 0, check
