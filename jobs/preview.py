"""Schedule previews: a job's next fire times, saved or not, with what the calendar, daylight
saving time and jitter do to them (`GET /v1/jobs/{name}/next`, `POST /v1/schedule/preview`,
the job form's live preview).

Reads only. Each fire is given in UTC and on the schedule zone's wall clock (with its offset),
with the schedule times skipped since the previous fire (an excluded calendar stretch, a wall
time a DST change swallows) and the DST change that lies between the two, so a user sees the
02:30 that does not happen on the day the clocks go forward before saving the job.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jobs import calendars, timing
from jobs import schedule as sched
from jobs.errors import DomainError
from jobs.models import Job

MAX_COUNT = 100
DEFAULT_COUNT = 10
MAX_SKIPPED = 20  # skipped times listed before one fire; past that they are counted
MAX_STEPS = 20_000  # schedule times looked at in all (a per-second job under a long calendar)
_TINY = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)


def clean_count(value: Any) -> int:
    """`count`: 1..MAX_COUNT, DEFAULT_COUNT when absent; 400 naming it otherwise."""
    if value in (None, ""):
        return DEFAULT_COUNT
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise DomainError(
            f"count: must be a whole number from 1 to {MAX_COUNT}", {"count": "1 to 100"}
        )
    return value


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


MAX_LOST = 60  # swallowed wall times listed per DST gap (a per-second schedule loses 3,600)


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(zone).utcoffset() or timedelta(0)


def _transition(zone: ZoneInfo, before: datetime, later: datetime) -> datetime:
    """The first instant in (before, later] whose offset differs from before's (bisection)."""
    offset = _offset(zone, before)
    lo, hi = 0, int((later - before).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(zone, before + timedelta(seconds=mid)) == offset:
            lo = mid
        else:
            hi = mid
    return before + timedelta(seconds=hi)


def _dst(
    schedule: sched.Schedule, zone: ZoneInfo, previous: datetime, fire: datetime
) -> tuple[str | None, str, list[dict[str, Any]]]:
    """The DST change between two fires: "starts" or "ends" (None), a note, and the wall time
    the schedule names inside a spring-forward gap (it does not happen that day)."""
    before, after = _offset(zone, previous), _offset(zone, fire)
    if before == after:
        return None, "", []
    change = _transition(zone, previous, fire)
    # Wall clock just before the change; the gap or the overlap is (after - before) long.
    wall = change.replace(tzinfo=None) + before
    day = f"{wall:%Y-%m-%d}"
    if after > before:
        gap_end = wall + (after - before)
        skipped: list[dict[str, Any]] = []
        note = f"DST starts on {day}: clocks go from {wall:%H:%M} to {gap_end:%H:%M}"
        cursor = wall
        # Every wall time the gap swallows (0 */30: both 02:00 and 02:30), up to a page of them.
        while len(skipped) < MAX_LOST and (lost := schedule.first_wall_between(cursor, gap_end)):
            skipped.append(
                {
                    "utc": None,
                    "local": lost.isoformat(),
                    "reason": f"{lost:%H:%M:%S} does not exist on {day} (DST starts)",
                }
            )
            cursor = lost + timedelta(seconds=1)
        return "starts", note, skipped
    overlap_start = wall - (before - after)
    note = f"DST ends on {day}: clocks go back from {wall:%H:%M} to {overlap_start:%H:%M}"
    twice = schedule.first_wall_between(overlap_start, wall)
    if twice is not None:
        if schedule.hour_repeats:
            note += "; the repeated hour fires in both passes"
        else:
            note += f"; {twice:%H:%M:%S} happens twice and fires once (the first time)"
    return "ends", note, []


def _skip(moment: datetime, zone: ZoneInfo, reason: str) -> dict[str, Any]:
    return {"utc": _iso(moment), "local": moment.astimezone(zone).isoformat(), "reason": reason}


def fires(job: Job, *, count: int, now: datetime) -> dict[str, Any]:
    """The next `count` fire times of `job` (saved or built from a form) after `now`."""
    try:
        schedule = timing.parse_job_schedule(job)
    except sched.ScheduleError as exc:
        raise DomainError(f"schedule: {exc}", {"schedule": str(exc)}) from None
    answer: dict[str, Any] = {
        "schedule": job.schedule,
        "timezone": "",
        "description": "",
        "count": 0,
        "fires": [],
        "note": "",
    }
    if job.parent_id is not None:
        answer["note"] = "a dependent job runs after its parent succeeds, never on its own"
        return answer
    if schedule is None or schedule.kind == "manual":
        answer["note"] = "it runs only when started by hand"
        if schedule is not None:
            answer["timezone"], answer["description"] = schedule.tz.key, sched.describe(schedule)
        return answer
    zone = schedule.tz
    answer["timezone"], answer["description"] = zone.key, sched.describe(schedule)
    anchor = job.anchor or (now if schedule.kind == "every" else None)
    moment = now
    if job.starts_at and job.starts_at > now:
        moment = job.starts_at - _TINY
    previous = moment
    skipped: list[dict[str, Any]] = []
    more = 0
    out: list[dict[str, Any]] = []
    for _ in range(MAX_STEPS):
        if len(out) >= count:
            break
        fire = schedule.next_after(moment, anchor=anchor)
        if fire is None or (job.expires_at and fire > job.expires_at):
            break
        reason = calendars.exclusion_reason(job, fire)
        if reason:
            if len(skipped) < MAX_SKIPPED:
                skipped.append(_skip(fire, zone, reason))
                moment = fire
                continue
            # Many in a row: jump the stretch (the rest are counted, not listed).
            allowed = calendars.next_allowed(
                job, fire, lambda t: schedule.next_after(t, anchor=anchor)
            )
            more += 1
            if allowed is None:
                break
            moment = allowed - _TINY
            continue
        dst, note, lost = _dst(schedule, zone, previous, fire)
        entry: dict[str, Any] = {
            "utc": _iso(fire),
            "local": fire.astimezone(zone).isoformat(),
            "local_text": fire.astimezone(zone).strftime("%a %Y-%m-%d %H:%M:%S %Z"),
            "skipped": lost + skipped,
            "skipped_more": more > 0,
            "dst": dst,
            "dst_note": note,
        }
        if job.jitter > 0:
            offset = timing.jitter_offset(job, fire)
            entry["jitter"] = offset.total_seconds()
            entry["starts"] = _iso(fire + offset)
        out.append(entry)
        previous = moment = fire
        skipped, more = [], 0
        if schedule.kind == "at":
            break
    answer["fires"], answer["count"] = out, len(out)
    if not out:
        answer["note"] = "it will not fire again"
    elif job.disabled:
        answer["note"] = "the job is disabled: these times are skipped until it is enabled"
    return answer
