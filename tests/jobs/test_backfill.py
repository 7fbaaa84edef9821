"""Backfills on the real fire path: which fire times a range holds (DST in Europe/Berlin, a
holiday calendar), what `reprocess` includes, the leader's advance within max_concurrency,
re-runs that move the fire key, idempotency and cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from jobs.errors import DomainError
from jobs.models import Backfill, BackfillItem, Execution, Job, Run
from jobs.services import backfill as bf
from jobs.services.calendars import calendar_upsert
from jobs.services.executions import execution_claim, execution_finish
from jobs.services.jobs import job_upsert
from tests.factories import agent as make_agent

# Berlin moves to CEST (UTC+2) on Sunday 2026-03-29 at 02:00 local: 02:30 does not exist.
NOW = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
MAR27 = datetime(2026, 3, 27, 1, 30, tzinfo=UTC)  # 02:30 CET
MAR28 = datetime(2026, 3, 28, 1, 30, tzinfo=UTC)
MAR30 = datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # 02:30 CEST
MAR31 = datetime(2026, 3, 31, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def node(db):
    return make_agent("node-1")


def make_job(name: str = "nightly", **fields) -> Job:
    data = {
        "name": name,
        "schedule": "0 30 2 * * *",
        "timezone": "Europe/Berlin",
        "executor": "shell",
        "executor_config": {"command": "true"},
        **fields,
    }
    return job_upsert(data=data)[0]


def request(job: Job, **data) -> bf.Request:
    body = {"from": "2026-03-27T00:00:00+01:00", "to": "2026-03-31T23:59:59+02:00", **data}
    return bf.clean_request(job=job, data=body)


def past_run(job: Job, at: datetime, status: str = "success") -> Run:
    """A fire the scheduler made before the outage, settled."""
    return Run.objects.create(
        job=job, scheduled_at=at, trigger=Run.Trigger.SCHEDULE, finished=True, status=status
    )


def finish_all(job: Job, status: str = "success") -> None:
    for execution in Execution.objects.filter(job=job, status="queued"):
        execution_claim(execution_id=execution.pk, node_name=execution.node_name)
        execution_finish(execution_id=execution.pk, status=status, output="")


def test_the_range_holds_the_schedule_times_in_the_jobs_zone_without_the_dst_gap(db):
    job = make_job()
    planned = bf.backfill_plan(job=job, request=request(job))
    assert [p.scheduled_at for p in planned] == [MAR27, MAR28, MAR30, MAR31]
    assert all(p.included and p.reason == "missing: never ran" for p in planned)


def test_a_holiday_is_listed_as_excluded_with_its_calendar(db):
    calendar_upsert(name="holidays", data={"timezone": "Europe/Berlin", "dates": ["2026-03-30"]})
    job = make_job(exclude_calendars=["holidays"])
    planned = {p.scheduled_at: p for p in bf.backfill_plan(job=job, request=request(job))}
    assert not planned[MAR30].included
    assert planned[MAR30].reason == "missed: excluded by calendar 'holidays'"
    assert [t for t, p in planned.items() if p.included] == [MAR27, MAR28, MAR31]


def test_reprocess_decides_which_times_that_ran_are_included(db):
    job = make_job()
    ok = past_run(job, MAR27)
    failed = past_run(job, MAR28, status="failed")

    def included(reprocess: str) -> list[datetime]:
        plan = bf.backfill_plan(job=job, request=request(job, reprocess=reprocess))
        return [p.scheduled_at for p in plan if p.included]

    assert included("missing") == [MAR30, MAR31]
    assert included("failed") == [MAR28, MAR30, MAR31]
    assert included("all") == [MAR27, MAR28, MAR30, MAR31]
    plan = bf.backfill_plan(job=job, request=request(job))
    assert plan[0].reason == f"already ran: run {ok.pk} ended success"
    assert plan[1].run_id == failed.pk


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": "2026-03-31T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-03-01T00:00:00Z"}, "from"),
        ({"from": "2026-03-01T00:00:00Z", "to": "soon"}, "to"),
        ({"from": "2026-03-01T00:00:00Z", "reprocess": "some"}, "reprocess"),
        ({"from": "2026-03-01T00:00:00Z", "max_concurrency": 0}, "max_concurrency"),
        ({"from": "2026-03-01T00:00:00Z", "max_concurrency": "two"}, "max_concurrency"),
        ({"from": 20260301}, "from"),
        ({"from": "2027-01-01T00:00:00Z", "to": "2027-02-01T00:00:00Z"}, "from"),
    ],
)
def test_bad_input_names_the_field(db, body, field):
    job = make_job()
    with pytest.raises(DomainError) as caught:
        bf.clean_request(job=job, data=body)
    assert field in caught.value.details


def test_a_range_past_the_cap_is_refused(db):
    job = make_job(schedule="* * * * * *")  # every second: 10,001 seconds is too many
    req = bf.clean_request(
        job=job, data={"from": "2026-04-01T00:00:00Z", "to": "2026-04-01T02:46:40Z"}
    )
    with pytest.raises(DomainError) as caught:
        bf.backfill_plan(job=job, request=req)
    assert "from" in caught.value.details


def test_a_time_without_offset_is_read_in_the_jobs_zone(db):
    job = make_job()
    req = bf.clean_request(job=job, data={"from": "2026-03-30T02:30:00", "to": "2026-03-30T03:00"})
    assert req.range_from == MAR30
    assert [p.scheduled_at for p in bf.backfill_plan(job=job, request=req)] == [MAR30]


def test_the_leader_runs_the_missing_times_within_max_concurrency(node):
    job = make_job()
    past_run(job, MAR28)
    backfill = bf.backfill_start(job=job, request=request(job, max_concurrency=2))
    assert (backfill.state, backfill.total, backfill.fire_times) == ("pending", 3, 4)

    assert bf.backfills_tick().started == 2
    runs = Run.objects.filter(job=job, trigger=Run.Trigger.BACKFILL).order_by("scheduled_at")
    assert [r.scheduled_at for r in runs] == [MAR27, MAR30]
    assert Execution.objects.filter(job=job, status="queued").count() == 2
    assert bf.backfills_tick().started == 0  # both still active: no room

    finish_all(job)
    report = bf.backfills_tick()
    assert (report.started, report.open) == (1, 1)
    finish_all(job)
    assert bf.backfills_tick().open == 0
    backfill.refresh_from_db()
    assert (backfill.state, backfill.created, backfill.finished) == ("done", 3, 3)
    assert sorted(Run.objects.filter(job=job).values_list("scheduled_at", flat=True)) == [
        MAR27,
        MAR28,
        MAR30,
        MAR31,
    ]


def test_two_identical_backfills_run_each_missing_time_once(node):
    job = make_job()
    first = bf.backfill_start(job=job, request=request(job, max_concurrency=10))
    second = bf.backfill_start(job=job, request=request(job, max_concurrency=10))
    assert bf.backfills_tick().started == 4  # the first takes every key, the second none
    finish_all(job)
    bf.backfills_tick()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.created, second.created, second.skipped) == (4, 0, 4)
    assert second.state == "done"
    assert Run.objects.filter(job=job).count() == 4
    reasons = BackfillItem.objects.filter(backfill=second).values_list("reason", flat=True)
    assert all(r.startswith("running: run") for r in reasons)  # the first's, taken meanwhile

    third = bf.backfill_start(job=job, request=request(job))
    assert (third.state, third.total) == ("done", 0)  # a second run of it runs nothing
    assert bf.backfills_tick().started == 0


def test_a_rerun_moves_the_fire_key_and_keeps_the_earlier_run(node):
    job = make_job()
    old = past_run(job, MAR28, status="failed")
    for t in (MAR27, MAR30, MAR31):
        past_run(job, t)
    backfill = bf.backfill_start(job=job, request=request(job, reprocess="failed"))
    assert backfill.total == 1
    assert bf.backfills_tick().started == 1
    old.refresh_from_db()
    assert old.scheduled_at is None  # released; still in history
    new = Run.objects.get(job=job, scheduled_at=MAR28)
    assert new.trigger == Run.Trigger.BACKFILL and new.pk != old.pk
    item = BackfillItem.objects.get(backfill=backfill)
    assert (item.run_id, item.previous_run_id) == (new.pk, old.pk)


def test_a_running_time_is_never_rerun(node):
    job = make_job()
    Run.objects.create(job=job, scheduled_at=MAR27, trigger=Run.Trigger.SCHEDULE)
    plan = bf.backfill_plan(job=job, request=request(job, reprocess="all"))
    assert not plan[0].included and plan[0].reason.startswith("running:")


def test_cancel_stops_further_runs(node):
    job = make_job()
    backfill = bf.backfill_start(job=job, request=request(job))  # max_concurrency 1
    assert bf.backfills_tick().started == 1
    bf.backfill_cancel(backfill=backfill)
    finish_all(job)
    assert bf.backfills_tick().started == 0
    backfill.refresh_from_db()
    assert backfill.state == "cancelled" and backfill.cancelled_at is not None
    assert Run.objects.filter(job=job).count() == 1
    states = BackfillItem.objects.filter(backfill=backfill).values_list("state", flat=True)
    assert sorted(states) == ["cancelled", "cancelled", "cancelled", "started"]
    with pytest.raises(DomainError):
        bf.backfill_cancel(backfill=backfill)


def test_a_forbid_job_backfills_one_at_a_time_and_not_while_it_runs(node):
    job = make_job(concurrency="forbid")
    Run.objects.create(job=job, scheduled_at=NOW - timedelta(hours=1))
    Execution.objects.create(
        run=Run.objects.get(job=job), job=job, job_name=job.name, status="running"
    )
    backfill = bf.backfill_start(job=job, request=request(job, max_concurrency=5))
    assert bf.backfills_tick().started == 0
    Execution.objects.filter(job=job).update(status="success")
    assert bf.backfills_tick().started == 1
    assert Backfill.objects.get(pk=backfill.pk).created == 1


def test_an_every_job_backfills_its_phase_from_before_it_was_created(db):
    job = make_job("every", schedule="@every 1h")  # created at NOW, phase at NOW
    req = bf.clean_request(job=job, data={"from": "2026-04-02T08:30:00Z"})
    times = [p.scheduled_at for p in bf.backfill_plan(job=job, request=req)]
    assert times == [datetime(2026, 4, 2, h, 0, tzinfo=UTC) for h in (9, 10, 11, 12)]


def test_a_bare_date_is_midnight_on_the_jobs_wall_clock(db):
    job = make_job()
    req = bf.clean_request(job=job, data={"from": "2026-03-30", "to": "2026-03-31"})
    assert req.range_from == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    assert [p.scheduled_at for p in bf.backfill_plan(job=job, request=req)] == [MAR30]


def test_a_replace_job_backfills_one_at_a_time_so_no_run_kills_another(node):
    job = make_job(concurrency="replace")
    bf.backfill_start(job=job, request=request(job, max_concurrency=4))
    assert bf.backfills_tick().started == 1
    assert bf.backfills_tick().started == 0
    assert not Execution.objects.filter(job=job, status="killed").exists()


def test_a_backfill_that_cannot_go_on_is_failed_with_the_reason(node, monkeypatch):
    job = make_job()
    backfill = bf.backfill_start(job=job, request=request(job))

    def broken(*args, **kwargs):
        raise ValueError("the executor registry is broken")

    monkeypatch.setattr(bf.run_services, "start_runs", broken)  # a bug, not an outage
    assert bf.backfills_tick().open == 0
    backfill.refresh_from_db()
    assert (backfill.state, backfill.error) == ("failed", "the executor registry is broken")
    assert not Run.objects.filter(job=job).exists()
