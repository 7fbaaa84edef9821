"""Three schedulers active at once over four shards (DKRON_SCHEDULER_SHARDS=4; issue 15,
item 7): each fires its share, a kill -9 of one hands its shards to the others within the
takeover bound, and no fire time runs twice or is lost (counted from side effects).

The unit tests of the shares, fences and takeover publish are tests/scheduler/test_shards.py.
"""

from __future__ import annotations

import re
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
    report,
    total,
)
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

SHARDS = 4
TAKEOVER_BOUND = LEASE_TTL + 0.5 + 4.0  # lease expiry + a tick + slack for a busy box (5 s idle)


def _shards(services: Services) -> dict[int, int]:
    """shard -> the pid of its unexpired holder."""
    rows = services.db.rows(
        "SELECT name, holder FROM jobs_lease WHERE (name = 'scheduler' OR name LIKE 'scheduler/%%')"
        " AND holder <> '' AND expires_at > now()"
    )
    return {int(r["name"].partition("/")[2] or 0): int(r["holder"].split(":")[1]) for r in rows}


def _fired_by(log: str) -> int:
    return sum(int(n) for n in re.findall(r"fired (\d+) run\(s\)", log))


def test_three_schedulers_share_the_jobs_and_a_killed_ones_shards_move(
    faults: FaultCluster, services: Services, tmp_path: Path
):
    db, api = services.db, services.api
    env = {"DKRON_SCHEDULER_SHARDS": str(SHARDS)}
    schedulers = [faults.scheduler(f"shard-s{i}", **env) for i in (1, 2, 3)]
    [agent] = faults.agents("shard-a", concurrency=8)
    out = tmp_path / "effects"
    out.mkdir()
    names = [f"sh-{i}" for i in range(12)]
    for name in names:
        api.create_job(
            name, f"echo $DKRON_SCHEDULED_AT >> {out}/$DKRON_JOB_NAME", schedule="@every 1s"
        )
    pids = {s.pid for s in schedulers}

    def spread() -> dict[int, int] | None:
        held = _shards(services)
        return held if len(held) == SHARDS and set(held.values()) == pids else None

    held = wait_for(spread, timeout=60, what="the four shards held by the three schedulers")
    time.sleep(5)  # every scheduler fires its share
    for s in schedulers:
        assert _fired_by(s.log()) > 0, f"{s.name} fired nothing:\n{s.log()[-2000:]}"

    # Kill a scheduler that is not the leader (the leader's own takeover is
    # tests/faults/test_scheduler_failover.py): its shards go to the two left.
    victim = next(s for s in schedulers if s.pid != held[0])
    lost = {k for k, pid in held.items() if pid == victim.pid}
    killed = time.monotonic()
    victim.signal(signal.SIGKILL)
    left = pids - {victim.pid}
    wait_for(
        lambda: len(h := _shards(services)) == SHARDS and set(h.values()) <= left,
        timeout=TAKEOVER_BOUND + 10,
        interval=0.1,
        what=f"shard(s) {sorted(lost)} taken by the schedulers left",
    )
    takeover = time.monotonic() - killed
    time.sleep(4)  # fires from the two left
    db.execute("UPDATE jobs_job SET disabled = true")
    drain(db)
    assert_nothing_running(db)
    assert agent.alive() and all(s.alive() for s in schedulers if s is not victim)

    checks = [check_fires(db, name, out / name) for name in names]
    report(
        "scheduler-shards-kill-9",
        takeover=takeover,
        bound=TAKEOVER_BOUND,
        shards_moved=len(lost),
        **{k: total(checks, k) for k in ("window", "effects", "duplicated", "lost")},
    )
    assert takeover < TAKEOVER_BOUND, f"the shards were taken after {takeover:.1f}s"
    for check in checks:
        assert check.duplicated == 0, check
        assert check.lost == 0 and check.missed_count == 0, check  # late, within the grace
        assert check.unexecuted == 0 and check.stray == 0 and check.not_success == 0, check
