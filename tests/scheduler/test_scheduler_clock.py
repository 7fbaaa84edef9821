"""The scheduler follows the database's clock, and treats a database stall as an outage.

Found by the fault checker (bench/chaos.py, docs/reliability.md): a scheduler whose host clock
jumped compared its own shifted clock with the agents' heartbeats (every agent looked dead,
every fire failed) and would fire jobs early or late; and after a database *stall* (a hang,
not an error) every agent looked dead because nobody could heartbeat meanwhile.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection

from jobs import timeutil
from jobs.models import Agent, Execution, ExecutionStatus, Run
from jobs.services import agents as agent_services
from jobs.services import lease, runs
from tests.scheduler.helpers import make_job, new_scheduler

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]


def conf(settings, **values) -> None:
    settings.DKRON = {**django_settings.DKRON, **values}


@pytest.fixture(autouse=True)
def local_clock():
    yield
    timeutil.follow(timedelta(0))


def fresh_agent(name: str) -> Agent:
    now = datetime.now(UTC)
    return Agent.objects.create(
        name=name, tags={"role": "dkron"}, last_heartbeat=now, started_at=now, concurrency=4
    )


def test_a_scheduler_whose_clock_jumped_ahead_fires_on_the_database_clock(settings):
    conf(settings, CLOCK_FROM_DATABASE=True, LEASE_TTL=60.0)
    fresh_agent("a1")
    job = make_job("later", schedule="@every 1h")
    due = datetime.now(UTC) + timedelta(seconds=20)
    type(job).objects.filter(pk=job.pk).update(next_run=due, anchor=due)
    scheduler = new_scheduler()
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=40), tick=True):
        scheduler.tick()
        if connection.vendor == "postgresql":
            # The local clock says the job is 20 s late; the database's says 20 s early.
            assert Run.objects.count() == 0
            drift = timeutil.now() - datetime.now(UTC) + timedelta(seconds=40)
            assert abs(drift.total_seconds()) < 5
            # ... and the agent heartbeating now is alive, not 40 s stale.
            assert [n.name for n in agent_services.alive_nodes()] == ["a1"]
        else:
            # SQLite runs on this machine: its clock is the local one, nothing to follow.
            assert lease.database_clock_offset() == timedelta(0)


def test_without_the_setting_the_local_clock_decides(settings):
    conf(settings, CLOCK_FROM_DATABASE=False, LEASE_TTL=60.0)
    fresh_agent("a1")
    job = make_job("later", schedule="@every 1h")
    due = datetime.now(UTC) + timedelta(seconds=20)
    type(job).objects.filter(pk=job.pk).update(next_run=due, anchor=due)
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=40), tick=True):
        new_scheduler().tick()
    assert Run.objects.count() == 1


def test_a_stalled_tick_gives_the_agents_the_outage_grace(settings, monkeypatch):
    conf(settings, AGENT_DEAD_AFTER=1.0, LEASE_TTL=60.0)
    agent = fresh_agent("a1")
    scheduler = new_scheduler()
    scheduler.tick()
    # The agent's last heartbeat landed just before the database hung.
    Agent.objects.filter(pk=agent.pk).update(
        last_heartbeat=datetime.now(UTC) - timedelta(seconds=0.5)
    )
    inner = scheduler._tick

    def stalled(tick_max: float) -> float:
        time.sleep(0.7)  # the database answers only after more than AGENT_DEAD_AFTER / 2
        return inner(tick_max)

    monkeypatch.setattr(scheduler, "_tick", stalled)
    scheduler.tick()
    # 1.2 s old by now, past the dead time: alive only because the stall was an outage.
    assert [n.name for n in agent_services.alive_nodes()] == ["a1"]


@pytest.mark.postgresql  # SQLite's clock is this machine's: a step moves the heartbeats with it
def test_a_clock_step_in_the_middle_of_a_tick_does_not_kill_the_live_agents(settings, monkeypatch):
    """Found by the fault checker in CI: the host clock stepped 13.6 s ahead after the tick had
    read the database's clock and before its sweep. The sweep, judging heartbeats by the stale
    offset, closed every live agent's runs as "agent died" and failed their retries for want of
    a live agent: three fires lost. The sweep reads the database's clock again."""
    conf(settings, CLOCK_FROM_DATABASE=True, LEASE_TTL=60.0, AGENT_DEAD_AFTER=3.0)
    fresh_agent("a1")
    job = make_job("work", schedule="@manually")
    run = Run.objects.create(job=job, snapshot={})
    execution = Execution.objects.create(
        run=run,
        job=job,
        job_name=job.name,
        node_name="a1",
        status=ExecutionStatus.RUNNING,
        started_at=datetime.now(UTC),
        heartbeat_at=datetime.now(UTC),
    )
    scheduler = new_scheduler()
    stepped = time_machine.travel(datetime.now(UTC) + timedelta(seconds=15), tick=True)
    fire = runs.fire_due_jobs

    def fire_then_step(*args, **kwargs):
        report = fire(*args, **kwargs)
        stepped.start()  # the host clock steps now, after the tick followed the database's
        return report

    monkeypatch.setattr(runs, "fire_due_jobs", fire_then_step)
    try:
        scheduler.tick()
    finally:
        stepped.stop()
    assert scheduler.is_leader  # so the tick swept
    execution.refresh_from_db()
    assert (execution.status, execution.reason) == (ExecutionStatus.RUNNING, "")
