"""Calendars: named sets of local times (dates, ranges, weekly windows) that a job's
`exclude_calendars` keep it from firing in, or its `only_calendars` confine it to.

Three parts, in this order:

1. The definition: `clean_definition` checks and normalises what a client sends (the API,
   the admin, an import), `parse_ics` turns an iCalendar file (RFC 5545) into dates and ranges.
2. `Compiled`, the definition ready to answer "is instant t inside?" and "when does the
   stretch around t end / the next one begin?". Every test is made on the wall clock of the
   calendar's own zone (zoneinfo), so a window "22:00-06:00" or a holiday keeps its local
   meaning across daylight saving changes, whatever the job's zone.
3. The job side, the only part the fire path and `jobs.timing` call: `attach` (the calendars
   of a batch of due jobs, one query per batch and none when no job has calendars),
   `exclusion_reason` (why a fire time may not run) and `next_allowed` (the first fire time a
   calendar lets through). A job without calendars costs a truth test of two empty lists.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

MAX_DATES = 10_000
MAX_RANGES = 10_000
MAX_WINDOWS = 100
MAX_ICS_BYTES = 2_000_000
# Fire times looked at past exclusions before `next_allowed` gives up (each step jumps a
# whole excluded stretch, so only a schedule that almost never meets its calendar gets here).
MAX_JUMPS = 1000
ICS_YEARS = 5  # recurring events (RRULE) are expanded this many years ahead of the import
# The CPU one .ics import may spend expanding its recurring events, and the start times a day
# one rule may list (BYHOUR x BYMINUTE x BYSECOND): dateutil builds every combination for each
# period before it yields one, 31 million a year for all hours, minutes and seconds.
ICS_EXPAND_SECONDS = 2.0
MAX_TIMES_A_DAY = 24

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {
    **{d: i for i, d in enumerate(DAYS)},
    **{
        n: i
        for i, n in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
}
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$", re.ASCII)  # not "１０:00"
_ONE_DAY = timedelta(days=1)
_TINY = timedelta(microseconds=1)


class InvalidCalendar(ValueError):
    """A definition or an .ics file that cannot be stored; `details` maps field to message."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {"calendar": message}


# --- 1. Definitions -------------------------------------------------------------------------


# Names the zone database holds that are no place: `localtime` is whatever zone the host that
# reads it is set to (the web process and the scheduler may differ), `posixrules` a template
# for POSIX TZ strings, `Factory` the "-00" placeholder of an unset clock.
NOT_A_PLACE = frozenset({"localtime", "posixrules", "Factory"})


def zone_of(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidCalendar("timezone is required (an IANA zone such as Europe/Berlin)")
    if name in NOT_A_PLACE:
        raise InvalidCalendar(
            f"time zone '{name}' names no place; give an IANA zone such as Europe/Berlin",
            {"timezone": "not a place"},
        )
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise InvalidCalendar(f"unknown time zone '{name}'", {"timezone": "unknown"}) from None


def clean_name(name: Any) -> str:
    """A calendar name follows the job name rules (lowercase letters, digits, _ and -)."""
    if not isinstance(name, str) or not name:
        raise InvalidCalendar("name cannot be empty", {"name": "required"})
    if len(name) > 255:
        raise InvalidCalendar("name is longer than 255 characters", {"name": "too long"})
    for ch in name:
        if not (unicodedata.category(ch) == "Ll" or ch in "0123456789_-"):
            raise InvalidCalendar(
                f"name contains illegal character '{ch}'",
                {"name": "allowed: lowercase letters, 0-9, _ and -"},
            )
    return name


def _date(value: Any, field: str) -> date:
    if not isinstance(value, str):
        raise InvalidCalendar(f"{field}: expected a date YYYY-MM-DD", {field: "not a date"})
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidCalendar(
            f"{field}: '{value}' is not a date YYYY-MM-DD", {field: value}
        ) from None


def _local(value: Any, field: str, *, end: bool) -> datetime:
    """A local wall time; a bare date is its day's start, or as an end the next day's start
    (so an end date includes that whole day)."""
    if not isinstance(value, str) or not value:
        raise InvalidCalendar(
            f"{field}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM", {field: "missing"}
        )
    if len(value) == 10:
        day = _date(value, field)
        return datetime.combine(day + _ONE_DAY if end else day, time())
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidCalendar(
            f"{field}: '{value}' is not a local time YYYY-MM-DDTHH:MM[:SS]", {field: value}
        ) from None
    if moment.tzinfo is not None:
        raise InvalidCalendar(
            f"{field}: '{value}' has an offset; give the wall time in the calendar's zone",
            {field: value},
        )
    return moment


def _clock(value: Any, field: str, *, end: bool) -> timedelta:
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidCalendar(f"{field}: expected HH:MM, got {value!r}", {field: "not HH:MM"})
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    offset = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    limit = timedelta(hours=24) if end else timedelta(hours=23, minutes=59, seconds=59)
    if minutes > 59 or seconds > 59 or offset > limit:
        raise InvalidCalendar(f"{field}: {value!r} is not a time of day", {field: value})
    return offset


def _days(value: Any, field: str) -> list[int]:
    """ "mon-fri", "sat,sun", ["sat", "sun"]: weekday numbers (Monday 0), in week order."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise InvalidCalendar(f"{field}: expected days such as ['sat', 'sun'] or 'mon-fri'")
    days: set[int] = set()
    for item in items:
        text = item.strip().lower() if isinstance(item, str) else ""
        first, _, last = text.partition("-")
        if first not in _DAY_NAMES or (last and last not in _DAY_NAMES):
            raise InvalidCalendar(f"{field}: unknown day {item!r} (use mon..sun)", {field: item})
        a, b = _DAY_NAMES[first], _DAY_NAMES[last or first]
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return sorted(days)


def _fmt_clock(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    hh, mm, ss = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{hh:02d}:{mm:02d}" + (f":{ss:02d}" if ss else "")


def clean_definition(data: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a definition (timezone, description, dates, ranges, windows), or
    InvalidCalendar naming the first bad field. Dates sorted and unique; ranges as local
    wall times with an exclusive end; windows with their days spelled mon..sun."""
    zone = zone_of(data.get("timezone"))
    description = data.get("description") or ""
    if not isinstance(description, str) or len(description) > 1000:
        raise InvalidCalendar("description: at most 1000 characters of text")
    dates = data.get("dates") or []
    ranges = data.get("ranges") or []
    windows = data.get("windows") or []
    for field, value, most in (
        ("dates", dates, MAX_DATES),
        ("ranges", ranges, MAX_RANGES),
        ("windows", windows, MAX_WINDOWS),
    ):
        if not isinstance(value, list):
            raise InvalidCalendar(f"{field}: expected a list", {field: "not a list"})
        if len(value) > most:
            raise InvalidCalendar(f"{field}: at most {most} entries", {field: "too many"})
    clean_dates = sorted({_date(d, f"dates[{i}]").isoformat() for i, d in enumerate(dates)})
    clean_ranges = []
    for i, item in enumerate(ranges):
        field = f"ranges[{i}]"
        if not isinstance(item, dict):
            raise InvalidCalendar(f"{field}: expected {{'start': ..., 'end': ...}}")
        start = _local(item.get("start"), f"{field}.start", end=False)
        end = _local(item.get("end"), f"{field}.end", end=True)
        if end <= start:
            raise InvalidCalendar(f"{field}: end must be after start", {field: "empty range"})
        clean_ranges.append({"start": start.isoformat(), "end": end.isoformat()})
    clean_ranges.sort(key=lambda r: (r["start"], r["end"]))
    clean_windows = []
    for i, item in enumerate(windows):
        field = f"windows[{i}]"
        if not isinstance(item, dict):
            raise InvalidCalendar(f"{field}: expected {{'days': ..., 'start': ..., 'end': ...}}")
        days = _days(item.get("days"), f"{field}.days")
        opens = _clock(item.get("start"), f"{field}.start", end=False)
        closes = _clock(item.get("end"), f"{field}.end", end=True)
        if opens == closes:
            raise InvalidCalendar(
                f"{field}: start and end are equal; use 00:00-24:00 for whole days",
                {field: "empty window"},
            )
        clean_windows.append(
            {"days": [DAYS[d] for d in days], "start": _fmt_clock(opens), "end": _fmt_clock(closes)}
        )
    return {
        "timezone": zone.key,
        "description": description,
        "dates": clean_dates,
        "ranges": clean_ranges,
        "windows": clean_windows,
    }


def _known_zone(event: Any, key: str, value: Any, label: str) -> None:
    """A TZID that neither the file (VTIMEZONE) nor the zone database knows: icalendar then
    gives a floating time, which would be read silently in the calendar's own zone."""
    tzid = getattr(event.get(key), "params", {}).get("TZID")
    if tzid and isinstance(value, datetime) and value.tzinfo is None:
        raise InvalidCalendar(
            f"{label}: unknown time zone TZID={str(tzid)[:64]!r} (no VTIMEZONE for it)",
            {"ics": "unknown TZID"},
        )


def parse_ics(text: Any, *, zone: ZoneInfo, today: date) -> tuple[list[str], list[dict[str, str]]]:
    """`_parse_ics`, with what a hostile file can make Python itself raise turned into a 400:
    events nested thousands deep (RecursionError), dates past the year 9999 (OverflowError)."""
    try:
        return _parse_ics(text, zone=zone, today=today)
    except RecursionError:
        raise InvalidCalendar("ics: components nested too deep", {"ics": "too deep"}) from None
    except OverflowError as exc:
        raise InvalidCalendar(
            f"ics: a date out of range ({exc})", {"ics": "out of range"}
        ) from None


def _parse_ics(text: Any, *, zone: ZoneInfo, today: date) -> tuple[list[str], list[dict[str, str]]]:
    """The VEVENTs of an iCalendar file as (dates, ranges) in the calendar's zone.

    All-day events become dates (each day of a multi-day one: DTEND is exclusive); timed
    events become ranges of local wall time, converted from their own zone (a floating time
    is taken as the calendar's). RRULE, RDATE and EXDATE are expanded up to ICS_YEARS years
    after `today`. InvalidCalendar when the text is not iCalendar or an event has no start.
    """
    import icalendar
    from dateutil.rrule import rrulestr

    if not isinstance(text, str) or not text.strip():
        raise InvalidCalendar("ics: expected the text of an iCalendar file", {"ics": "empty"})
    if len(text.encode()) > MAX_ICS_BYTES:
        raise InvalidCalendar(f"ics: at most {MAX_ICS_BYTES} bytes", {"ics": "too large"})
    try:
        cal = icalendar.Calendar.from_ical(text)
    except Exception as exc:  # icalendar raises ValueError and friends on bad input
        raise InvalidCalendar(
            f"ics: not an iCalendar file ({exc})", {"ics": "unparsable"}
        ) from None
    if getattr(cal, "name", "") != "VCALENDAR":
        raise InvalidCalendar(
            "ics: the file does not start with BEGIN:VCALENDAR", {"ics": "no VCALENDAR"}
        )
    horizon = datetime.combine(today, time()) + timedelta(days=366 * ICS_YEARS)
    deadline = monotonic() + ICS_EXPAND_SECONDS
    dates: set[str] = set()
    ranges: list[dict[str, str]] = []
    for number, event in enumerate(cal.walk("VEVENT"), start=1):
        label = f"ics: event {number} ({event.get('SUMMARY', 'no summary')})"
        try:
            start = event.decoded("DTSTART")
        except KeyError:
            raise InvalidCalendar(f"{label} has no DTSTART", {"ics": "no DTSTART"}) from None
        except Exception as exc:
            raise InvalidCalendar(f"{label}: bad DTSTART ({exc})", {"ics": "bad DTSTART"}) from None
        all_day = not isinstance(start, datetime)
        _known_zone(event, "DTSTART", start, label)
        try:
            if "DTEND" in event:
                length = event.decoded("DTEND") - start
            elif "DURATION" in event:
                length = event.decoded("DURATION")
            else:  # RFC 5545 3.6.1: a day for a date, an instant for a date-time
                length = _ONE_DAY if all_day else timedelta(0)
        except Exception as exc:
            raise InvalidCalendar(
                f"{label}: bad DTEND or DURATION ({exc})", {"ics": "bad end"}
            ) from None
        if isinstance(length, timedelta) and length <= timedelta(0):
            if not all_day:
                continue  # an instant covers no time: nothing to exclude or include
            length = _ONE_DAY
        starts = [start]
        if "RRULE" in event or "RDATE" in event:
            starts = _occurrences(event, start, horizon, rrulestr, deadline)
        for begin in starts:
            if all_day:
                first = begin if not isinstance(begin, datetime) else begin.date()
                days = max(1, length.days)
                if days > 366:
                    raise InvalidCalendar(f"{label} lasts more than a year", {"ics": "too long"})
                dates.update((first + timedelta(days=k)).isoformat() for k in range(days))
            else:
                local = _in_zone(begin, zone)
                ranges.append(
                    {"start": local.isoformat(), "end": _in_zone(begin + length, zone).isoformat()}
                )
        if len(dates) > MAX_DATES or len(ranges) > MAX_RANGES:
            raise InvalidCalendar(
                "ics: too many events after expanding recurrences", {"ics": "too many"}
            )
    return sorted(dates), ranges


def _in_zone(moment: datetime, zone: ZoneInfo) -> datetime:
    """Wall time in `zone`, seconds precision; a floating time is already one."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone).replace(tzinfo=None)
    return moment.replace(microsecond=0)


def _occurrences(
    event: Any, start: Any, horizon: datetime, rrulestr: Any, deadline: float
) -> list[Any]:
    """The starts of a recurring event up to `horizon`, less its EXDATEs, plus its RDATEs."""
    is_dt = isinstance(start, datetime)
    base = start if is_dt else datetime.combine(start, time())
    limit = horizon.replace(tzinfo=base.tzinfo) if base.tzinfo else horizon
    found: list[datetime] = []
    if "RRULE" in event:
        rule = event["RRULE"].to_ical().decode()
        try:
            found = _expand(rrulestr(rule, dtstart=base), limit, deadline)
        except InvalidCalendar:
            raise
        except Exception as exc:
            raise InvalidCalendar(
                f"ics: bad RRULE {rule!r} ({exc})", {"ics": "bad RRULE"}
            ) from None
    else:
        found = [base]
    excluded: set[Any] = set()
    for key, sign in (("RDATE", 1), ("EXDATE", -1)):
        values = event.get(key)
        for prop in values if isinstance(values, list) else [values] if values else []:
            for item in getattr(prop, "dts", []):
                value = item.dt
                value = value if isinstance(value, datetime) else datetime.combine(value, time())
                if base.tzinfo and value.tzinfo is None:
                    value = value.replace(tzinfo=base.tzinfo)
                if sign > 0:
                    found.append(value)
                else:
                    excluded.add(value if is_dt else value.date())
    kept = {f for f in found if (f if is_dt else f.date()) not in excluded}
    found = sorted(kept)[: MAX_RANGES + 1]
    return found if is_dt else [f.date() for f in found]


def _never_occurs(rule: Any) -> bool:
    """Whether a rule's BYxxx parts contradict each other (`BYMONTH=2;BYMONTHDAY=30`).

    dateutil looks for the next occurrence of such a rule until the year 9999: seconds of CPU
    for a daily rule, 18 s for a secondly one, whatever UNTIL says, and an .ics may hold
    thousands of them. The Gregorian calendar repeats every 400 years, so the same date filters
    tried yearly over the last 400 years dateutil knows (from 9600, a leap year) either match
    there or never: a few ms.
    """
    from dateutil.rrule import YEARLY

    start = rule._dtstart
    try:
        probe = rule.replace(
            freq=YEARLY,
            interval=1,
            count=1,
            until=None,
            dtstart=start.replace(year=9600),
            bysetpos=None,
            byhour=None,
            byminute=None,
            bysecond=None,
        )
    except ValueError:
        return False  # a rule dateutil will refuse anyway, with its own message
    return next(iter(probe), None) is None


def _expand(rule: Any, limit: datetime, deadline: float) -> list[datetime]:
    """A rule's occurrences up to `limit`, never more than MAX_RANGES + 1 of them.

    Lazily, and with the rule's UNTIL moved to `limit`: an editor's `FREQ=SECONDLY` over the
    five-year horizon is 157 million datetimes, which `between()` would build in memory before
    the count check refused the file; a rule that never matches stops at `limit`, not in 9999.
    """
    from dateutil.rrule import DAILY

    times = 1
    for part in (rule._byhour, rule._byminute, rule._bysecond):
        times *= len(part or ()) or 1
    if rule._freq <= DAILY and times > MAX_TIMES_A_DAY:  # YEARLY..DAILY: lists per day
        raise InvalidCalendar(
            f"ics: a recurring event starts {times} times a day (BYHOUR x BYMINUTE x BYSECOND);"
            f" at most {MAX_TIMES_A_DAY}: use a range or a weekly window instead",
            {"ics": "too many times a day"},
        )
    if _never_occurs(rule):
        raise InvalidCalendar(
            "ics: a recurring event's RRULE never occurs", {"ics": "RRULE never occurs"}
        )
    if getattr(rule, "_count", None) is None:
        until = getattr(rule, "_until", None)
        if until is None or until > limit:
            rule = rule.replace(until=limit)
    found: list[datetime] = []
    for occurrence in rule:
        if occurrence > limit:
            break
        found.append(occurrence)
        if monotonic() > deadline:
            raise InvalidCalendar(
                f"ics: the recurring events take more than {ICS_EXPAND_SECONDS:g}s to expand",
                {"ics": "too expensive"},
            )
        if len(found) > MAX_RANGES:
            raise InvalidCalendar(
                f"ics: a recurring event has more than {MAX_RANGES} occurrences in the "
                "five years imported",
                {"ics": "too many occurrences"},
            )
    return found


# --- 2. Compiled calendars ------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    start: timedelta  # from local midnight
    end: timedelta  # from the same midnight: past 24h when the window crosses midnight


@dataclass(frozen=True)
class Compiled:
    """A calendar ready for the fire path: every test on the wall clock of `zone`."""

    name: str
    zone: ZoneInfo
    dates: tuple[date, ...]  # sorted
    ranges: tuple[tuple[datetime, datetime], ...]  # sorted by start, naive local
    windows: tuple[Window, ...]

    @classmethod
    def of(cls, name: str, definition: dict[str, Any]) -> Compiled:
        windows = []
        for w in definition.get("windows") or []:
            start = _clock(w["start"], "start", end=False)
            end = _clock(w["end"], "end", end=True)
            if end <= start:
                end += _ONE_DAY  # 22:00-06:00: until 06:00 the next day
            windows.append(Window(frozenset(_days(w["days"], "days")), start, end))
        return cls(
            name=name,
            zone=ZoneInfo(definition["timezone"]),
            dates=tuple(sorted(date.fromisoformat(d) for d in definition.get("dates") or [])),
            ranges=tuple(
                sorted(
                    (datetime.fromisoformat(r["start"]), datetime.fromisoformat(r["end"]))
                    for r in definition.get("ranges") or []
                )
            ),
            windows=tuple(windows),
        )

    def wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=None)

    def instant(self, wall: datetime) -> datetime:
        # fold=0: in a repeated hour the first one; a wall time in a gap maps past the gap.
        return wall.replace(tzinfo=self.zone).astimezone(UTC)

    def _ends_covering(self, wall: datetime) -> list[datetime]:
        """The ends of the stretches (a date, a range, a window) that hold `wall`."""
        ends = []
        day = wall.date()
        i = bisect.bisect_left(self.dates, day)
        if i < len(self.dates) and self.dates[i] == day:
            ends.append(datetime.combine(day + _ONE_DAY, time()))
        for start, end in self.ranges:
            if start > wall:
                break
            if wall < end:
                ends.append(end)
        for w in self.windows:
            for back in (0, 1):  # a window that began yesterday may still be open
                d = day - timedelta(days=back)
                if d.weekday() in w.days:
                    midnight = datetime.combine(d, time())
                    if midnight + w.start <= wall < midnight + w.end:
                        ends.append(midnight + w.end)
        return ends

    def contains(self, instant: datetime) -> bool:
        return bool(self._ends_covering(self.wall(instant)))

    def end_of(self, instant: datetime) -> datetime:
        """Where the covered stretch around `instant` ends (touching stretches joined)."""
        wall = self.wall(instant)
        for _ in range(MAX_JUMPS):
            ends = self._ends_covering(wall)
            if not ends:
                break
            wall = max(ends)
        return self.instant(wall)

    def next_start(self, instant: datetime) -> datetime | None:
        """The first instant after `instant` where a stretch begins; None if none ever does."""
        wall = self.wall(instant)
        starts = []
        i = bisect.bisect_right(self.dates, wall.date())
        if i < len(self.dates):
            starts.append(datetime.combine(self.dates[i], time()))
        for start, _end in self.ranges:
            if start > wall:
                starts.append(start)
                break
        for w in self.windows:
            for ahead in range(8):
                d = wall.date() + timedelta(days=ahead)
                begin = datetime.combine(d, time()) + w.start
                if d.weekday() in w.days and begin > wall:
                    starts.append(begin)
                    break
        return self.instant(min(starts)) if starts else None


# --- 3. The job side ------------------------------------------------------------------------

_ATTR = "_compiled_calendars"  # on a Job instance: {name: Compiled} for its calendars


def _names(job: Any) -> set[str]:
    return {*(job.exclude_calendars or ()), *(job.only_calendars or ())}


def attach(jobs: Iterable[Any]) -> None:
    """Load the calendars a batch of jobs names, in one query, onto the jobs.

    Nothing is read when no job has calendars: the fire path of a cluster without calendars
    is unchanged. A calendar changed while the batch is planned is seen on the next batch.
    """
    from jobs.models import Calendar

    with_calendars = [job for job in jobs if job.exclude_calendars or job.only_calendars]
    if not with_calendars:
        return
    wanted = set().union(*(_names(job) for job in with_calendars))
    loaded = {
        c.name: Compiled.of(c.name, c.definition())
        for c in Calendar.objects.filter(name__in=wanted)
    }
    for job in with_calendars:
        job.__dict__[_ATTR] = {n: loaded[n] for n in _names(job) if n in loaded}


def _of(job: Any) -> tuple[list[Compiled], list[Compiled]]:
    """(exclude, only) of a job that names calendars; loaded here if `attach` did not."""
    compiled = job.__dict__.get(_ATTR)
    if compiled is None:
        attach([job])
        compiled = job.__dict__.get(_ATTR, {})
    # A calendar deleted under a job (delete refuses while jobs name it) is ignored.
    exclude = [compiled[n] for n in job.exclude_calendars or () if n in compiled]
    only = [compiled[n] for n in job.only_calendars or () if n in compiled]
    return exclude, only


def forget(job: Any) -> None:
    """Drop the calendars loaded onto a job (after its calendar fields changed)."""
    job.__dict__.pop(_ATTR, None)


def exclusion_reason(job: Any, instant: datetime | None) -> str:
    """Why `instant` may not fire for this job ("" when it may): the calendar's name."""
    if instant is None or not (job.exclude_calendars or job.only_calendars):
        return ""
    exclude, only = _of(job)
    for cal in exclude:
        if cal.contains(instant):
            return f"missed: excluded by calendar '{cal.name}'"
    if only and not any(cal.contains(instant) for cal in only):
        names = ", ".join(f"'{cal.name}'" for cal in only)
        return f"missed: outside only_calendars {names}"
    return ""


def next_allowed(
    job: Any, candidate: datetime | None, step: Callable[[datetime], datetime | None]
) -> datetime | None:
    """The first fire time from `candidate` on that the job's calendars let through.

    `step(t)` is the schedule's first fire time strictly after t. From a fire time inside an
    excluded stretch the search jumps to the stretch's end, and from one outside every
    `only_calendars` stretch to the next stretch's start, so a per-second job skips a
    weekend in one step. None when no allowed fire time is found.
    """
    if candidate is None or not (job.exclude_calendars or job.only_calendars):
        return candidate
    exclude, only = _of(job)
    for _ in range(MAX_JUMPS):
        if candidate is None:
            return None
        blocking = next((cal for cal in exclude if cal.contains(candidate)), None)
        if blocking is not None:
            resume = blocking.end_of(candidate)
        elif only and not any(cal.contains(candidate) for cal in only):
            starts = [s for cal in only if (s := cal.next_start(candidate)) is not None]
            if not starts:
                return None
            resume = min(starts)
        else:
            return candidate
        # A fire exactly at the stretch's edge is allowed: look from just before it.
        candidate = step(max(resume - _TINY, candidate))
    return None
