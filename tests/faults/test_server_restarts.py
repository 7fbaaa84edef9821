"""Restart the broker (Redis) or the database (PostgreSQL) under a stream of per-second fires.

Nothing is restarted but the server: the agents and the scheduler must reconnect on their own.
What the spec promises, and what is asserted:
- every Run row that was created ran exactly once (one successful execution, one line written);
- no fire time has two side effects;
- scheduling resumes, and fire times that fell in the outage were late by less than the misfire
  grace (60 s), so they run late instead of being dropped: no fire time of the window is lost;
- nothing is left queued or running.
Redis keeps nothing on disk, so the restart drops the queued messages: the scheduler's sweep
republishes what stays queued (QUEUED_REPUBLISH_AFTER, shortened here).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.faults.services import (
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

JOBS = 3
DOWN_FOR = 5.0  # longer than AGENT_DEAD_AFTER: heartbeats go stale meanwhile
REDIS_DOWN_FOR = 3.0
WEB_THREADS = 8  # `manage.py serve` runs waitress with 8 threads, each with its connection


def _api_burst(services: Services, n: int = 3 * WEB_THREADS) -> list[int]:
    """Parallel GETs, so that every web thread serves some; returns the error statuses."""

    def get(_: int) -> int:
        return services.api.client.get("/v1/jobs").status_code

    with ThreadPoolExecutor(WEB_THREADS * 2) as pool:
        return [code for code in pool.map(get, range(n)) if code >= 500]


def _stream(
    faults: FaultCluster,
    services: Services,
    tmp_path: Path,
    restart: Callable[[], None],
    fault: str,
    **agent_env: str,
) -> None:
    db, api = services.db, services.api
    scheduler = faults.scheduler()
    agents = faults.agents("fault-a", "fault-b", **agent_env)
    faults.wait_leader(scheduler)
    out = tmp_path / "effects"
    out.mkdir()
    names = [f"tick-{i}" for i in range(JOBS)]
    for name in names:
        api.create_job(
            name,
            f"echo $DKRON_SCHEDULED_AT >> {out}/$DKRON_JOB_NAME",
            schedule="@every 1s",
            tags={"server": "true:1"},  # one node per fire: one line per fire time
        )

    def successes() -> int:
        return int(db.value("SELECT count(*) FROM jobs_execution WHERE status = 'success'"))

    # A run in progress across the outage must finish normally: the agent is alive all along.
    api.create_job("long", f"sleep {DOWN_FOR + 4}; echo done", tags={"server": "true:1"})
    api.run("long")
    wait_for(lambda: successes() >= 3 * JOBS, timeout=30, what="the stream to flow")
    assert [e["status"] for e in db.executions("long")] == ["running"]
    assert _api_burst(services) == []  # every web thread now holds a database connection

    stopped = time.monotonic()
    restart()
    back = time.monotonic()
    before = successes()
    # Recovered: fires run again end to end (scheduler -> broker -> agent -> database).
    wait_for(
        lambda: successes() >= before + 2 * JOBS,
        timeout=60,
        interval=0.2,
        what=f"the stream to resume after the {fault} restart",
    )
    recovery = time.monotonic() - back
    # The web role recovers too: no request fails on a connection the restart broke.
    api_errors = _api_burst(services)
    time.sleep(2)  # a few more fires after the recovery

    db.execute("UPDATE jobs_job SET disabled = true")
    drained = drain(db, timeout=60)  # lost messages are republished by the sweep meanwhile
    assert_nothing_running(db)
    for proc in [scheduler, *agents]:
        assert proc.alive(), f"{proc.name} died:\n{proc.log()[-3000:]}"

    # A clean stop after the restart still marks the agents as left (not failed).
    for proc in agents:
        proc.stop(timeout=20)
    states = {name: m["statusText"] for name, m in api.members().items()}
    # The scheduler, still running, is a member too (it is the leader /v1/leader names).
    assert states == {"fault-a": "left", "fault-b": "left", scheduler.name: "alive"}, states

    [long_run] = db.executions("long")
    assert (long_run["status"], long_run["output"]) == ("success", "done\n"), long_run

    checks = [check_fires(db, name, out / name) for name in names]
    for check in checks:
        print(check)
    numbers = {
        key: total(checks, key)
        for key in ("window", "runs", "effects", "lost", "duplicated", "unexecuted", "stray")
    }
    numbers["not_success"] = total(checks, "not_success")
    report(
        fault,
        **numbers,
        outage=back - stopped,
        recovery=recovery,
        drained_after=drained,
        api_errors=len(api_errors),
    )
    assert numbers["duplicated"] == 0, checks
    assert numbers["unexecuted"] == 0 and numbers["stray"] == 0, checks
    assert numbers["not_success"] == 0, checks
    assert numbers["lost"] == 0, checks  # late by less than the misfire grace: run late
    assert min(c.window for c in checks) >= 8
    assert api_errors == [], f"the API answered {api_errors} after the {fault} restart"


def test_restarting_redis_under_a_stream_of_fires_loses_and_doubles_nothing(
    faults: FaultCluster, services: Services, tmp_path: Path
):
    _stream(
        faults,
        services,
        tmp_path,
        lambda: services.redis.restart(down_for=REDIS_DOWN_FOR),
        "redis-restart",
    )


def test_restarting_postgres_under_a_stream_of_fires_loses_and_doubles_nothing(
    faults: FaultCluster, services: Services, tmp_path: Path
):
    _stream(
        faults,
        services,
        tmp_path,
        lambda: services.pg.restart(down_for=DOWN_FOR),
        "postgres-restart",
        # Production's proportions (heartbeat 5 s, flush 1 s, tick 1 s, dead after 20 s): the
        # scheduler is back before the agents have written a heartbeat again.
        DKRON_HEARTBEAT_INTERVAL="1.5",
        DKRON_OUTPUT_FLUSH_INTERVAL="1.0",
    )
