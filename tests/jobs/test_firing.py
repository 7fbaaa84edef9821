"""Firing rules with a controlled clock: fire keys, misfires, windows, concurrency, targeting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from jobs.models import Agent, Execution, Job, Run
from jobs.services.jobs import job_upsert
from jobs.services.runs import fire_due_jobs, run_now
from tests.factories import agent as make_agent

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


def make_job(**fields) -> Job:
    data = {"executor": "shell", "executor_config": {"command": "true"}, **fields}
    return job_upsert(data=data)[0]


@pytest.fixture
def agent(db) -> Agent:
    return make_agent("node-1")


def test_a_cron_job_with_a_seconds_field_fires_at_that_second(agent):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="at-seconds", schedule="15 * * * * *")
    assert job.next_run == T0 + timedelta(seconds=15)
    assert fire_due_jobs(now=T0 + timedelta(seconds=14)).fired == 0
    report = fire_due_jobs(now=T0 + timedelta(seconds=15, milliseconds=3))
    assert report.fired == 1
    run = Run.objects.get()
    assert run.scheduled_at == T0 + timedelta(seconds=15)
    job.refresh_from_db()
    assert job.next_run == T0 + timedelta(minutes=1, seconds=15)


def test_the_same_fire_key_never_fires_twice(agent):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="once", schedule="0 * * * * *")
    due = job.next_run
    fire_due_jobs(now=due)
    # A second scheduler that read the job before the first advanced it: the conditional
    # update fails, and even a forced attempt hits the unique (job, scheduled_at) key.
    Job.objects.filter(pk=job.pk).update(next_run=due)
    report = fire_due_jobs(now=due)
    assert report.fired == 0
    assert Run.objects.filter(job=job, scheduled_at=due).count() == 1


def test_a_fire_late_by_less_than_the_grace_period_still_runs(agent):
    with time_machine.travel(T0, tick=False):
        make_job(name="late", schedule="0 * * * * *")
    report = fire_due_jobs(now=T0 + timedelta(minutes=1, seconds=30))
    assert report.fired == 1 and report.missed == 0


def test_a_fire_due_while_the_scheduler_was_at_work_runs_however_late(agent):
    # A top-of-the-hour burst takes the scheduler minutes to fire: the last of it is later
    # than the grace when it is reached, but the scheduler was there when it fell due.
    with time_machine.travel(T0, tick=False):
        make_job(name="busy", schedule="0 1 10 * * *")  # due 10:01:00
    now = T0 + timedelta(minutes=3)
    report = fire_due_jobs(now=now, active_since=T0 + timedelta(seconds=30))
    assert (report.fired, report.missed) == (1, 0)
    assert Run.objects.get().trigger == Run.Trigger.SCHEDULE


def test_a_fire_due_before_the_scheduler_started_is_judged_from_its_start(agent):
    with time_machine.travel(T0, tick=False):
        make_job(name="outage-short", schedule="0 1 10 * * *")  # due 10:01:00
        make_job(name="outage-long", schedule="0 0 10 * * *", misfire_policy="skip")
    Job.objects.filter(name="outage-long").update(next_run=T0 - timedelta(minutes=5))
    # Active since 10:01:30: 10:01:00 was 30 s late then (within the grace) and runs, whatever
    # the time it is reached; 09:55 and 10:00 were already later than the grace: misfires.
    report = fire_due_jobs(now=T0 + timedelta(minutes=4), active_since=T0 + timedelta(seconds=90))
    assert (report.fired, report.missed) == (1, 2)
    assert Run.objects.get().job.name == "outage-short"


@pytest.mark.parametrize(
    ("policy", "fired", "missed"),
    [("skip", 0, 6), ("run_once", 1, 5), ("run_all", 6, 0)],
)
def test_misfire_policy_decides_what_happens_to_missed_fires(agent, policy, fired, missed):
    with time_machine.travel(T0, tick=False):
        job = make_job(
            name=f"mf-{policy.replace('_', '-')}", schedule="0 */5 * * * *", misfire_policy=policy
        )
    # No scheduler ran from 10:00 to 10:32:30: the fires of 10:05 ... 10:30 are all later
    # than the 60 s grace period.
    now = T0 + timedelta(minutes=32, seconds=30)
    report = fire_due_jobs(now=now)
    assert (report.fired, report.missed) == (fired, missed)
    job.refresh_from_db()
    assert job.missed_count == missed
    assert job.next_run == T0 + timedelta(minutes=35)
    if policy == "run_once":
        assert Run.objects.get().scheduled_at == T0 + timedelta(minutes=30)


def test_catch_up_looks_back_no_further_than_the_catchup_window(agent):
    with time_machine.travel(T0, tick=False):
        make_job(
            name="window", schedule="0 * * * * *", misfire_policy="run_all", catchup_window=300
        )
    # Missed: 10:01 ... 10:19 (19 fires); 10:20 is within the grace period and just runs.
    report = fire_due_jobs(now=T0 + timedelta(minutes=20, seconds=30))
    window_fires = 5  # 10:15:30 ... 10:20:30 holds 10:16, 10:17, 10:18, 10:19 and 10:20
    assert report.fired == window_fires
    assert report.missed == 19 - (window_fires - 1)


def test_a_past_at_schedule_is_a_misfire_that_run_once_catches_up(agent):
    at = T0 - timedelta(minutes=10)
    with time_machine.travel(T0, tick=False):
        make_job(name="past-at-skip", schedule=f"@at {at.isoformat()}")
        make_job(name="past-at-once", schedule=f"@at {at.isoformat()}", misfire_policy="run_once")
        report = fire_due_jobs(now=T0)
    assert report.fired == 1
    assert Run.objects.get().job.name == "past-at-once"
    assert Job.objects.get(name="past-at-skip").next_run is None


def test_disabled_jobs_never_fire(agent):
    with time_machine.travel(T0, tick=False):
        make_job(name="off", schedule="* * * * * *", disabled=True)
    assert fire_due_jobs(now=T0 + timedelta(seconds=5)).fired == 0


def test_starts_at_and_expires_at_bound_the_scheduled_runs(agent):
    with time_machine.travel(T0, tick=False):
        job = make_job(
            name="windowed",
            schedule="0 * * * * *",
            starts_at=T0 + timedelta(minutes=5),
            expires_at=T0 + timedelta(minutes=6, seconds=30),
        )
    assert job.next_run == T0 + timedelta(minutes=5)
    fire_due_jobs(now=T0 + timedelta(minutes=5))
    fire_due_jobs(now=T0 + timedelta(minutes=6))
    job.refresh_from_db()
    assert job.next_run is None
    assert Run.objects.filter(job=job).count() == 2


def test_manual_jobs_never_fire_but_run_now(agent):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="manual", schedule="@manually")
    assert job.next_run is None
    run_now(job=job)
    assert Execution.objects.get().status == "queued"


def test_forbid_records_a_skipped_execution_while_the_previous_run_is_going(agent):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="forbid", schedule="* * * * * *", concurrency="forbid")
    fire_due_jobs(now=T0 + timedelta(seconds=1))
    fire_due_jobs(now=T0 + timedelta(seconds=2))
    statuses = list(Execution.objects.order_by("id").values_list("status", flat=True))
    assert statuses == ["queued", "skipped"]
    skipped = Execution.objects.get(status="skipped")
    assert "forbid" in skipped.output
    job.refresh_from_db()
    assert job.status == "running"


def test_replace_kills_the_queued_previous_run(agent):
    with time_machine.travel(T0, tick=False):
        make_job(name="replace", schedule="* * * * * *", concurrency="replace")
    fire_due_jobs(now=T0 + timedelta(seconds=1))
    first = Execution.objects.get()
    Execution.objects.filter(pk=first.pk).update(status="running")
    fire_due_jobs(now=T0 + timedelta(seconds=2))
    first.refresh_from_db()
    assert first.kill_requested
    assert Execution.objects.filter(status="queued").count() == 1


def test_a_run_that_finds_no_matching_node_is_a_failed_execution(agent):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="nowhere", schedule="* * * * * *", tags={"role": "gpu"})
    fire_due_jobs(now=T0 + timedelta(seconds=1))
    execution = Execution.objects.get()
    assert execution.status == "failed"
    assert "no target nodes found" in execution.output
    job.refresh_from_db()
    assert job.status == "failed"


def test_tags_target_matching_nodes_and_a_count_limits_them(db):
    make_agent("web-1", role_x="web")
    make_agent("web-2", role_x="web")
    make_agent("db-1", role_x="db")
    with time_machine.travel(T0, tick=False):
        make_job(name="all-web", schedule="@manually", tags={"role_x": "web"})
        make_job(name="one-web", schedule="@manually", tags={"role_x": "web:1"})
        make_job(name="untagged", schedule="@manually")
    for name in ("all-web", "one-web", "untagged"):
        run_now(job=Job.objects.get(name=name))

    def nodes(job: str) -> list[str]:
        return sorted(Execution.objects.filter(job_name=job).values_list("node_name", flat=True))

    assert nodes("all-web") == ["web-1", "web-2"]
    assert len(nodes("one-web")) == 1 and nodes("one-web")[0].startswith("web-")
    assert nodes("untagged") == ["db-1", "web-1", "web-2"]


def test_a_dead_agent_is_not_targeted(db):
    make_agent("alive-1")
    Agent.objects.create(
        name="dead-1", tags={"role": "dkron"}, last_heartbeat=datetime(2000, 1, 1, tzinfo=UTC)
    )
    with time_machine.travel(T0, tick=False):
        job = make_job(name="alive-only", schedule="@manually")
    run_now(job=job)
    assert list(Execution.objects.values_list("node_name", flat=True)) == ["alive-1"]
