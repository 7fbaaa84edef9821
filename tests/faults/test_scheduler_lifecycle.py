"""The scheduler's lifecycle under load, with real processes (issue 13 items 1-4;
docs/scheduler.md; the unit tests are tests/scheduler/test_scheduler_lifecycle.py):

1. SIGTERM at random points of many ticks: every stop ends within the bound, cleanly (not by
   the watchdog), releases the lease and leaves nothing committed unpublished;
2. a tick far longer than the lease TTL (a big catch-up batch) with a standby running: the
   leader keeps the lease, the standby never becomes active;
3. the catch-up backlog is published at CATCHUP_RATE while an on-time job stays on time;
4. a leader killed right after committing a batch it never published: the new leader
   publishes it as its first act, within about TTL + 1 s, and says how many.

Jobs target a phantom agent (a live row nobody consumes for), so the load is the scheduler's
own: the executions stay queued once published, and `published_at` tells when they were (the
sweep's republish of lost messages is pushed out of the way, NO_SWEEP_REPUBLISH, except in the
takeover test, where it is the behaviour compared against).
"""

from __future__ import annotations

import os
import random
import re
import signal
import time

import pytest

from tests.faults.services import (
    LEASE_TTL,
    FaultCluster,
    Services,
    report,
)
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("DKRON_TEST_SEED", "1313"))
STOP_TIMEOUT = 6.0  # the scheduler's own watchdog (DKRON_SCHEDULER_STOP_TIMEOUT)
STOP_BOUND = STOP_TIMEOUT + 2.0  # the process must be gone by then, watchdog or not
PHANTOM = "phantom"
NO_SWEEP_REPUBLISH = {"DKRON_QUEUED_REPUBLISH_AFTER": "3600"}


def phantom_agent(services: Services) -> None:
    """A live agent row whose queue nobody reads: every fire is published and stays queued."""
    services.db.execute(
        "INSERT INTO jobs_agent (name, instance_id, tags, address, port, version, concurrency, "
        'running, started_at, last_heartbeat, "left", leaving, metrics) VALUES '
        "(%s, 'x', '{\"role\": \"dkron\"}', '', 0, '', 1000, 0, now(), "
        "now() + interval '1 day', false, false, '{}')",
        PHANTOM,
    )


def create_jobs(services: Services, prefix: str, n: int, **fields) -> None:
    client = services.api.client
    for i in range(n):
        body = {
            "name": f"{prefix}-{i}",
            "schedule": "@every 1s",
            "executor": "shell",
            "executor_config": {"command": "true"},
            **fields,
        }
        response = client.post("/v1/jobs", json=body)
        assert response.status_code in (200, 201), response.text


def holder(services: Services) -> str:
    return str(
        services.db.value(
            "SELECT holder FROM jobs_lease WHERE name = 'scheduler' AND expires_at > now()"
        )
        or ""
    )


def unpublished(services: Services) -> int:
    """Queued executions of scheduled runs committed and never published (no later slot)."""
    return int(
        services.db.value(
            "SELECT count(*) FROM jobs_execution e JOIN jobs_run r ON r.id = e.run_id "
            "WHERE e.status = 'queued' AND e.published_at IS NULL AND e.not_before IS NULL "
            "AND r.trigger IN ('schedule', 'catchup')"
        )
    )


def test_sigterm_at_random_points_of_ticks_under_load(faults: FaultCluster, services: Services):
    rng = random.Random(SEED)
    print(f"\nseed {SEED} (DKRON_TEST_SEED)")
    phantom_agent(services)
    create_jobs(services, "load", 200)
    env = {
        "DKRON_FIRE_BATCH": "50",
        "DKRON_SCHEDULER_STOP_TIMEOUT": str(STOP_TIMEOUT),
        **NO_SWEEP_REPUBLISH,
    }
    stops: list[float] = []
    for round_ in range(8):
        proc = faults.scheduler(f"scheduler-{round_}", **env)
        faults.wait_leader(proc)
        wait_for(lambda p=proc: "fired " in p.log(), timeout=30, what="a fire")
        time.sleep(rng.uniform(0.0, 1.5))  # anywhere in a tick (busy most of the time)
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        try:
            code = proc.popen.wait(timeout=STOP_BOUND + 20)
        except Exception:
            pytest.fail(f"round {round_}: the scheduler did not stop:\n{proc.log()[-3000:]}")
        took = time.monotonic() - started
        stops.append(took)
        assert took < STOP_BOUND, f"round {round_}: stopped in {took:.1f}s"
        assert code == 0, f"round {round_}: exit {code} (watchdog?)\n{proc.log()[-3000:]}"
        assert holder(services) == "", f"round {round_}: lease still held"
        left = unpublished(services)
        assert left == 0, f"round {round_}: {left} committed execution(s) never published"
    report("scheduler_sigterm", seed=SEED, rounds=len(stops), max_stop=max(stops))


def test_a_tick_longer_than_the_lease_keeps_one_leader(faults: FaultCluster, services: Services):
    phantom_agent(services)
    # One transaction of ~3,300 catch-up fires: twice the 3 s lease TTL or more here.
    env = {
        "DKRON_FIRE_BATCH": "4000",
        "DKRON_MISFIRE_GRACE": "5",
        "DKRON_CATCHUP_RATE": "0",
        **NO_SWEEP_REPUBLISH,
    }
    create_jobs(services, "cu", 60, misfire_policy="run_all", disabled=True)
    first = faults.scheduler("scheduler-1", **env)
    faults.wait_leader(first)
    second = faults.scheduler("scheduler-2", **env)
    wait_for(lambda: "beat: Starting" in second.log(), timeout=30, what="scheduler-2 to start")
    time.sleep(1.0)
    leader = holder(services)
    changes = services.db.value("SELECT changes FROM jobs_lease WHERE name = 'scheduler'")
    services.db.execute(
        "UPDATE jobs_job SET disabled = false, "
        "next_run = date_trunc('second', now()) - interval '60 seconds', "
        "anchor = date_trunc('second', now()) - interval '60 seconds' WHERE name LIKE 'cu-%%'"
    )
    started = time.monotonic()
    holders = set()
    while time.monotonic() - started < 40:
        holders.add(holder(services))
        catchups = services.db.value("SELECT count(*) FROM jobs_run WHERE trigger = 'catchup'")
        if catchups >= 60 * 50 and time.monotonic() - started > 2 * LEASE_TTL:
            break
        time.sleep(0.1)
    took = re.findall(r"fired (\d+) run\(s\)", first.log())
    after = services.db.value("SELECT changes FROM jobs_lease WHERE name = 'scheduler'")
    report("scheduler_long_tick", catchups=catchups, seconds=time.monotonic() - started)
    assert catchups >= 60 * 50, f"only {catchups} catch-up runs; first fired {took}"
    assert holders <= {leader}, f"the lease changed hands: {holders}"
    assert after == changes
    assert "is now active" not in second.log()
    assert "lost the lease" not in first.log()


def test_catch_up_drains_at_the_rate_while_on_time_fires_stay_on_time(
    faults: FaultCluster, services: Services
):
    rate = 40.0
    phantom_agent(services)
    env = {"DKRON_CATCHUP_RATE": str(rate), "DKRON_MISFIRE_GRACE": "5", **NO_SWEEP_REPUBLISH}
    create_jobs(services, "cu", 20, misfire_policy="run_all", disabled=True)
    create_jobs(services, "on-time", 1)
    proc = faults.scheduler("scheduler-1", **env)
    faults.wait_leader(proc)
    services.db.execute(
        "UPDATE jobs_job SET disabled = false, "
        "next_run = date_trunc('second', now()) - interval '60 seconds', "
        "anchor = date_trunc('second', now()) - interval '60 seconds' WHERE name LIKE 'cu-%%'"
    )
    expected = 20 * 55  # about 60 missed seconds each, less the grace

    def drained() -> bool:
        waiting = services.db.value(
            "SELECT count(*) FROM jobs_execution WHERE not_before IS NOT NULL "
            "AND published_at IS NULL"
        )
        done = services.db.value(
            "SELECT count(*) FROM jobs_execution e JOIN jobs_run r ON r.id = e.run_id "
            "WHERE r.trigger = 'catchup' AND e.published_at IS NOT NULL"
        )
        return waiting == 0 and done >= expected

    wait_for(drained, timeout=expected / rate + 30, interval=0.5, what="the catch-up to drain")
    span, n = services.db.rows(
        "SELECT extract(epoch FROM max(e.published_at) - min(e.published_at)) AS span, "
        "count(*) AS n FROM jobs_execution e JOIN jobs_run r ON r.id = e.run_id "
        "WHERE r.trigger = 'catchup'"
    )[0].values()
    measured = (n - 1) / max(float(span), 0.001)  # all at once: "infinitely" fast
    lags = [
        float(row["lag"])
        for row in services.db.rows(
            "SELECT extract(epoch FROM e.published_at - e.scheduled_at) AS lag "
            "FROM jobs_execution e JOIN jobs_run r ON r.id = e.run_id JOIN jobs_job j "
            "ON j.id = r.job_id WHERE j.name = 'on-time-0' AND r.trigger = 'schedule' "
            "AND e.published_at IS NOT NULL ORDER BY e.scheduled_at"
        )
    ]
    lags.sort()
    p90 = lags[int(len(lags) * 0.9) - 1]
    report("scheduler_catchup_rate", n=n, rate=rate, measured=measured, on_time_p90=p90)
    assert 0.6 * rate <= measured <= 1.2 * rate, f"published at {measured:.1f}/s"
    assert len(lags) >= n / rate * 0.8
    assert p90 < 1.5, f"on-time publish lag p90 {p90:.2f}s: {lags[-10:]}"
    assert "catch-up run(s) given publish slots" in proc.log()


def test_a_new_leader_publishes_what_the_killed_one_left_at_once(
    faults: FaultCluster, services: Services
):
    db = services.db
    phantom_agent(services)
    create_jobs(services, "left", 200)
    first = faults.scheduler("scheduler-1")
    faults.wait_leader(first)
    second = faults.scheduler("scheduler-2")
    wait_for(lambda: "beat: Starting" in second.log(), timeout=30, what="scheduler-2 to start")
    wait_for(lambda: "fired 200 run(s)" in first.log(), timeout=30, what="full batches")
    time.sleep(2.0)
    # The leader committed a batch and died before publishing it: stop it, forget that its
    # latest batch was published, then kill it. "Latest" is relative to the newest queued
    # execution, not to now(): on a loaded machine the last tick may be seconds old.
    first.signal(signal.SIGSTOP)
    time.sleep(0.2)
    left = [
        row["id"]
        for row in db.rows(
            "UPDATE jobs_execution SET published_at = NULL WHERE status = 'queued' "
            "AND queued_at > (SELECT max(queued_at) FROM jobs_execution) - interval '1 second' "
            "RETURNING id"
        )
    ]
    counter = (
        "SELECT coalesce(max(value), 0) FROM jobs_clustercounter "
        "WHERE name = 'scheduler_republished:takeover'"
    )
    counted_before = db.value(counter)
    killed_at = db.value("SELECT now()")
    first.signal(signal.SIGKILL)
    assert len(left) >= 100, len(left)

    def all_published() -> bool:
        return not db.value(
            "SELECT count(*) FROM jobs_execution WHERE id = ANY(%s) AND published_at IS NULL",
            left,
        )

    wait_for(all_published, timeout=30, interval=0.1, what="the left executions to be published")
    last = db.value("SELECT max(published_at) FROM jobs_execution WHERE id = ANY(%s)", left)
    delay = (last - killed_at).total_seconds()
    found = re.search(
        r"republished (\d+) execution\(s\) left unpublished by the previous scheduler",
        second.log(),
    )
    counted = db.value(counter) - counted_before
    report("scheduler_takeover_republish", left=len(left), delay=delay)
    # Lease expiry (TTL from its last renewal, before the kill) + a standby tick + slack.
    assert delay <= LEASE_TTL + 2.0, f"published {delay:.1f}s after the kill"
    assert found and int(found.group(1)) >= len(left), second.log()[-2000:]
    assert counted >= len(left)


def test_a_leader_stopped_past_its_lease_fires_nothing_when_it_resumes(
    faults: FaultCluster, services: Services
):
    """SIGSTOP the leader for longer than the TTL: the standby takes over; after SIGCONT the
    old leader's renewal or fence fails and it never fires again (no overlap)."""
    phantom_agent(services)
    create_jobs(services, "stop", 100)
    first = faults.scheduler("scheduler-1", **NO_SWEEP_REPUBLISH)
    faults.wait_leader(first)
    second = faults.scheduler("scheduler-2", **NO_SWEEP_REPUBLISH)
    wait_for(lambda: "beat: Starting" in second.log(), timeout=30, what="scheduler-2 to start")
    wait_for(lambda: "fired 100 run(s)" in first.log(), timeout=30, what="full batches")
    first.signal(signal.SIGSTOP)
    faults.wait_leader(second, timeout=LEASE_TTL + 10)
    time.sleep(1.0)
    mark = len(first.log())
    first.signal(signal.SIGCONT)
    time.sleep(LEASE_TTL + 2.0)
    resumed = first.log()[mark:]
    assert "lost the lease" in resumed or "is now standby" in resumed, resumed[-3000:]
    assert "fired " not in resumed, resumed[-3000:]
    assert f":{second.pid}:" in holder(services)
    duplicates = services.db.value(
        "SELECT count(*) FROM (SELECT job_id, scheduled_at FROM jobs_run "
        "WHERE scheduled_at IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) d"
    )
    assert duplicates == 0
    report("scheduler_sigstop", resumed_lines=resumed.count("\n"))
