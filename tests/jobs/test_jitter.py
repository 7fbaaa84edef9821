"""Jitter (issue 16): each fire starts at a stable offset within the job's window; the fire key
stays the scheduled time. Real database, the clock moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from jobs import timing
from jobs.errors import InvalidJob
from jobs.models import Agent, Job, Run
from jobs.services.jobs import job_toggle, job_upsert
from jobs.services.runs import fire_due_jobs
from tests.factories import agent as make_agent

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


def make_job(**fields) -> Job:
    data = {"executor": "shell", "executor_config": {"command": "true"}, **fields}
    return job_upsert(data=data)[0]


@pytest.fixture
def agent(db) -> Agent:
    return make_agent("node-1")


def test_the_offset_is_stable_within_the_window_and_differs_between_fires():
    job = Job(name="spread", jitter=60.0)
    times = [T0 + timedelta(minutes=i) for i in range(200)]
    offsets = [timing.jitter_offset(job, t) for t in times]
    assert all(timedelta(0) <= o < timedelta(seconds=60) for o in offsets)
    # The same job and time give the same offset (another scheduler, a restart).
    assert offsets == [timing.jitter_offset(Job(name="spread", jitter=60.0), t) for t in times]
    assert len(set(offsets)) > 150  # spread over the window, not a few values
    # Another job with the same schedule starts at other offsets: they do not bunch.
    other = [timing.jitter_offset(Job(name="other", jitter=60.0), t) for t in times]
    assert other != offsets
    assert timing.jitter_offset(Job(name="spread", jitter=0.0), T0) == timedelta(0)


def test_a_jittered_fire_starts_at_its_offset_and_keeps_the_scheduled_time_as_key(agent):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="jittered", schedule="0 * * * * *", jitter=30)
    scheduled = T0 + timedelta(minutes=1)
    offset = timing.jitter_offset(job, scheduled)
    assert job.jitter == 30.0
    assert job.next_run == scheduled + offset
    assert timing.job_next_fire(job) == scheduled  # `next` is the schedule's own time
    if offset > timedelta(milliseconds=1):
        assert fire_due_jobs(now=scheduled).fired == 0  # due, but its start has not come
    report = fire_due_jobs(now=scheduled + offset)
    assert report.fired == 1
    assert Run.objects.get().scheduled_at == scheduled
    job.refresh_from_db()
    following = scheduled + timedelta(minutes=1)
    assert timing.scheduled_next(job) == following
    assert job.next_run == following + timing.jitter_offset(job, following)


def test_without_jitter_nothing_changes(agent):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="plain", schedule="0 * * * * *")
    assert job.next_run == T0 + timedelta(minutes=1) and job.next_scheduled is None
    fire_due_jobs(now=T0 + timedelta(minutes=1))
    job.refresh_from_db()
    assert job.next_run == T0 + timedelta(minutes=2) and job.next_scheduled is None


def test_many_jobs_due_at_one_time_start_spread_over_the_window(agent):
    with time_machine.travel(T0, tick=False):
        for i in range(40):
            make_job(name=f"burst-{i}", schedule="0 0 11 * * *", jitter=60)
    top = T0 + timedelta(hours=1)
    starts = sorted(Job.objects.values_list("next_run", flat=True))
    assert starts[0] >= top and starts[-1] < top + timedelta(minutes=1)
    assert starts[-1] - starts[0] > timedelta(seconds=30)
    # Half way through the window about half of them have fired, each with the hour as key.
    fired = fire_due_jobs(now=top + timedelta(seconds=30)).fired
    assert 5 < fired < 35
    assert set(Run.objects.values_list("scheduled_at", flat=True)) == {top}
    fire_due_jobs(now=top + timedelta(seconds=60))
    assert Run.objects.count() == 40


def test_a_second_scheduler_and_a_restart_fire_the_same_key_once(agent):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="failover", schedule="0 * * * * *", jitter=45)
    start = job.next_run
    assert fire_due_jobs(now=start).fired == 1
    # A scheduler that read the job before the first advanced it, or recomputed it after a
    # restart, gets the same start and key: the conditional move fails, the key is taken.
    scheduled = T0 + timedelta(minutes=1)
    stale = Job(name="failover", jitter=45.0)
    timing.set_next(stale, scheduled)
    Job.objects.filter(pk=job.pk).update(
        next_run=stale.next_run, next_scheduled=stale.next_scheduled
    )
    assert stale.next_run == start
    assert fire_due_jobs(now=start + timedelta(seconds=1)).fired == 0
    assert Run.objects.filter(job=job).count() == 1


def test_after_an_outage_fires_whose_start_has_not_come_wait(agent):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="outage", schedule="@every 10s", jitter=9, misfire_policy="run_all")
    # Down for five minutes: the catch-up runs the missed times; of the fires since the
    # grace began, only those whose start has come run now, the first of the others is next.
    now = T0 + timedelta(minutes=5)
    fire_due_jobs(now=now)
    job.refresh_from_db()
    keys = sorted(Run.objects.filter(job=job).values_list("scheduled_at", flat=True))
    assert keys and all(timing.fire_start(job, k) <= now for k in keys)
    nxt = timing.scheduled_next(job)
    assert nxt is not None and nxt > keys[-1]
    assert job.next_run == timing.fire_start(job, nxt)
    assert job.next_run > now or nxt - keys[-1] == timedelta(seconds=10)


def test_jitter_is_validated(db):
    with pytest.raises(InvalidJob) as err:
        make_job(name="bad-jitter", schedule="@every 30s", jitter=30)
    assert "jitter" in err.value.details
    with pytest.raises(InvalidJob) as err:
        make_job(name="bad-jitter", schedule="0 * * * * *", jitter=90000)
    assert "jitter" in err.value.details
    assert not Job.objects.filter(name="bad-jitter").exists()
    assert make_job(name="ok-jitter", schedule="@every 30s", jitter=29.5).jitter == 29.5
    # Cron: the shortest gap between its fires (9:00 and 10:00, then 23 h to the next day).
    for schedule, jitter in (("* * * * * *", 3600), ("0 0 9,10 * * *", 3600), ("@hourly", 5400)):
        with pytest.raises(InvalidJob) as err:
            make_job(name="bad-jitter", schedule=schedule, jitter=jitter)
        assert "shortest gap" in err.value.details["jitter"]
    assert make_job(name="ok-cron", schedule="0 0 9,10 * * *", jitter=3599).jitter == 3599


def test_enabling_and_changing_the_jitter_move_the_start(agent):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="toggle", schedule="0 * * * * *", disabled=True)
        job = job_toggle(job=job)
        assert job.next_run == T0 + timedelta(minutes=1)
        job = make_job(name="toggle", schedule="0 * * * * *", jitter=50)
        scheduled = T0 + timedelta(minutes=1)
        assert job.next_run == timing.fire_start(job, scheduled)
        assert timing.scheduled_next(job) == scheduled
        job = make_job(name="toggle", schedule="0 * * * * *", disabled=True, jitter=50)
        job = job_toggle(job=job)
    assert timing.scheduled_next(job) == scheduled
    assert job.next_run == timing.fire_start(job, scheduled)
