"""Dkron's schedule dialect: parsing, next fire times (DST included) and descriptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobs.schedule import (
    Schedule,
    ScheduleError,
    describe,
    name_hash,
    parse,
    validate_timezone,
)


def u(text: str) -> datetime:
    """A UTC instant written as '2025-06-01 10:00' or '2025-06-01 10:00:07'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(zone: str, text: str, *, fold: int = 0) -> datetime:
    """A wall-clock time in zone; fold=1 picks the second pass of a repeated hour."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold)


# --- next fire time for each construct -----------------------------------------------------------

# fmt: off
NEXT_FIRE = [
    # seconds field
    pytest.param("*/15 * * * * *", "", "2025-06-01 10:00:07", "2025-06-01 10:00:15",
                 id="a seconds step fires within the minute"),
    pytest.param("30 * * * * *", "", "2025-06-01 10:00:30", "2025-06-01 10:01:30",
                 id="the next fire is strictly after the given time"),
    pytest.param("0 0 12 * * *", "", "2025-06-01 11:59:59.999999", "2025-06-01 12:00",
                 id="microseconds before a fire still reach it"),
    pytest.param("0 0 12 * * *", "", "2025-06-01 12:00", "2025-06-02 12:00",
                 id="a daily time that just fired comes back tomorrow"),
    # lists, ranges, steps, names, ?
    pytest.param("0 0 9,17 * * *", "", "2025-06-01 10:00", "2025-06-01 17:00",
                 id="a list picks the next listed hour"),
    pytest.param("0 0 9-11 * * *", "", "2025-06-01 11:00", "2025-06-02 09:00",
                 id="a range wraps to the next day after its end"),
    pytest.param("0 0 8-18/4 * * *", "", "2025-06-01 12:00:01", "2025-06-01 16:00",
                 id="a stepped range counts from its start"),
    pytest.param("0 5/20 * * * *", "", "2025-06-01 10:46", "2025-06-01 11:05",
                 id="a start with a step runs to the field maximum"),
    pytest.param("0 0 0 1 MAR *", "", "2025-03-02 00:00", "2026-03-01 00:00",
                 id="a month name matches that month"),
    pytest.param("0 0 9 * * mon-fri", "", "2025-06-06 10:00", "2025-06-09 09:00",
                 id="lowercase weekday names skip the weekend"),
    pytest.param("0 0 0 ? * SUN", "", "2025-06-02 00:00", "2025-06-08 00:00",
                 id="a question mark is a wildcard"),
    pytest.param("? ? ? ? ? ?", "", "2025-06-01 10:00:07", "2025-06-01 10:00:08",
                 id="question marks work in every field"),
    # month ends and leap days
    pytest.param("0 0 0 31 * *", "", "2025-04-01 00:00", "2025-05-31 00:00",
                 id="day 31 skips thirty-day months"),
    pytest.param("0 0 0 29 2 *", "", "2025-01-01 00:00", "2028-02-29 00:00",
                 id="a leap day waits for the next leap year"),
    pytest.param("0 0 0 29 2 *", "", "2096-03-01 00:00", "2104-02-29 00:00",
                 id="a leap day survives the 2100 non-leap century"),
    pytest.param("0 0 0 30 2 *", "", "2025-01-01 00:00", None,
                 id="a day that never exists never fires"),
    # day of month / day of week (robfig and classic cron)
    pytest.param("0 0 0 13 * FRI", "", "2025-06-01 00:00", "2025-06-06 00:00",
                 id="both day fields restricted means either may match"),
    pytest.param("0 0 0 13 * *", "", "2025-06-01 00:00", "2025-06-13 00:00",
                 id="a wildcard weekday leaves only the day of month"),
    pytest.param("0 0 0 ? * FRI", "", "2025-06-07 00:00", "2025-06-13 00:00",
                 id="a wildcard day of month leaves only the weekday"),
    pytest.param("0 0 0 */2 * FRI", "", "2025-06-01 01:00", "2025-06-03 00:00",
                 id="a stepped day of month counts as restricted so either may match"),
    # descriptors, evaluated in the job's zone
    pytest.param("@daily", "America/New_York", "2025-01-15 12:00", "2025-01-16 05:00",
                 id="daily in new york winter is 05:00 utc"),
    pytest.param("@daily", "America/New_York", "2025-07-15 12:00", "2025-07-16 04:00",
                 id="daily in new york summer is 04:00 utc"),
    pytest.param("@midnight", "Europe/Berlin", "2025-07-15 12:00", "2025-07-15 22:00",
                 id="midnight in berlin summer is 22:00 utc"),
    pytest.param("@hourly", "Asia/Kolkata", "2025-07-15 12:00", "2025-07-15 12:30",
                 id="hourly in a half-hour zone fires at half past utc"),
    pytest.param("@minutely", "UTC", "2025-07-15 12:00:01", "2025-07-15 12:01",
                 id="minutely fires at second zero"),
    pytest.param("@weekly", "Europe/Berlin", "2025-06-02 00:00", "2025-06-07 22:00",
                 id="weekly is sunday midnight in the job zone"),
    pytest.param("@monthly", "Asia/Tokyo", "2025-06-02 00:00", "2025-06-30 15:00",
                 id="monthly is the first at midnight in the job zone"),
    pytest.param("@yearly", "Australia/Sydney", "2025-06-01 00:00", "2025-12-31 13:00",
                 id="yearly is new year in the job zone"),
    pytest.param("@annually", "", "2025-06-01 00:00", "2026-01-01 00:00",
                 id="annually is yearly"),
    # TZ= and CRON_TZ= prefixes win over the job zone
    pytest.param("TZ=Asia/Tokyo 0 0 9 * * *", "America/New_York", "2025-06-01 01:00",
                 "2025-06-02 00:00", id="a tz prefix overrides the job zone"),
    pytest.param("CRON_TZ=Europe/Berlin 0 0 9 * * *", "", "2025-01-10 09:00",
                 "2025-01-11 08:00", id="a cron_tz prefix sets the zone"),
    pytest.param("TZ=Europe/Berlin @daily", "", "2025-01-10 09:00", "2025-01-10 23:00",
                 id="a tz prefix applies to descriptors"),
]
# fmt: on


@pytest.mark.parametrize(("spec", "zone", "after", "expected"), NEXT_FIRE)
def test_it_computes_the_next_fire_time(
    spec: str, zone: str, after: str, expected: str | None
) -> None:
    fire = parse(spec, timezone=zone).next_after(u(after))
    assert fire == (u(expected) if expected else None)


def test_it_returns_aware_utc_for_an_aware_non_utc_input() -> None:
    schedule = parse("0 0 9 * * *", timezone="Europe/Berlin")
    fire = schedule.next_after(local("Asia/Tokyo", "2025-06-01 18:00"))
    assert fire == u("2025-06-02 07:00")
    assert fire is not None and fire.tzinfo is UTC


def test_it_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("@daily").next_after(datetime(2025, 6, 1))


def test_the_job_zone_local_means_the_default_zone() -> None:
    schedule = parse("0 0 9 * * *", timezone="Local", default_tz="Europe/Berlin")
    assert schedule.tz == ZoneInfo("Europe/Berlin")
    assert schedule.next_after(u("2025-01-10 09:00")) == u("2025-01-11 08:00")


def test_it_uses_the_default_zone_when_the_job_has_none() -> None:
    assert parse("@daily", default_tz="Asia/Tokyo").tz == ZoneInfo("Asia/Tokyo")
    assert parse("@daily").tz == ZoneInfo("UTC")


# --- daylight saving time ------------------------------------------------------------------------
# The 2025 changes used here, in local time: New York 03-09 02:00 -> 03:00 and 11-02 02:00 ->
# 01:00; Berlin 03-30 02:00 -> 03:00 and 10-26 03:00 -> 02:00; Sydney (southern hemisphere)
# 04-06 03:00 -> 02:00 and 10-05 02:00 -> 03:00.

NY, BERLIN, SYDNEY = "America/New_York", "Europe/Berlin", "Australia/Sydney"

# fmt: off
DST = [
    # spring forward: the missing wall time is skipped
    pytest.param(NY, "0 30 2 * * *", "2025-03-08 00:00", "2025-03-11 00:00",
                 ["2025-03-08 07:30", "2025-03-10 06:30"],
                 id="new york skips 02:30 on the spring-forward day"),
    pytest.param(NY, "0 30 * * * *", "2025-03-09 06:00", "2025-03-09 08:00",
                 ["2025-03-09 06:30", "2025-03-09 07:30"],
                 id="new york hourly goes from 01:30 est straight to 03:30 edt"),
    pytest.param(NY, "* * * * * *", "2025-03-09 06:59:58", "2025-03-09 07:00:01",
                 ["2025-03-09 06:59:59", "2025-03-09 07:00:00", "2025-03-09 07:00:01"],
                 id="new york every second runs straight through the gap"),
    pytest.param(BERLIN, "0 30 2 * * *", "2025-03-29 00:00", "2025-04-01 00:00",
                 ["2025-03-29 01:30", "2025-03-31 00:30"],
                 id="berlin skips 02:30 on the spring-forward day"),
    pytest.param(SYDNEY, "0 30 2 * * *", "2025-10-03 00:00", "2025-10-06 00:00",
                 ["2025-10-03 16:30", "2025-10-05 15:30"],
                 id="sydney skips 02:30 on its october spring-forward day"),
    # fall back, fixed hour: once, on the first occurrence
    pytest.param(NY, "0 30 1 * * *", "2025-11-01 12:00", "2025-11-03 12:00",
                 ["2025-11-02 05:30", "2025-11-03 06:30"],
                 id="new york fixed 01:30 fires once on the fall-back day"),
    pytest.param(NY, "0 * 1 * * *", "2025-11-02 05:58", "2025-11-02 07:00",
                 ["2025-11-02 05:59"],
                 id="new york fixed hour with every minute skips the second pass"),
    pytest.param(NY, "0 0 1-3 * * *", "2025-11-02 04:00", "2025-11-02 09:00",
                 ["2025-11-02 05:00", "2025-11-02 07:00", "2025-11-02 08:00"],
                 id="new york hour range counts as fixed and fires 01:00 once"),
    pytest.param(BERLIN, "0 30 2 * * *", "2025-10-25 12:00", "2025-10-27 12:00",
                 ["2025-10-26 00:30", "2025-10-27 01:30"],
                 id="berlin fixed 02:30 fires once on the fall-back day"),
    pytest.param(SYDNEY, "0 30 2 * * *", "2025-04-05 00:00", "2025-04-06 17:00",
                 ["2025-04-05 15:30", "2025-04-06 16:30"],
                 id="sydney fixed 02:30 fires once on its april fall-back day"),
    pytest.param(NY, "@daily", "2025-11-01 12:00", "2025-11-03 12:00",
                 ["2025-11-02 04:00", "2025-11-03 05:00"],
                 id="daily keeps local midnight across the fall-back"),
    # fall back, wildcard or step hour: both passes
    pytest.param(NY, "0 30 * * * *", "2025-11-02 04:00", "2025-11-02 08:00",
                 ["2025-11-02 04:30", "2025-11-02 05:30", "2025-11-02 06:30", "2025-11-02 07:30"],
                 id="new york wildcard hour fires 01:30 in both passes"),
    pytest.param(NY, "0 */20 * * * *", "2025-11-02 05:30", "2025-11-02 07:00",
                 ["2025-11-02 05:40", "2025-11-02 06:00", "2025-11-02 06:20", "2025-11-02 06:40",
                  "2025-11-02 07:00"],
                 id="new york minute step has no hole across the fall-back"),
    pytest.param(NY, "0 30 1-23/2 * * *", "2025-11-02 05:00", "2025-11-02 09:00",
                 ["2025-11-02 05:30", "2025-11-02 06:30", "2025-11-02 08:30"],
                 id="new york stepped hour range fires in both passes"),
    pytest.param(NY, "0 30 1/12 * * *", "2025-11-02 05:00", "2025-11-02 09:00",
                 ["2025-11-02 05:30", "2025-11-02 06:30"],
                 id="new york start-and-step hour fires in both passes"),
    pytest.param(NY, "@hourly", "2025-11-02 04:30", "2025-11-02 07:30",
                 ["2025-11-02 05:00", "2025-11-02 06:00", "2025-11-02 07:00"],
                 id="hourly fires in both passes"),
    pytest.param(BERLIN, "0 30 * * * *", "2025-10-26 00:00", "2025-10-26 02:00",
                 ["2025-10-26 00:30", "2025-10-26 01:30"],
                 id="berlin wildcard hour fires 02:30 in both passes"),
    pytest.param(SYDNEY, "0 30 ? * * *", "2025-04-05 15:00", "2025-04-05 17:00",
                 ["2025-04-05 15:30", "2025-04-05 16:30"],
                 id="sydney question-mark hour fires 02:30 in both passes"),
]
# fmt: on


@pytest.mark.parametrize(("zone", "spec", "start", "end", "expected"), DST)
def test_it_follows_the_dst_rules(
    zone: str, spec: str, start: str, end: str, expected: list[str]
) -> None:
    fires = parse(spec, timezone=zone).fires_between(u(start), u(end))
    assert fires == [u(e) for e in expected]


# fmt: off
@pytest.mark.parametrize(("spec", "after", "expected"), [
    pytest.param("0 */5 * * * *", local(NY, "2025-11-02 01:50"), "2025-11-02 05:55",
                 id="a step in the first pass continues there"),
    pytest.param("0 */5 * * * *", local(NY, "2025-11-02 01:55"), "2025-11-02 06:00",
                 id="the first pass hands over to the second pass"),
    pytest.param("0 */5 * * * *", local(NY, "2025-11-02 01:10", fold=1), "2025-11-02 06:15",
                 id="a step in the second pass continues there"),
    pytest.param("0 30 1 * * *", local(NY, "2025-11-02 01:10", fold=1), "2025-11-03 06:30",
                 id="a fixed hour in the second pass waits a day"),
    pytest.param("0 30 * * * *", local(NY, "2025-11-02 01:40"), "2025-11-02 06:30",
                 id="a wildcard hour in the first pass comes back in the second"),
])
# fmt: on
def test_it_finds_the_next_fire_from_inside_a_repeated_hour(
    spec: str, after: datetime, expected: str
) -> None:
    assert parse(spec, timezone=NY).next_after(after) == u(expected)


def _reference_next(schedule: Schedule, after: datetime, within: timedelta) -> datetime | None:
    """Second-by-second reference: an instant fires when its local wall time matches the
    fields and it is that wall time's first occurrence, or the hour field repeats."""
    cron = schedule._cron
    assert cron is not None
    moment = after.replace(microsecond=0) + timedelta(seconds=1)
    while moment <= after + within:
        wall = moment.astimezone(schedule.tz)
        dom_ok, dow_ok = wall.day in cron.doms, (wall.weekday() + 1) % 7 in cron.dows
        day_ok = (dom_ok and dow_ok) if cron.dom_star or cron.dow_star else dom_ok or dow_ok
        if (
            day_ok
            and wall.month in cron.months
            and wall.hour in cron.hours
            and wall.minute in cron.minutes
            and wall.second in cron.seconds
            and (wall.fold == 0 or cron.hour_repeats)
        ):
            return moment
        moment += timedelta(seconds=1)
    return None


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        pytest.param(NY, "2025-03-09 07:00", id="new york spring"),
        pytest.param(NY, "2025-11-02 06:00", id="new york fall"),
        pytest.param(BERLIN, "2025-10-26 01:00", id="berlin fall"),
        pytest.param(SYDNEY, "2025-04-05 16:00", id="sydney fall"),
        pytest.param("Australia/Lord_Howe", "2025-04-05 15:00", id="lord howe half-hour fall"),
        pytest.param("Asia/Beirut", "2025-10-25 21:00", id="beirut fall-back at midnight"),
    ],
)
@pytest.mark.parametrize(
    "spec", ["* * * * * *", "0 */7 * * * *", "0 30 1,2 * * *", "*/13 * 2 * * *", "0 45 */1 * * *"]
)
def test_it_agrees_with_a_second_by_second_reference_around_a_dst_change(
    zone: str, change: str, spec: str
) -> None:
    schedule = parse(spec, timezone=zone)
    for minutes in range(-150, 151, 25):
        after = u(change) + timedelta(minutes=minutes, seconds=17)
        expected = _reference_next(schedule, after, timedelta(hours=4))
        fire = schedule.next_after(after)
        if expected is not None:
            assert fire == expected, after
        else:
            assert fire is None or fire > after + timedelta(hours=4), after


# --- @every, @at, @manually ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "interval"),
    [
        pytest.param("@every 1h30m", timedelta(hours=1, minutes=30), id="hours and minutes"),
        pytest.param("@every 10s", timedelta(seconds=10), id="seconds"),
        pytest.param("@every 1.5h", timedelta(minutes=90), id="a fractional hour"),
        pytest.param("@every 1500ms", timedelta(seconds=1), id="milliseconds truncated"),
        pytest.param("@every 1m0.999999999s", timedelta(minutes=1), id="nanoseconds truncated"),
        pytest.param("@every 2h45m30s", timedelta(hours=2, minutes=45, seconds=30), id="mixed"),
        # robfig's Every(): below one second (zero and negative included) becomes 1s, the rest
        # is truncated to whole seconds, never rounded up.
        pytest.param("@every 15ms", timedelta(seconds=1), id="milliseconds raised to 1s"),
        pytest.param("@every 999999999ns", timedelta(seconds=1), id="just below 1s raised"),
        pytest.param("@every 0s", timedelta(seconds=1), id="zero seconds raised to 1s"),
        pytest.param("@every 0", timedelta(seconds=1), id="a bare zero raised to 1s"),
        pytest.param("@every -5m", timedelta(seconds=1), id="negative raised to 1s"),
        pytest.param("@every -0", timedelta(seconds=1), id="minus zero raised to 1s"),
        pytest.param("@every 1.5s", timedelta(seconds=1), id="one and a half seconds truncated"),
        pytest.param("@every 2.999s", timedelta(seconds=2), id="never rounded up"),
    ],
)
def test_every_parses_go_durations_to_whole_seconds(spec: str, interval: timedelta) -> None:
    schedule = parse(spec)
    assert (schedule.kind, schedule.interval, schedule.at) == ("every", interval, None)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        pytest.param("2025-06-01 12:59:59", "2025-06-01 13:00", id="just before a fire"),
        pytest.param("2025-06-01 13:00", "2025-06-01 14:30", id="exactly on a fire"),
        pytest.param("2025-06-01 09:00", "2025-06-01 11:30", id="before the anchor"),
        # 39 hours after the anchor is 26 intervals
        pytest.param("2025-06-03 00:00", "2025-06-03 01:00", id="days later keeps the phase"),
    ],
)
def test_every_fires_on_absolute_time_from_the_anchor(after: str, expected: str) -> None:
    schedule = parse("@every 1h30m", timezone=NY)
    assert schedule.next_after(u(after), anchor=u("2025-06-01 10:00")) == u(expected)


@pytest.mark.parametrize("spec", ["@every 15ms", "@every 0s", "@every -1h"])
def test_every_below_a_second_fires_every_second_from_the_anchor(spec: str) -> None:
    anchor = u("2025-06-01 10:00:00")
    fires = parse(spec).fires_between(anchor, u("2025-06-01 10:00:03"), anchor=anchor)
    assert fires == [u("2025-06-01 10:00:01"), u("2025-06-01 10:00:02"), u("2025-06-01 10:00:03")]


def test_every_without_an_anchor_fires_one_interval_after() -> None:
    assert parse("@every 10s").next_after(u("2025-06-01 10:00:03")) == u("2025-06-01 10:00:13")


def test_every_ignores_dst_and_keeps_an_hour_between_fires() -> None:
    fires = parse("@every 1h", timezone=NY).fires_between(
        u("2025-11-02 04:00"), u("2025-11-02 07:00")
    )
    assert fires == [u("2025-11-02 05:00"), u("2025-11-02 06:00"), u("2025-11-02 07:00")]


def test_at_fires_once_at_its_instant_using_the_offset_in_the_string() -> None:
    schedule = parse("@at 2025-06-01T10:00:00+02:00", timezone=NY)
    assert schedule.kind == "at"
    assert schedule.at == u("2025-06-01 08:00")
    assert schedule.next_after(u("2025-05-01 00:00")) == u("2025-06-01 08:00")


@pytest.mark.parametrize(
    "after",
    [
        pytest.param("2025-06-01 08:00", id="at the instant"),
        pytest.param("2025-07-01 00:00", id="after it"),
    ],
)
def test_at_in_the_past_never_fires(after: str) -> None:
    assert parse("@at 2025-06-01T08:00:00Z").next_after(u(after)) is None


def test_manually_never_fires() -> None:
    schedule = parse("@manually")
    assert schedule.kind == "manual"
    assert schedule.next_after(u("2025-06-01 00:00")) is None
    assert schedule.fires_between(u("2025-01-01 00:00"), u("2026-01-01 00:00")) == []


# --- fires_between -------------------------------------------------------------------------------


def test_fires_between_excludes_the_start_and_includes_the_end() -> None:
    fires = parse("@hourly").fires_between(u("2025-06-01 01:00"), u("2025-06-01 03:00"))
    assert fires == [u("2025-06-01 02:00"), u("2025-06-01 03:00")]


def test_fires_between_stops_at_the_limit_keeping_the_earliest() -> None:
    fires = parse("* * * * * *").fires_between(
        u("2025-06-01 00:00"), u("2025-06-02 00:00"), limit=3
    )
    assert fires == [u("2025-06-01 00:00:01"), u("2025-06-01 00:00:02"), u("2025-06-01 00:00:03")]


def test_fires_between_keeps_the_every_phase_from_the_anchor() -> None:
    fires = parse("@every 40m").fires_between(
        u("2025-06-01 10:00"), u("2025-06-01 12:00"), anchor=u("2025-06-01 09:50")
    )
    assert fires == [u("2025-06-01 10:30"), u("2025-06-01 11:10"), u("2025-06-01 11:50")]


def test_fires_between_returns_a_pending_at_once() -> None:
    schedule = parse("@at 2025-06-01T08:00:00Z")
    fires = schedule.fires_between(u("2025-05-01 00:00"), u("2025-07-01 00:00"))
    assert fires == [u("2025-06-01 08:00")]


# --- the ~ hash ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("job1", 106 + 111 + 98 + 49, id="ascii"),
        pytest.param("jöb", 106 + 246 + 98, id="non-ascii code points"),
        pytest.param("", 0, id="empty"),
    ],
)
def test_name_hash_sums_code_points(name: str, expected: int) -> None:
    assert name_hash(name) == expected


# name_hash("job1") == 364, so positions 0 and 1 give 364 % 60 = 4, position 2 gives
# 364 % 24 = 4, position 3 gives 364 % 28 + 1 = 1, 4 gives 364 % 12 + 1 = 5, 5 gives 364 % 7 = 0.
# fmt: off
@pytest.mark.parametrize(("spec", "after", "expected"), [
    pytest.param("0 ~ * * * *", "2025-06-01 10:00", "2025-06-01 10:04", id="minute"),
    pytest.param("~ ~ ~ * * *", "2025-06-01 10:00", "2025-06-02 04:04:04",
                 id="second minute and hour"),
    pytest.param("0 0 0 ~ ~ *", "2025-06-01 00:00", "2026-05-01 00:00", id="day and month"),
    pytest.param("0 0 0 ? * ~", "2025-06-02 00:00", "2025-06-08 00:00", id="weekday"),
    pytest.param("0 ~/15 * * * *", "2025-06-01 10:05", "2025-06-01 10:19",
                 id="tilde with a step is a start value"),
    pytest.param("TZ=UTC 0 ~ * * * *", "2025-06-01 10:00", "2025-06-01 10:04",
                 id="positions are counted after a tz prefix"),
])
# fmt: on
def test_tilde_is_replaced_by_the_job_name_hash(spec: str, after: str, expected: str) -> None:
    assert parse(spec, job_name="job1").next_after(u(after)) == u(expected)


# --- errors --------------------------------------------------------------------------------------

# fmt: off
@pytest.mark.parametrize(("spec", "message"), [
    pytest.param("*/5 * * * *", "6 fields expected, seconds first (got 5): '*/5 * * * *'",
                 id="five fields"),
    pytest.param("0 0 0 1 1 * 2025", "6 fields expected, seconds first (got 7)",
                 id="seven fields"),
    pytest.param("", "schedule is empty", id="empty"),
    pytest.param("60 * * * * *", "seconds field '60': 60 is out of range 0-59", id="second 60"),
    pytest.param("0 0-60 * * * *", "minutes field '0-60': 60 is out of range 0-59",
                 id="minute 60 in a range"),
    pytest.param("0 0 24 * * *", "hours field '24': 24 is out of range 0-23", id="hour 24"),
    pytest.param("0 0 0 0 * *", "day of month field '0': 0 is out of range 1-31", id="day 0"),
    pytest.param("0 0 0 32 * *", "day of month field '32'", id="day 32"),
    pytest.param("0 0 0 * 13 *", "month field '13': 13 is out of range 1-12", id="month 13"),
    pytest.param("0 0 0 * * 7", "day of week field '7': 7 is out of range 0-6 (Sunday is 0)",
                 id="weekday 7"),
    pytest.param("0 0 0 * FOO *", "month field 'FOO': 'FOO' is not a number or month name",
                 id="unknown month name"),
    pytest.param("0 0 0 * * MON-XYZ", "'XYZ' is not a number or weekday name",
                 id="unknown weekday name"),
    pytest.param("0 0 0 * MON *", "'MON' is not a number or month name",
                 id="weekday name in the month field"),
    pytest.param("0 0 0 L * *", "day of month field 'L': 'L' is not a number", id="quartz L"),
    pytest.param("0 0 10-5 * * *", "hours field '10-5': range 10-5 starts after it ends",
                 id="backwards range"),
    pytest.param("*/0 * * * * *", "step '0' is not a positive whole number", id="step 0"),
    pytest.param("1-2-3 * * * * *", "too many '-'", id="two dashes"),
    pytest.param("*/2/3 * * * * *", "too many '/'", id="two slashes"),
    pytest.param("0 0 0 1,,2 * *", "day of month field '1,,2': a value is missing",
                 id="empty list item"),
    pytest.param("0 0 -1 * * *", "hours field '-1': a value is missing", id="negative number"),
    pytest.param("@daly", "unknown descriptor '@daly'; did you mean '@daily'?",
                 id="misspelt descriptor"),
    pytest.param("@daily 5", "'@daily' takes no argument", id="descriptor with an argument"),
    pytest.param("@every", "@every needs a duration", id="every without a duration"),
    pytest.param("@every 5", "invalid duration '5'", id="every without a unit"),
    pytest.param("@every -", "invalid duration '-'", id="every with a sign only"),
    pytest.param("@every 10x", "unknown unit 'x'", id="unknown duration unit"),
    pytest.param("@every 1h 30m", "unknown unit 'h '", id="spaces inside a duration"),
    pytest.param("@at tomorrow", "@at needs an RFC 3339 time with a UTC offset",
                 id="at without a time"),
    pytest.param("@at 2025-06-01T10:00:00", "with a UTC offset", id="at without an offset"),
    pytest.param("@at 2025-02-30T10:00:00Z", "@at: invalid time", id="at on february 30"),
    pytest.param("TZ=Mars/Olympus 0 0 0 * * *", "unknown time zone 'Mars/Olympus'",
                 id="unknown prefix zone"),
    pytest.param("TZ=Europe/Berlin", "schedule missing after 'TZ=Europe/Berlin'",
                 id="prefix only"),
    pytest.param("TZ= 0 0 0 * * *", "'TZ=' needs a time zone name", id="empty prefix zone"),
])
# fmt: on
def test_it_rejects_bad_schedules_with_a_message_naming_the_problem(
    spec: str, message: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse(spec)
    assert message in str(caught.value)


def test_a_tilde_error_shows_the_substituted_value() -> None:
    with pytest.raises(ScheduleError, match=r"'~-1' \(= '4-1' after ~ substitution\)"):
        parse("0 ~-1 * * * *", job_name="job1")


def test_schedule_errors_are_value_errors() -> None:
    assert issubclass(ScheduleError, ValueError)


def test_it_rejects_an_unknown_job_zone() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone 'Nowhere/Land'"):
        parse("@daily", timezone="Nowhere/Land")


# --- time zones ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("UTC", "UTC", id="utc"),
        pytest.param("Europe/Berlin", "Europe/Berlin", id="an iana name"),
        pytest.param("Local", "Asia/Tokyo", id="local is the default"),
        pytest.param("", "Asia/Tokyo", id="empty is the default"),
    ],
)
def test_validate_timezone_accepts_known_zones(name: str, expected: str) -> None:
    assert validate_timezone(name, default_tz="Asia/Tokyo") == ZoneInfo(expected)


@pytest.mark.parametrize("name", ["Mars/Olympus", "America", "../etc/passwd", "utc", "/etc/hosts"])
def test_validate_timezone_rejects_unknown_zones(name: str) -> None:
    with pytest.raises(ScheduleError, match=f"unknown time zone '{name}'"):
        validate_timezone(name)


# --- describe ------------------------------------------------------------------------------------

# fmt: off
@pytest.mark.parametrize(("spec", "zone", "expected"), [
    pytest.param("0 30 9 * * MON-FRI", BERLIN, "At 09:30, Monday through Friday (Europe/Berlin)",
                 id="weekday mornings"),
    pytest.param("*/10 * * * * *", "", "Every 10 seconds (UTC)", id="a seconds step"),
    pytest.param("0 0 9-17 * * *", "", "Every hour from 09:00 through 17:00 (UTC)",
                 id="hourly within a range"),
    pytest.param("0 0 0 1,15 * MON", "",
                 "At 00:00, on day 1 and 15 of the month, or on Monday (UTC)",
                 id="both day fields restricted say or"),
    pytest.param("0 0 12 ? JAN *", "", "At 12:00, only in January (UTC)", id="a question mark"),
    pytest.param("@daily", NY, "At 00:00 (America/New_York)", id="daily"),
    pytest.param("@hourly", "", "Every hour (UTC)", id="hourly"),
    pytest.param("@every 90m", "", "Every 1h30m", id="every"),
    pytest.param("@every 24h", "", "Every 24h", id="every day"),
    pytest.param("@every 15ms", "", "Every 1s (15ms is below the 1s minimum, as in Dkron)",
                 id="every below a second says it runs every second"),
    pytest.param("@every 0s", "", "Every 1s (0s is below the 1s minimum, as in Dkron)",
                 id="every zero says it runs every second"),
    pytest.param("@every -5m", "", "Every 1s (-5m is below the 1s minimum, as in Dkron)",
                 id="every negative says it runs every second"),
    pytest.param("@every 1.5s", "", "Every 1s (1.5s cut to whole seconds, as in Dkron)",
                 id="every with a fraction says it is cut"),
    pytest.param("@every 1m0.5s", "", "Every 1m (1m0.5s cut to whole seconds, as in Dkron)",
                 id="every with a fraction of a minute"),
    pytest.param("@every 1500ms", "", "Every 1s (1500ms cut to whole seconds, as in Dkron)",
                 id="every in milliseconds"),
    pytest.param("@every 60000ms", "", "Every 1m", id="whole milliseconds need no note"),
    pytest.param("@at 2025-06-01T10:00:00Z", BERLIN, "Once at 2025-06-01 12:00:00 (Europe/Berlin)",
                 id="at in the job zone"),
    pytest.param("@manually", "", "Only when run manually", id="manually"),
])
# fmt: on
def test_describe_says_when_it_runs(spec: str, zone: str, expected: str) -> None:
    assert describe(parse(spec, timezone=zone)) == expected


def test_describe_shows_the_hashed_value() -> None:
    assert describe(parse("0 ~ * * * *", job_name="job1")) == "At 4 minutes past the hour (UTC)"
