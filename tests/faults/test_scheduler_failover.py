"""Kill -9 the active scheduler while a standby runs: it takes over within seconds, no fire
time runs twice (counted from side effects), and the fire times missed during the takeover
follow each job's misfire_policy.

The misfire grace is shortened to 1.5 s, below the takeover time (lease TTL 3 s), so the gap
really is a misfire: `skip` drops the missed times, `run_once` runs the latest of them,
`run_all` runs each one. The job's own `missed_count` must match the gap in its side effects.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.faults.services import (
    LEASE_TTL,
    FaultCluster,
    Services,
    assert_nothing_running,
    check_fires,
    drain,
    leader_pid,
    report,
)
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

GRACE = 1.5
TAKEOVER_BOUND = LEASE_TTL + 0.5 + 4.0  # lease expiry + a standby tick + slack for a busy box


def test_killing_the_active_scheduler_hands_over_without_double_fires(
    faults: FaultCluster, services: Services, tmp_path: Path
):
    db, api = services.db, services.api
    grace = {"DKRON_MISFIRE_GRACE": str(GRACE)}
    first = faults.scheduler("scheduler-1", **grace)
    [agent] = faults.agents("fault-a", concurrency=4)
    faults.wait_leader(first)
    second = faults.scheduler("scheduler-2", **grace)
    wait_for(lambda: "beat: Starting" in second.log(), timeout=30, what="scheduler-2 to start")

    out = tmp_path / "effects"
    out.mkdir()
    policies = ("skip", "run_once", "run_all")
    for policy in policies:
        api.create_job(
            f"fo-{policy}",
            f"echo $DKRON_SCHEDULED_AT >> {out}/$DKRON_JOB_NAME",
            schedule="@every 1s",
            misfire_policy=policy,
        )
    wait_for(
        lambda: db.value("SELECT count(*) FROM jobs_execution WHERE status = 'success'") >= 9,
        timeout=30,
        what="fires from scheduler-1",
    )
    assert leader_pid(services) == first.pid

    killed = time.monotonic()
    first.signal(signal.SIGKILL)
    wait_for(
        lambda: leader_pid(services) == second.pid,
        timeout=TAKEOVER_BOUND + 10,
        interval=0.1,
        what="scheduler-2 to take over",
    )
    takeover = time.monotonic() - killed
    time.sleep(4)  # fires from the new leader
    db.execute("UPDATE jobs_job SET disabled = true")
    drain(db)
    assert_nothing_running(db)
    assert agent.alive() and second.alive()

    checks = {policy: check_fires(db, f"fo-{policy}", out / f"fo-{policy}") for policy in policies}
    for check in checks.values():
        print(check)
    report(
        "scheduler-kill-9",
        takeover=takeover,
        bound=TAKEOVER_BOUND,
        **{f"{p}_{k}": v for p, c in checks.items() for k, v in c.numbers().items()},
    )
    assert takeover < TAKEOVER_BOUND, f"takeover took {takeover:.1f}s"
    for check in checks.values():
        assert check.duplicated == 0, check
        assert check.unexecuted == 0 and check.stray == 0 and check.not_success == 0, check
        # Every fire time of the window either ran or was counted as missed by its policy.
        assert check.lost == check.missed_count, check
    run_all, run_once, skip = checks["run_all"], checks["run_once"], checks["skip"]
    assert run_all.lost == 0 and run_all.catchup >= 1, run_all  # every missed time caught up
    assert skip.lost >= 1 and skip.catchup == 0, skip  # the takeover gap is dropped
    assert run_once.catchup >= 1, run_once  # the latest missed time of each gap ran
