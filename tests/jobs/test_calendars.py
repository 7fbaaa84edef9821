"""Calendars as pure logic: definitions, weekly windows across midnight, zones across DST
changes, the iCalendar import, and the search for the next allowed fire time."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from jobs import calendars
from jobs import schedule as sched
from jobs.calendars import Compiled, InvalidCalendar, clean_definition, parse_ics

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def compiled(name: str = "cal", **definition) -> Compiled:
    return Compiled.of(name, clean_definition({"timezone": "UTC", **definition}))


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": ""}, "calendar"),
        ({"timezone": "UTC", "dates": ["2026-02-30"]}, "dates[0]"),
        ({"timezone": "UTC", "dates": "2026-01-01"}, "dates"),
        (
            {"timezone": "UTC", "ranges": [{"start": "2026-01-02", "end": "2026-01-01"}]},
            "ranges[0]",
        ),
        (
            {
                "timezone": "UTC",
                "ranges": [{"start": "2026-01-01T10:00+01:00", "end": "2026-01-02"}],
            },
            "ranges[0].start",
        ),
        (
            {"timezone": "UTC", "windows": [{"days": ["sat"], "start": "25:00", "end": "06:00"}]},
            "windows[0].start",
        ),
        (
            {
                "timezone": "UTC",
                "windows": [{"days": ["caturday"], "start": "22:00", "end": "06:00"}],
            },
            "windows[0].days",
        ),
        (
            {"timezone": "UTC", "windows": [{"days": ["sat"], "start": "10:00", "end": "10:00"}]},
            "windows[0]",
        ),
        (
            {"timezone": "UTC", "windows": [{"days": [], "start": "10:00", "end": "11:00"}]},
            "calendar",
        ),
    ],
)
def test_it_refuses_a_bad_definition_naming_the_field(definition, field):
    with pytest.raises(InvalidCalendar) as caught:
        clean_definition(definition)
    assert field in caught.value.details or field in caught.value.message


def test_it_normalises_days_dates_and_date_only_range_ends():
    cleaned = clean_definition(
        {
            "timezone": "Europe/Berlin",
            "dates": ["2026-12-26", "2026-12-25", "2026-12-25"],
            "ranges": [{"start": "2026-12-31", "end": "2027-01-01"}],
            "windows": [{"days": "fri-mon", "start": "22:00", "end": "6:00"}],
        }
    )
    assert cleaned["dates"] == ["2026-12-25", "2026-12-26"]
    # A date-only end includes that whole day.
    assert cleaned["ranges"] == [{"start": "2026-12-31T00:00:00", "end": "2027-01-02T00:00:00"}]
    assert cleaned["windows"] == [
        {"days": ["mon", "fri", "sat", "sun"], "start": "22:00", "end": "06:00"}
    ]


def test_a_weekly_window_that_crosses_midnight_covers_the_next_morning():
    cal = compiled(
        timezone="Europe/Berlin", windows=[{"days": ["sat"], "start": "22:00", "end": "06:00"}]
    )
    assert not cal.contains(berlin(2026, 6, 6, 21, 59))  # Saturday
    assert cal.contains(berlin(2026, 6, 6, 22, 0))
    assert cal.contains(berlin(2026, 6, 7, 5, 59))  # Sunday morning: still Saturday's window
    assert not cal.contains(berlin(2026, 6, 7, 6, 0))
    assert not cal.contains(berlin(2026, 6, 7, 22, 30))  # Sunday night: not a window day
    assert cal.end_of(berlin(2026, 6, 6, 23, 0)) == berlin(2026, 6, 7, 6, 0)
    assert cal.next_start(berlin(2026, 6, 7, 6, 0)) == berlin(2026, 6, 13, 22, 0)


def test_touching_stretches_join_into_one():
    cal = compiled(
        timezone="Europe/Berlin",
        dates=["2026-06-08"],
        windows=[{"days": ["sun"], "start": "18:00", "end": "24:00"}],
    )
    assert cal.end_of(berlin(2026, 6, 7, 19, 0)) == berlin(2026, 6, 9, 0, 0)


def test_a_date_is_a_local_day_in_the_calendars_zone_after_a_dst_change():
    # New York moved to EDT (UTC-4) on 2026-03-08: 04:30Z on 03-09 is 00:30 local (inside the
    # holiday); 04:30Z on 03-10 is 00:30 on 03-10 (outside). With EST's offset both would flip.
    cal = Compiled.of(
        "h", clean_definition({"timezone": "America/New_York", "dates": ["2026-03-09"]})
    )
    assert cal.contains(datetime(2026, 3, 9, 4, 30, tzinfo=UTC))
    assert not cal.contains(datetime(2026, 3, 10, 4, 30, tzinfo=UTC))
    assert not cal.contains(datetime(2026, 3, 9, 3, 59, tzinfo=UTC))  # 23:59 on 03-08
    assert cal.end_of(datetime(2026, 3, 9, 12, tzinfo=UTC)) == datetime(2026, 3, 10, 4, tzinfo=UTC)


def test_a_window_keeps_its_wall_clock_across_the_autumn_change():
    # Berlin left CEST on 2026-10-25 at 03:00 (back to 02:00): 22:00-06:00 that night lasts 9 h.
    cal = compiled(
        timezone="Europe/Berlin", windows=[{"days": ["sat"], "start": "22:00", "end": "06:00"}]
    )
    start = berlin(2026, 10, 24, 22, 0)
    assert start == datetime(2026, 10, 24, 20, 0, tzinfo=UTC)
    assert cal.end_of(start) == datetime(2026, 10, 25, 5, 0, tzinfo=UTC)


ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//holidays//EN
BEGIN:VEVENT
UID:1
DTSTAMP:20260101T000000Z
SUMMARY:Reformation Day
DTSTART;VALUE=DATE:20261031
DTEND;VALUE=DATE:20261101
END:VEVENT
BEGIN:VEVENT
UID:2
DTSTAMP:20260101T000000Z
SUMMARY:Christmas
DTSTART;VALUE=DATE:20261224
DTEND;VALUE=DATE:20261227
END:VEVENT
BEGIN:VEVENT
UID:3
DTSTAMP:20260101T000000Z
SUMMARY:Maintenance (New York time)
DTSTART;TZID=America/New_York:20261025T200000
DTEND;TZID=America/New_York:20261025T230000
END:VEVENT
BEGIN:VEVENT
UID:4
DTSTAMP:20260101T000000Z
SUMMARY:New Year
DTSTART;VALUE=DATE:20260101
RRULE:FREQ=YEARLY
END:VEVENT
END:VCALENDAR
"""


def test_the_ics_import_gives_all_day_events_as_dates_and_timed_ones_as_local_ranges():
    dates, ranges = parse_ics(ICS, zone=BERLIN, today=date(2026, 6, 1))
    assert {"2026-10-31", "2026-12-24", "2026-12-25", "2026-12-26"} <= set(dates)
    assert "2026-12-27" not in dates  # DTEND of an all-day event is exclusive
    assert {"2026-01-01", "2027-01-01", "2031-01-01"} <= set(dates)  # the RRULE, expanded
    # 20:00-23:00 New York (EDT) on 10-25 is 01:00-04:00 Berlin on 10-26 (CET, after the change).
    assert ranges == [{"start": "2026-10-26T01:00:00", "end": "2026-10-26T04:00:00"}]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a calendar",
        "BEGIN:VEVENT\nEND:VEVENT\n",
        "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:x\nEND:VEVENT\nEND:VCALENDAR\n",
    ],
)
def test_the_ics_import_refuses_what_is_not_an_icalendar_file(text):
    with pytest.raises(InvalidCalendar):
        parse_ics(text, zone=BERLIN, today=date(2026, 6, 1))


def _recurring(rule: str, *, copies: int = 1) -> str:
    events = "".join(
        f"BEGIN:VEVENT\nUID:r{i}\nDTSTAMP:20260101T000000Z\nDTSTART:20260101T000000Z\n"
        f"DTEND:20260101T000001Z\nRRULE:{rule}\nEND:VEVENT\n"
        for i in range(copies)
    )
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\n{events}END:VCALENDAR\n"


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        # dateutil alone looks for these until the year 9999: 7-18 s of CPU each.
        ("FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30", "never occurs"),
        ("FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31;COUNT=5", "never occurs"),
        ("FREQ=SECONDLY", "more than"),  # 157 million in the five years imported
    ],
)
def test_an_rrule_an_editor_wrote_to_burn_cpu_is_refused_at_once(rule, said):
    started = time.monotonic()
    with pytest.raises(InvalidCalendar, match=said):
        parse_ics(_recurring(rule, copies=20), zone=BERLIN, today=date(2026, 6, 1))
    assert time.monotonic() - started < 5.0


def test_an_rrule_listing_every_second_of_the_year_is_refused_at_once():
    # dateutil builds all 366 x 86,400 candidates of a period before it yields one: 11-47 s.
    every = "BYYEARDAY=" + ",".join(str(d) for d in range(1, 367))
    every += ";BYHOUR=" + ",".join(str(h) for h in range(24))
    every += ";BYMINUTE=" + ",".join(str(m) for m in range(60))
    every += ";BYSECOND=" + ",".join(str(m) for m in range(60))
    started = time.monotonic()
    with pytest.raises(InvalidCalendar, match="times a day"):
        parse_ics(_recurring(f"FREQ=YEARLY;{every};COUNT=100"), zone=BERLIN, today=date(2026, 6, 1))
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            _recurring("FREQ=DAILY")
            .replace("DTSTART:20260101T000000Z", "DTSTART;TZID=Mars/Olympus:20260101T000000")
            .replace("DTEND:20260101T000001Z", "DURATION:PT1H"),
            "TZID",
        ),
        (
            "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\n"
            + "BEGIN:VEVENT\n" * 20000
            + "END:VEVENT\n" * 20000
            + "END:VCALENDAR\n",
            "nested|not an iCalendar",
        ),
        (
            _recurring("FREQ=YEARLY").replace("DTEND:20260101T000001Z", "DURATION:P99999999W"),
            "range|DURATION",
        ),
    ],
)
def test_a_hostile_ics_file_is_a_clear_refusal(text, said):
    with pytest.raises(InvalidCalendar, match=said):
        parse_ics(text, zone=BERLIN, today=date(2026, 6, 1))


def test_a_rare_but_real_rrule_still_imports():
    dates, ranges = parse_ics(
        _recurring("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"), zone=BERLIN, today=date(2026, 6, 1)
    )
    assert [r["start"][:10] for r in ranges] == ["2028-02-29"]


def _job(**fields) -> SimpleNamespace:
    return SimpleNamespace(**{"exclude_calendars": [], "only_calendars": [], **fields})


def _with(job: SimpleNamespace, *cals: Compiled) -> SimpleNamespace:
    job.__dict__[calendars._ATTR] = {c.name: c for c in cals}
    return job


def test_next_allowed_jumps_over_an_excluded_weekend_night_in_one_step():
    every_second = sched.parse("* * * * * *", job_name="x", timezone="UTC", default_tz="UTC")
    nights = compiled(
        "nights",
        timezone="Europe/Berlin",
        windows=[{"days": ["fri"], "start": "22:00", "end": "06:00"}],
    )
    job = _with(_job(exclude_calendars=["nights"]), nights)
    steps = []

    def step(t: datetime) -> datetime | None:
        steps.append(t)
        return every_second.next_after(t)

    got = calendars.next_allowed(job, berlin(2026, 6, 5, 22, 0), step)
    assert got == berlin(2026, 6, 6, 6, 0)
    assert len(steps) == 1


def test_only_calendars_confine_fires_to_their_windows():
    half_hourly = sched.parse("0 */30 * * * *", job_name="x", timezone="UTC", default_tz="UTC")
    hours = compiled(
        "business-hours",
        timezone="America/New_York",
        windows=[{"days": "mon-fri", "start": "09:00", "end": "17:00"}],
    )
    job = _with(_job(only_calendars=["business-hours"]), hours)
    friday_5pm = datetime(2026, 6, 5, 17, 0, tzinfo=NEW_YORK).astimezone(UTC)
    got = calendars.next_allowed(job, friday_5pm, half_hourly.next_after)
    assert got == datetime(2026, 6, 8, 9, 0, tzinfo=NEW_YORK).astimezone(UTC)
    assert (
        calendars.exclusion_reason(job, friday_5pm)
        == "missed: outside only_calendars 'business-hours'"
    )
    assert calendars.exclusion_reason(job, got) == ""


def test_an_only_calendar_with_nothing_ahead_gives_no_next_fire():
    daily = sched.parse("0 0 12 * * *", job_name="x", timezone="UTC", default_tz="UTC")
    past = compiled("once", dates=["2020-01-01"])
    job = _with(_job(only_calendars=["once"]), past)
    assert (
        calendars.next_allowed(job, datetime(2026, 1, 1, 12, tzinfo=UTC), daily.next_after) is None
    )


def test_a_job_without_calendars_is_returned_untouched():
    job = _job()
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert calendars.next_allowed(job, moment, lambda t: t + timedelta(days=1)) is moment
    assert calendars.exclusion_reason(job, moment) == ""
    calendars.attach([job])  # no query (this test has no database)
    assert calendars._ATTR not in job.__dict__


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory"])
def test_zone_database_names_that_are_no_place_are_refused(zone):
    with pytest.raises(InvalidCalendar, match="names no place"):
        clean_definition({"timezone": zone, "dates": ["2026-12-25"]})
