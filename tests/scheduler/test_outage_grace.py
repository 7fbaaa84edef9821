"""After a database outage, agents are not declared dead before they could heartbeat again.

Nobody can write a heartbeat while the database is down. Without a grace, the scheduler's
first ticks after the outage would see every agent as dead: fires failed with "no target
nodes" and live runs closed as "agent stopped responding" (found by tests/faults).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError

from jobs.models import Agent, Execution
from jobs.services import agents
from jobs.services.jobs import job_upsert
from jobs.services.maintenance import sweep
from jobs.services.runs import run_now
from scheduler.beat import JobScheduler

DEAD_AFTER = 20.0


@pytest.fixture(autouse=True)
def no_outage(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    settings.DKRON = {**settings.DKRON, "AGENT_DEAD_AFTER": DEAD_AFTER}
    saved = agents._outage
    agents._outage = agents._Outage()
    yield
    agents._outage = saved


def alive(now: datetime) -> list[str]:
    return [n.name for n in agents.alive_nodes(now=now)]


def test_heartbeats_fresh_when_the_database_went_away_count_until_the_agents_could_renew(db):
    t0 = datetime.now(UTC)
    Agent.objects.create(name="a", tags={}, last_heartbeat=t0)
    assert alive(t0 + timedelta(seconds=60)) == []  # no outage: the plain rule

    agents.database_unreachable(last_ok=t0, now=t0 + timedelta(seconds=1))
    back = t0 + timedelta(seconds=60)
    assert alive(back) == ["a"]  # still down for the scheduler (its first good tick)
    agents.database_reachable(now=back)
    assert alive(back + timedelta(seconds=DEAD_AFTER - 1)) == ["a"]
    assert alive(back + timedelta(seconds=DEAD_AFTER + 1)) == []  # it had its chance

    # An agent already dead before the outage stays dead.
    Agent.objects.create(name="old", tags={}, last_heartbeat=t0 - timedelta(seconds=60))
    assert "old" not in alive(back)


def test_the_sweep_does_not_close_a_live_run_right_after_an_outage(transactional_db):
    now = datetime.now(UTC)
    Agent.objects.create(name="n1", tags={"server": "true"}, last_heartbeat=now, concurrency=4)
    data = {
        "name": "long",
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": "sleep 1"},
    }
    run_now(job=job_upsert(data=data)[0])
    before_outage = now - timedelta(seconds=1)
    Execution.objects.update(status="running", heartbeat_at=before_outage)
    agents.database_unreachable(last_ok=now)
    after = now + timedelta(seconds=60)
    agents.database_reachable(now=after)
    assert sweep(now=after).closed == 0
    assert sweep(now=after + timedelta(seconds=DEAD_AFTER + 1)).closed == 1


def test_a_scheduler_tick_that_fails_on_the_database_starts_the_grace(db, monkeypatch):
    scheduler = JobScheduler(app=__import__("dkronweb").celery_app, lazy=True)

    def down(tick_max: float) -> float:
        raise OperationalError("the database is restarting")

    monkeypatch.setattr(scheduler, "_tick", down)
    scheduler.tick()
    assert agents._outage.last_ok == scheduler.last_ok and agents._outage.recovered is None
    monkeypatch.setattr(scheduler, "_tick", lambda tick_max: 0.5)
    assert scheduler.tick() == 0.5
    assert agents._outage.recovered == scheduler.last_ok
