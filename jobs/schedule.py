"""Dkron's schedule dialect: parse a job's schedule text and compute when it fires."""

from __future__ import annotations

import calendar
import difflib
import functools
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from cron_descriptor import (
    CasingTypeEnum,
    ExpressionDescriptor,
    Options,
)

from executors.values import DurationError, parse_go_duration_ns

__all__ = [
    "Schedule",
    "ScheduleError",
    "describe",
    "name_hash",
    "parse",
    "validate_timezone",
]

# How far ahead we look before giving up on a cron spec. robfig uses 5 years, but a
# `0 0 0 29 2 *` job must survive the 2100 gap (2096-02-29 -> 2104-02-29), hence 8.
_SEARCH_YEARS = 8

# How far ahead of `after` we look for a fall-back whose repeated hour is still to come. Real
# backward jumps are 1h (30 min at Lord Howe, 2h at Troll).
_MAX_SHIFT = timedelta(hours=3)

_ONE_SECOND = timedelta(seconds=1)


class ScheduleError(ValueError):
    """A schedule or time zone cannot be used; the message is meant for the user."""


# --- cron fields -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FieldKind:
    name: str
    lo: int
    hi: int
    names: dict[str, int]
    # Dkron's `~` becomes (hash % modulo) + offset in this position.
    hash_modulo: int
    hash_offset: int


_MONTH_NAMES = {
    n: i
    for i, n in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
        start=1,
    )
}
_DOW_NAMES = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}

_FIELD_KINDS = (
    _FieldKind("seconds", 0, 59, {}, 60, 0),
    _FieldKind("minutes", 0, 59, {}, 60, 0),
    _FieldKind("hours", 0, 23, {}, 24, 0),
    _FieldKind("day of month", 1, 31, {}, 28, 1),
    _FieldKind("month", 1, 12, _MONTH_NAMES, 12, 1),
    _FieldKind("day of week", 0, 6, _DOW_NAMES, 7, 0),
)

_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
    "@minutely": "0 * * * * *",
}
_ALL_DESCRIPTORS = [*_DESCRIPTORS, "@every", "@at", "@manually"]


@dataclass(frozen=True)
class _ParsedField:
    values: tuple[int, ...]
    # robfig's "star bit": some list item is `*`/`?` without a step > 1. Drives the dom/dow rule.
    star: bool
    # Some list item is `*`/`?` or a step: an hour field like that fires in both passes of a
    # repeated hour (Vixie cron's rule for wildcard jobs).
    loose: bool


def _field_error(kind: _FieldKind, text: str, original: str, problem: str) -> ScheduleError:
    shown = f"'{original}' (= '{text}' after ~ substitution)" if original != text else f"'{text}'"
    return ScheduleError(f"{kind.name} field {shown}: {problem}")


def _parse_value(token: str, kind: _FieldKind) -> int:
    """One number or name; raises a bare message that the caller wraps with the field."""
    if token.isascii() and token.isdigit():
        value = int(token)
    elif token.lower() in kind.names:
        value = kind.names[token.lower()]
    else:
        if not token:
            raise ValueError("a value is missing")
        what = {"month": "a number or month name", "day of week": "a number or weekday name"}
        raise ValueError(f"'{token}' is not {what.get(kind.name, 'a number')}")
    if not kind.lo <= value <= kind.hi:
        hint = " (Sunday is 0)" if kind.name == "day of week" and value == 7 else ""
        raise ValueError(f"{value} is out of range {kind.lo}-{kind.hi}{hint}")
    return value


def _parse_field(text: str, original: str, kind: _FieldKind) -> _ParsedField:
    values: set[int] = set()
    star = loose = False
    for item in text.split(","):
        range_text, slash, step_text = item.partition("/")
        try:
            if "/" in step_text:
                raise ValueError(f"too many '/' in '{item}'")
            item_star = range_text in ("*", "?")
            if item_star:
                lo, hi = kind.lo, kind.hi
            else:
                low_text, dash, high_text = range_text.partition("-")
                if "-" in high_text:
                    raise ValueError(f"too many '-' in '{item}'")
                lo = _parse_value(low_text, kind)
                # robfig: a lone start with a step ("5/15") runs to the field's maximum.
                hi = _parse_value(high_text, kind) if dash else (kind.hi if slash else lo)
                if lo > hi:
                    raise ValueError(f"range {range_text} starts after it ends")
            step = 1
            if slash:
                if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                    raise ValueError(f"step '{step_text}' is not a positive whole number")
                step = int(step_text)
        except ValueError as exc:
            raise _field_error(kind, text, original, str(exc)) from None
        values.update(range(lo, hi + 1, step))
        star = star or (item_star and step == 1)
        loose = loose or item_star or bool(slash)
    return _ParsedField(tuple(sorted(values)), star, loose)


def _next_in(values: tuple[int, ...], at_least: int) -> int | None:
    i = bisect_left(values, at_least)
    return values[i] if i < len(values) else None


@dataclass(frozen=True)
class _Cron:
    """The six parsed fields, searched field by field (robfig's approach) rather than by second."""

    text: tuple[str, ...]  # the fields after `~` substitution, for describe()
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    doms: frozenset[int]
    dows: frozenset[int]
    dom_star: bool
    dow_star: bool
    hour_repeats: bool

    @classmethod
    def from_fields(cls, fields: list[str], originals: list[str]) -> _Cron:
        parsed = [
            _parse_field(f, o, k) for f, o, k in zip(fields, originals, _FIELD_KINDS, strict=True)
        ]
        sec, minute, hour, dom, month, dow = parsed
        return cls(
            text=tuple(fields),
            seconds=sec.values,
            minutes=minute.values,
            hours=hour.values,
            months=month.values,
            doms=frozenset(dom.values),
            dows=frozenset(dow.values),
            dom_star=dom.star,
            dow_star=dow.star,
            hour_repeats=hour.loose,
        )

    def _next_day(self, year: int, month: int, day: int) -> int | None:
        last = calendar.monthrange(year, month)[1]
        if day > last:
            return None
        weekday = (date(year, month, day).weekday() + 1) % 7  # cron counts Sunday as 0
        # robfig/Vixie: if either day field is a wildcard both must match, else either may.
        both = self.dom_star or self.dow_star
        for d in range(day, last + 1):
            dom_ok = d in self.doms
            dow_ok = weekday in self.dows
            if (dom_ok and dow_ok) if both else (dom_ok or dow_ok):
                return d
            weekday = (weekday + 1) % 7
        return None

    def next_wall(self, start: datetime, last_year: int) -> datetime | None:
        """First naive wall-clock time >= start matching every field, or None past last_year.

        A field that runs out increments its parent and resets the fields below; an out-of-range
        value (minute 60, hour 24, day 32, month 13) simply fails its lookup on the next pass, so
        carries need no special handling.
        """
        y, mo, d = start.year, start.month, start.day
        h, mi, s = start.hour, start.minute, start.second
        while y <= last_year:
            m = _next_in(self.months, mo)
            if m is None:
                y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
                continue
            if m != mo:
                mo, d, h, mi, s = m, 1, 0, 0, 0
            nd = self._next_day(y, mo, d)
            if nd is None:
                mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
                continue
            if nd != d:
                d, h, mi, s = nd, 0, 0, 0
            nh = _next_in(self.hours, h)
            if nh is None:
                d, h, mi, s = d + 1, 0, 0, 0
                continue
            if nh != h:
                h, mi, s = nh, 0, 0
            nmi = _next_in(self.minutes, mi)
            if nmi is None:
                h, mi, s = h + 1, 0, 0
                continue
            if nmi != mi:
                mi, s = nmi, 0
            ns = _next_in(self.seconds, s)
            if ns is None:
                mi, s = mi + 1, 0
                continue
            return datetime(y, mo, d, h, mi, ns)
        return None


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _wall(tz: ZoneInfo, instant: datetime) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _transition(tz: ZoneInfo, before: datetime, later: datetime) -> datetime:
    """First instant in (before, later] whose UTC offset differs from before's (one-second
    bisection; the caller knows the offsets at the two ends differ)."""
    offset = _offset(tz, before)
    lo, hi = 0, int((later - before).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(tz, before + timedelta(seconds=mid)) == offset:
            lo = mid
        else:
            hi = mid
    return before + timedelta(seconds=hi)


def _first_pass(cron: _Cron, tz: ZoneInfo, after: datetime, last_year: int) -> datetime | None:
    """Smallest fire instant > after, ignoring second passes of a repeated hour that start
    before after's own wall-clock time (see _second_pass).

    Walks matching wall times upwards from after's wall time. Each maps to one instant, none
    (spring-forward gap: jump to the gap's end) or two (fall-back overlap: the later one only
    when the hour field repeats; if neither is usable, jump to the overlap's end). Jumping
    keeps a per-second spec from crawling through an hour of rejected walls.
    """
    wall: datetime | None = _wall(tz, after.replace(microsecond=0))
    while wall is not None:
        wall = cron.next_wall(wall, last_year)
        if wall is None:
            return None
        first = wall.replace(tzinfo=tz).astimezone(UTC)
        second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        if first == second:
            if first > after:
                return first
        elif _wall(tz, first) != wall:  # in a gap; fold=1 maps before the change, fold=0 after
            wall = _wall(tz, _transition(tz, second, first))
            continue
        else:
            early, late = sorted((first, second))
            if early > after:
                return early
            # Only walls at or below after's own wall time get here. While after is still in
            # the first pass that is just its own wall (the second pass is _second_pass's job);
            # once after is in the second pass, the repeated walls fire (again) only if the
            # hour field repeats, else skip to the end of the overlap.
            if _offset(tz, after) == _offset(tz, late):
                if cron.hour_repeats:
                    if late > after:
                        return late
                else:
                    change = _transition(tz, early, late)
                    wall = _wall(tz, change - _ONE_SECOND) + _ONE_SECOND
                    continue
        wall += _ONE_SECOND
    return None


def _second_pass(cron: _Cron, tz: ZoneInfo, after: datetime, last_year: int) -> datetime | None:
    """For an hour field that repeats: the first fire in the second pass of a fall-back that
    comes within _MAX_SHIFT of after. Those walls lie below after's own wall time (at 01:50
    EDT the 01:00 EST pass is still ahead), so _first_pass never sees them."""
    start = after.replace(microsecond=0)
    horizon = start + _MAX_SHIFT
    if _offset(tz, horizon) >= _offset(tz, start):
        return None
    change = _transition(tz, start, horizon)
    low, high = _offset(tz, change), _offset(tz, change - _ONE_SECOND)
    overlap_start = change.replace(tzinfo=None) + low
    wall = cron.next_wall(overlap_start, last_year)
    if wall is None or wall >= overlap_start + (high - low):
        return None
    return change + (wall - overlap_start)


def _cron_next(cron: _Cron, tz: ZoneInfo, after: datetime) -> datetime | None:
    """Smallest fire instant > after (aware UTC): find matching naive wall-clock times by
    field-wise search, then map them to instants under the DST rules."""
    last_year = min(after.year + _SEARCH_YEARS, 9998)
    try:
        best = _first_pass(cron, tz, after, last_year)
        if cron.hour_repeats:
            repeat = _second_pass(cron, tz, after, last_year)
            if repeat is not None and (best is None or repeat < best):
                best = repeat
        return best
    except OverflowError:  # searching at the edge of datetime's range (year 1 or 9999)
        return None


# --- @every ------------------------------------------------------------------------------------


def _parse_go_duration(text: str) -> timedelta:
    """Go's time.ParseDuration ("1h30m", "1.5h", "500ms"), truncated to whole microseconds.

    The product's one parser (executors.values.parse_go_duration_ns) does the parsing; two
    things stay the schedule's own, as its tests and Dkron's messages have them: the result is
    truncated (not rounded) to the microsecond, so "999999999ns" stays below the 1s minimum,
    and the messages keep the schedule's wording.
    """
    try:
        nanoseconds = parse_go_duration_ns(text)
    except DurationError as exc:
        if exc.kind == "unknown_unit":
            raise ValueError(
                f"unknown unit '{exc.unit}' in duration '{text}' (use h, m, s, ms, us, ns)"
            ) from None
        if exc.kind == "too_long":
            raise ValueError(f"duration '{text}' is too large") from None
        raise ValueError(f"invalid duration '{text}'") from None
    return timedelta(microseconds=nanoseconds // 1000)


def _parse_every(argument: str) -> tuple[timedelta, str]:
    """The interval and, when it differs from the duration written, a note saying why.

    Dkron's cron library (robfig's Every()) raises anything below one second, zero and
    negative durations included, to 1s and truncates the rest to whole seconds; Dkron accepts
    such jobs, so we do too and say so in the description instead of refusing them.
    """
    if not argument:
        raise ScheduleError("@every needs a duration, e.g. '@every 1h30m'")
    try:
        duration = _parse_go_duration(argument)
    except ValueError as exc:
        raise ScheduleError(f"@every: {exc}") from None
    if duration < _ONE_SECOND:
        return _ONE_SECOND, f"{argument} is below the 1s minimum, as in Dkron"
    interval = timedelta(seconds=duration // _ONE_SECOND)
    if interval != duration:
        return interval, f"{argument} cut to whole seconds, as in Dkron"
    return interval, ""


def _format_duration(interval: timedelta) -> str:
    """Go-style compact duration without zero units: 1h30m, 10s, 24h."""
    total = int(interval.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v]
    return "".join(parts) or "0s"


# --- @at ---------------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"([Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def _parse_at(argument: str) -> datetime:
    match = _RFC3339.fullmatch(argument)
    if not match:
        raise ScheduleError(
            f"@at needs an RFC 3339 time with a UTC offset, e.g. '@at 2025-06-01T09:00:00Z' "
            f"(got '{argument}')"
        )
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    if match.group(9):
        sign = -1 if match.group(9) == "-" else 1
        offset = sign * timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
    else:
        offset = timedelta(0)
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, timezone(offset))
    except ValueError as exc:
        raise ScheduleError(f"@at: invalid time '{argument}': {exc}") from None
    return moment.astimezone(UTC)


# --- the schedule ------------------------------------------------------------------------------


def _require_aware(*moments: datetime | None) -> None:
    for moment in moments:
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(f"datetime must be timezone-aware, got naive {moment!r}")


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. Immutable and cached by parse(), so share it freely."""

    spec: str
    kind: str  # "cron" | "every" | "at" | "manual"
    tz: ZoneInfo
    _cron: _Cron | None = field(default=None, repr=False)
    _interval: timedelta | None = field(default=None, repr=False)
    _at: datetime | None = field(default=None, repr=False)
    # For @every: why the interval differs from the duration written (raised to 1s, truncated).
    _note: str = field(default="", repr=False)

    @property
    def interval(self) -> timedelta | None:
        """The @every interval (whole seconds), else None."""
        return self._interval

    @property
    def at(self) -> datetime | None:
        """The @at instant as an aware UTC datetime, else None."""
        return self._at

    def next_after(self, after: datetime, *, anchor: datetime | None = None) -> datetime | None:
        """First fire time strictly after `after`, as an aware UTC datetime.

        None when it never fires again (@manually, a past @at, or no cron match within
        _SEARCH_YEARS). For @every, fire times are anchor + k*interval (k >= 1) on absolute
        time; the anchor defaults to `after`.
        """
        _require_aware(after, anchor)
        after = after.astimezone(UTC)
        if self._cron is not None:
            return _cron_next(self._cron, self.tz, after)
        if self._interval is not None:
            base = after if anchor is None else anchor.astimezone(UTC)
            step = self._interval // timedelta(microseconds=1)
            elapsed = (after - base) // timedelta(microseconds=1)
            k = max(1, elapsed // step + 1)
            try:
                return base + k * self._interval
            except OverflowError:
                return None
        if self._at is not None:
            return self._at if self._at > after else None
        return None

    @property
    def hour_repeats(self) -> bool:
        """A cron hour field that is a wildcard or a step: it fires in both passes of a
        repeated (fall-back) hour; a fixed hour fires in the first pass only."""
        return self._cron is not None and self._cron.hour_repeats

    def first_wall_between(self, start: datetime, end: datetime) -> datetime | None:
        """First naive wall-clock time in [start, end) the cron fields match; None when none
        does or this is not a cron schedule. Says which fire times a DST gap swallows or an
        overlap repeats (jobs.preview)."""
        if self._cron is None:
            return None
        wall = self._cron.next_wall(start.replace(microsecond=0), end.year)
        return wall if wall is not None and wall < end else None

    def fires_between(
        self,
        start: datetime,
        end: datetime,
        *,
        anchor: datetime | None = None,
        limit: int = 1000,
    ) -> list[datetime]:
        """Fire times in (start, end], earliest first, at most `limit` of them (misfire catch-up).

        For @every without an anchor, the phase is taken from `start`.
        """
        _require_aware(start, end, anchor)
        if self.kind == "every" and anchor is None:
            anchor = start
        fires: list[datetime] = []
        moment = start
        while len(fires) < limit:
            fire = self.next_after(moment, anchor=anchor)
            if fire is None or fire > end:
                break
            fires.append(fire)
            moment = fire
        return fires


def name_hash(job_name: str) -> int:
    """Dkron's hash for `~`: the sum of the name's Unicode code points."""
    return sum(ord(c) for c in job_name)


def validate_timezone(name: str, *, default_tz: str = "UTC") -> ZoneInfo:
    """The zone for an IANA name; "" and "Local" mean default_tz (Go's server-local zone)."""
    key = default_tz if name in ("", "Local") else name
    try:
        return ZoneInfo(key or "UTC")
    except (ValueError, KeyError, OSError):  # bad key, not found, or a directory like "America"
        raise ScheduleError(f"unknown time zone '{name or key}'") from None


def parse(
    spec: str, *, job_name: str = "", timezone: str = "", default_tz: str = "UTC"
) -> Schedule:
    """Parse a Dkron schedule. `timezone` is the job's zone; a TZ=/CRON_TZ= prefix overrides it.

    Raises ScheduleError with a user-facing message.
    """
    return _parse(spec, job_name, timezone, default_tz)


@functools.lru_cache(maxsize=4096)
def _parse(spec: str, job_name: str, job_tz: str, default_tz: str) -> Schedule:
    text = spec.strip()
    if not text:
        raise ScheduleError("schedule is empty")
    if text.startswith(("TZ=", "CRON_TZ=")):
        prefix, *rest = text.split(None, 1)
        text = rest[0].strip() if rest else ""
        zone = prefix.partition("=")[2]
        if not zone:
            raise ScheduleError(f"'{prefix}' needs a time zone name, e.g. 'TZ=Europe/Berlin'")
        if not text:
            raise ScheduleError(f"schedule missing after '{prefix}'")
        tz = validate_timezone(zone, default_tz=default_tz)
    else:
        tz = validate_timezone(job_tz, default_tz=default_tz)

    if text.startswith("@"):
        return _parse_descriptor(spec, text, tz)

    originals = text.split()
    if len(originals) != 6:
        message = f"6 fields expected, seconds first (got {len(originals)}): '{text}'"
        if len(originals) == 5:
            message += f"; add a seconds field, e.g. '0 {text}'"
        raise ScheduleError(message)
    # Dkron replaces `~` textually, so `~/15` becomes e.g. `37/15` (37 to max, every 15).
    h = name_hash(job_name)
    fields = [
        f.replace("~", str(h % k.hash_modulo + k.hash_offset)) if "~" in f else f
        for f, k in zip(originals, _FIELD_KINDS, strict=True)
    ]
    return Schedule(spec, "cron", tz, _cron=_Cron.from_fields(fields, originals))


def _parse_descriptor(spec: str, text: str, tz: ZoneInfo) -> Schedule:
    parts = text.split(None, 1)
    keyword = parts[0].lower()
    argument = parts[1].strip() if len(parts) > 1 else ""
    if keyword == "@every":
        interval, note = _parse_every(argument)
        return Schedule(spec, "every", tz, _interval=interval, _note=note)
    if keyword == "@at":
        return Schedule(spec, "at", tz, _at=_parse_at(argument))
    if keyword not in _DESCRIPTORS and keyword != "@manually":
        close = difflib.get_close_matches(keyword, _ALL_DESCRIPTORS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ScheduleError(
            f"unknown descriptor '{parts[0]}'{hint} (known: {', '.join(_ALL_DESCRIPTORS)})"
        )
    if argument:
        raise ScheduleError(f"'{parts[0]}' takes no argument (got '{argument}')")
    if keyword == "@manually":
        return Schedule(spec, "manual", tz)
    fields = _DESCRIPTORS[keyword].split()
    return Schedule(spec, "cron", tz, _cron=_Cron.from_fields(fields, fields))


# --- describe ----------------------------------------------------------------------------------


def describe(schedule: Schedule) -> str:
    """Plain-language description, with the zone where the zone changes the meaning."""
    if schedule.interval is not None:
        note = f" ({schedule._note})" if schedule._note else ""
        return f"Every {_format_duration(schedule.interval)}{note}"
    if schedule.at is not None:
        local = schedule.at.astimezone(schedule.tz)
        return f"Once at {local:%Y-%m-%d %H:%M:%S} ({schedule.tz.key})"
    if schedule._cron is None:
        return "Only when run manually"
    return f"{_describe_cron(schedule._cron)} ({schedule.tz.key})"


def _descriptor_options() -> Options:
    options = Options()
    # Options() reads the process locale; pin English and 24-hour time so output is stable.
    options.locale_code = "en_US"
    options.use_24hour_time_format = True
    options.casing_type = CasingTypeEnum.Sentence
    options.verbose = False
    return options


@functools.lru_cache(maxsize=1024)
def _describe_cron(cron: _Cron) -> str:
    sec, minute, hour, dom, month, dow = (f.replace("?", "*") for f in cron.text)
    try:
        # Seven fields (year "*") so cron-descriptor never mistakes seconds for minutes.
        descriptor = ExpressionDescriptor(
            f"{sec} {minute} {hour} {dom} {month} {dow} *", _descriptor_options()
        )
        time_text = descriptor.get_time_of_day_description()
        hour_range = re.fullmatch(r"(\d+)-(\d+)", hour)
        if hour_range and sec.isdigit() and minute.isdigit():
            # cron-descriptor says "between 09:00 and 17:59" for `0 0 9-17`, which reads as
            # every minute; spell out the hourly firing instead.
            seconds = f":{int(sec):02}" if int(sec) else ""
            first, last = (f"{int(h):02}:{int(minute):02}{seconds}" for h in hour_range.groups())
            time_text = f"every hour from {first} through {last}"
        dom_text = descriptor.get_day_of_month_description()
        dow_text = descriptor.get_day_of_week_description()
        if dom_text and dow_text and not (cron.dom_star or cron.dow_star):
            # Both day fields restricted: either may match, which cron-descriptor renders as
            # "and". Say "or".
            days = f"{dom_text}, or {dow_text.removeprefix(', ').removeprefix('only ')}"
        else:
            days = dom_text + dow_text
        text = descriptor.transform_verbosity(
            time_text + days + descriptor.get_month_description(), False
        )
        return str(ExpressionDescriptor.transform_case(text, CasingTypeEnum.Sentence))
    # cron-descriptor may choke on something we accept (its errors are not all one class);
    # a description is not worth failing for, so show the fields instead.
    except Exception:  # noqa: BLE001
        return f"Cron '{' '.join(cron.text)}'"
