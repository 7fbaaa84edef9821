"""Calendars on the real fire path (`fire_due_jobs`) with a controlled clock: an iCalendar
holiday after a DST change, `next`, only_calendars, the missed record, and catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Execution, Job, Run
from jobs.services.calendars import calendar_upsert
from jobs.services.jobs import job_upsert
from jobs.services.runs import fire_due_jobs
from jobs.wire import job_to_dict
from tests.factories import agent as make_agent

# New York moved to EDT (UTC-4) on Sunday 2026-03-08 at 02:00. Monday 03-09 is a holiday in
# New York: the job's 04:30Z fire that day is 00:30 local, inside it; on 03-10 04:30Z is
# 00:30 on 03-10, outside. (With the winter offset both answers would flip.)
HOLIDAY_ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//dkronweb tests//EN
BEGIN:VEVENT
UID:day-after-dst@test
DTSTAMP:20260101T000000Z
SUMMARY:Office closed
DTSTART;VALUE=DATE:20260309
END:VEVENT
END:VCALENDAR
"""
T0 = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
MAR09 = datetime(2026, 3, 9, 4, 30, tzinfo=UTC)
MAR10 = datetime(2026, 3, 10, 4, 30, tzinfo=UTC)
MAR11 = datetime(2026, 3, 11, 4, 30, tzinfo=UTC)


def make_job(**fields) -> Job:
    data = {"executor": "shell", "executor_config": {"command": "true"}, **fields}
    return job_upsert(data=data)[0]


@pytest.fixture
def holidays(db):
    make_agent("node-1")
    return calendar_upsert(
        name="ny-holidays", data={"timezone": "America/New_York", "ics": HOLIDAY_ICS}
    )[0]


def test_an_imported_holiday_after_a_dst_change_is_skipped_by_next_and_by_the_fire_path(holidays):
    assert holidays.dates == ["2026-03-09"]
    with time_machine.travel(T0, tick=False):
        job = make_job(name="nightly", schedule="0 30 4 * * *", exclude_calendars=["ny-holidays"])
        assert job.next_run == MAR10  # 03-09 04:30Z is the holiday in New York
        assert job_to_dict(job)["next"] == "2026-03-10T04:30:00Z"

    assert fire_due_jobs(now=MAR09 + timedelta(seconds=1)).fired == 0
    report = fire_due_jobs(now=MAR10 + timedelta(seconds=1))
    assert (report.fired, report.missed) == (1, 0)
    run = Run.objects.get()
    assert run.scheduled_at == MAR10
    job.refresh_from_db()
    assert job.next_run == MAR11


def test_a_berlin_daily_job_skips_a_holiday_on_the_day_the_clocks_go_back(db):
    make_agent("node-1")
    calendar_upsert(name="de", data={"timezone": "Europe/Berlin", "dates": ["2026-10-25"]})
    start = datetime(2026, 10, 24, 1, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        job = make_job(
            name="de-daily",
            schedule="0 30 2 * * *",
            timezone="Europe/Berlin",
            exclude_calendars=["de"],
        )
    # 02:30 CEST on 10-24 (00:30Z) is past; 02:30 on 10-25, the holiday (which happens twice
    # that night), is skipped; next is 10-26 02:30 CET, 01:30Z.
    assert job.next_run == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_a_weekly_window_across_midnight_holds_an_hourly_job_until_morning(db):
    make_agent("node-1")
    calendar_upsert(
        name="weekend-nights",
        data={
            "timezone": "Europe/Berlin",
            "windows": [{"days": ["fri", "sat"], "start": "22:00", "end": "06:00"}],
        },
    )
    friday_9pm = datetime(2026, 6, 5, 19, 0, tzinfo=UTC)  # 21:00 CEST
    with time_machine.travel(friday_9pm, tick=False):
        job = make_job(name="hourly", schedule="0 0 * * * *", exclude_calendars=["weekend-nights"])
    # 22:00 CEST (20:00Z) is inside: the next fire is Saturday 06:00 CEST (04:00Z).
    assert job.next_run == datetime(2026, 6, 6, 4, 0, tzinfo=UTC)
    report = fire_due_jobs(now=datetime(2026, 6, 6, 4, 0, 1, tzinfo=UTC))
    assert report.fired == 1
    job.refresh_from_db()
    # Saturday 22:00 CEST opens the next window: 06:00 .. 21:00 fire, then Sunday 06:00.
    assert job.next_run == datetime(2026, 6, 6, 5, 0, tzinfo=UTC)
    Job.objects.filter(pk=job.pk).update(next_run=datetime(2026, 6, 6, 19, 0, tzinfo=UTC))
    fire_due_jobs(now=datetime(2026, 6, 6, 19, 0, 1, tzinfo=UTC))  # 21:00 CEST Saturday
    job.refresh_from_db()
    assert job.next_run == datetime(2026, 6, 7, 4, 0, tzinfo=UTC)


def test_only_calendars_fire_a_job_inside_their_windows_only(db):
    make_agent("node-1")
    calendar_upsert(
        name="business-hours",
        data={
            "timezone": "America/New_York",
            "windows": [{"days": "mon-fri", "start": "09:00", "end": "17:00"}],
        },
    )
    friday_445pm = datetime(2026, 6, 5, 20, 45, tzinfo=UTC)  # 16:45 EDT
    with time_machine.travel(friday_445pm, tick=False):
        job = make_job(name="poll", schedule="0 */30 * * * *", only_calendars=["business-hours"])
    # 16:30 passed; 17:00 is the window's (exclusive) end: next is Monday 09:00 EDT.
    assert job.next_run == datetime(2026, 6, 8, 13, 0, tzinfo=UTC)


def test_catch_up_records_an_excluded_time_as_missed_with_the_calendars_name_and_never_runs_it(
    holidays,
):
    with time_machine.travel(T0, tick=False):
        job = make_job(
            name="catchup",
            schedule="0 30 4 * * *",
            exclude_calendars=["ny-holidays"],
            misfire_policy="run_all",
            catchup_window=3 * 86400,
        )
    # The scheduler was down from before 03-08 04:30Z until 03-10 06:00Z.
    Job.objects.filter(pk=job.pk).update(next_run=datetime(2026, 3, 8, 4, 30, tzinfo=UTC))
    now = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)

    fire_due_jobs(now=now)

    runs = {r.scheduled_at: r for r in Run.objects.filter(job=job)}
    assert set(runs) == {datetime(2026, 3, 8, 4, 30, tzinfo=UTC), MAR09, MAR10}
    skipped = Execution.objects.get(run=runs[MAR09])
    assert skipped.status == "skipped"
    assert skipped.reason == "missed: excluded by calendar 'ny-holidays'"
    assert runs[MAR09].status == "skipped" and runs[MAR09].finished
    queued = Execution.objects.filter(job=job, status="queued")
    assert {e.scheduled_at for e in queued} == {datetime(2026, 3, 8, 4, 30, tzinfo=UTC), MAR10}
    job.refresh_from_db()
    assert job.missed_count == 1
    assert job.next_run == MAR11

    # Fired again (a second scheduler, a repeated tick): the excluded time never runs.
    Job.objects.filter(pk=job.pk).update(next_run=datetime(2026, 3, 8, 4, 30, tzinfo=UTC))
    fire_due_jobs(now=now)
    assert Execution.objects.filter(run=runs[MAR09]).count() == 1
    assert not Execution.objects.filter(job=job, scheduled_at=MAR09).exclude(status="skipped")


def test_run_once_catches_up_the_latest_time_its_calendars_let_through(holidays):
    with time_machine.travel(T0, tick=False):
        job = make_job(
            name="once",
            schedule="0 30 4 * * *",
            exclude_calendars=["ny-holidays"],
            misfire_policy="run_once",
            catchup_window=3 * 86400,
        )
    # Down from before 03-08 04:30Z until 03-09 06:00Z: the latest missed time, 03-09, is the
    # holiday, so the one catch-up run is 03-08's.
    Job.objects.filter(pk=job.pk).update(next_run=datetime(2026, 3, 8, 4, 30, tzinfo=UTC))
    fire_due_jobs(now=datetime(2026, 3, 9, 6, 0, tzinfo=UTC))
    keys = set(Run.objects.filter(job=job).values_list("scheduled_at", flat=True))
    assert keys == {datetime(2026, 3, 8, 4, 30, tzinfo=UTC)}
    job.refresh_from_db()
    assert job.missed_count == 1 and job.next_run == MAR10


def test_a_due_time_a_changed_calendar_now_excludes_is_missed_not_run(holidays):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="stale", schedule="0 30 4 * * *", exclude_calendars=["ny-holidays"])
    # next_run computed before the calendar said so (the calendar's update reschedules jobs
    # whose next fire is ahead; this one is already due).
    Job.objects.filter(pk=job.pk).update(next_run=MAR09)
    report = fire_due_jobs(now=MAR09 + timedelta(seconds=1))
    execution = Execution.objects.get(job=job)
    assert (execution.status, execution.scheduled_at) == ("skipped", MAR09)
    assert "ny-holidays" in execution.reason
    job.refresh_from_db()
    assert job.missed_count == 1 and job.next_run == MAR10
    assert report.fired == 1  # a run row was recorded (skipped), nothing was queued
    assert not Execution.objects.filter(status="queued").exists()


def test_updating_a_calendar_moves_the_next_fire_of_the_jobs_naming_it(holidays):
    with time_machine.travel(T0, tick=False):
        job = make_job(name="moved", schedule="0 30 4 * * *", exclude_calendars=["ny-holidays"])
        assert job.next_run == MAR10
        calendar_upsert(name="ny-holidays", data={"timezone": "America/New_York"})
    job.refresh_from_db()
    assert job.next_run == MAR09


def test_a_job_an_empty_only_calendar_left_without_next_gets_one_when_the_calendar_fills(db):
    calendar_upsert(name="office", data={"timezone": "UTC"})
    with time_machine.travel(T0, tick=False):
        job = make_job(name="office-job", schedule="0 0 * * * *", only_calendars=["office"])
        assert job.next_run is None
        calendar_upsert(
            name="office",
            data={
                "timezone": "UTC",
                "windows": [{"days": "mon-fri", "start": "09:00", "end": "17:00"}],
            },
        )
    job.refresh_from_db()
    assert job.next_run == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)  # Monday 09:00


def test_a_batch_without_calendars_reads_no_calendar(db):
    make_agent("node-1")
    with time_machine.travel(T0, tick=False):
        make_job(name="plain", schedule="0 30 4 * * *")
    with CaptureQueriesContext(connection) as queries:
        assert fire_due_jobs(now=MAR09 + timedelta(seconds=1)).fired == 1
    assert not [q for q in queries.captured_queries if "jobs_calendar" in q["sql"]]


def test_a_batch_reads_its_calendars_once(holidays):
    with time_machine.travel(T0, tick=False):
        for i in range(5):
            make_job(name=f"cal-{i}", schedule="0 30 4 * * *", exclude_calendars=["ny-holidays"])
    with CaptureQueriesContext(connection) as queries:
        assert fire_due_jobs(now=MAR10 + timedelta(seconds=1)).fired == 5
    reads = [q for q in queries.captured_queries if 'FROM "jobs_calendar"' in q["sql"]]
    assert len(reads) == 1
