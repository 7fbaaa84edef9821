"""Calendar services: create, replace, import an iCalendar file, delete (refused while jobs
name the calendar). What a calendar means is jobs.calendars'."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q

from jobs import calendars, timeutil
from jobs.errors import Conflict, InvalidJob, NotFound
from jobs.models import Calendar, Job
from jobs.services.audit import SYSTEM, Actor, audit_record

FIELDS = ("timezone", "description", "dates", "ranges", "windows")


class InvalidCalendar(InvalidJob):
    """A calendar that cannot be stored (400); `details` names the field."""


def _invalid(exc: calendars.InvalidCalendar) -> InvalidCalendar:
    return InvalidCalendar(f"Calendar validation failed: {exc.message}.", exc.details)


def calendar_get(name: str) -> Calendar:
    if "\x00" in name or len(name) > 255:
        raise NotFound(f"calendar {name[:255]!r} not found")
    try:
        return Calendar.objects.get(name=name)
    except Calendar.DoesNotExist:
        raise NotFound(f"calendar '{name}' not found") from None


def calendar_to_dict(calendar: Calendar) -> dict[str, Any]:
    """A calendar as the API, the export and the admin show it."""
    return {
        "name": calendar.name,
        **calendar.definition(),
        "updated_at": timeutil.rfc3339(calendar.updated_at) if calendar.updated_at else None,
    }


def clean(data: dict[str, Any]) -> dict[str, Any]:
    """The stored definition of `data`, with its `ics` text (if any) merged in; checks only."""
    if not isinstance(data, dict):
        raise InvalidCalendar("Calendar validation failed: expected a JSON object.", {})
    try:
        definition = calendars.clean_definition(data)
        ics = data.get("ics")
        if ics:
            definition = _merge_ics(definition, ics)
    except calendars.InvalidCalendar as exc:
        raise _invalid(exc) from None
    return definition


def _merge_ics(definition: dict[str, Any], ics: Any) -> dict[str, Any]:
    zone = calendars.zone_of(definition["timezone"])
    dates, ranges = calendars.parse_ics(ics, zone=zone, today=timeutil.now().date())
    return calendars.clean_definition(
        {
            **definition,
            "dates": [*definition["dates"], *dates],
            "ranges": [*definition["ranges"], *ranges],
        }
    )


def calendar_check(*, name: str, data: dict[str, Any]) -> dict[str, Any]:
    """What calendar_upsert would refuse, without writing; the stored definition of `data`."""
    try:
        calendars.clean_name(name)
    except calendars.InvalidCalendar as exc:
        raise _invalid(exc) from None
    return clean(data)


def calendar_upsert(
    *, name: str, data: dict[str, Any], actor: Actor = SYSTEM, create_only: bool = False
) -> tuple[Calendar, bool]:
    """Create or fully replace a calendar; the jobs that name it get their next fire again.

    The definition (an .ics import can take a second of CPU) is checked before the
    transaction: on SQLite a write transaction holds the database's one write lock, and the
    scheduler's next tick would wait for it."""
    definition = calendar_check(name=name, data=data)
    return _store(name=name, definition=definition, actor=actor, create_only=create_only)


@transaction.atomic
def _store(
    *, name: str, definition: dict[str, Any], actor: Actor, create_only: bool
) -> tuple[Calendar, bool]:
    calendar = Calendar.objects.select_for_update().filter(name=name).first()
    created = calendar is None
    if calendar is None:
        calendar = Calendar(name=name)
    elif create_only:
        raise Conflict(f"calendar '{name}' already exists", {"name": "taken"})
    for field in FIELDS:
        setattr(calendar, field, definition[field])
    calendar.save()
    if not created:
        _reschedule(name)
    audit_record(
        actor=actor,
        action="calendar_create" if created else "calendar_update",
        target=name,
        detail={"dates": len(calendar.dates), "ranges": len(calendar.ranges)},
    )
    return calendar, created


def calendar_import_ics(
    *, calendar: Calendar, ics: Any, replace: bool = False, actor: Actor = SYSTEM
) -> Calendar:
    """Add the events of an iCalendar file to a calendar (`replace`: instead of its dates
    and ranges); its weekly windows stay."""
    definition = calendar.definition()
    if replace:
        definition = {**definition, "dates": [], "ranges": []}
    return calendar_upsert(name=calendar.name, data={**definition, "ics": ics}, actor=actor)[0]


def jobs_naming(name: str) -> list[str]:
    """The jobs whose exclude_calendars or only_calendars name this calendar.

    Read in Python, not with a JSON lookup (SQLite has no `contains` on JSON): only jobs that
    name some calendar are read, and only their names and lists."""
    rows = (
        Job.objects.exclude(exclude_calendars=[], only_calendars=[])
        .order_by("name")
        .values_list("name", "exclude_calendars", "only_calendars")
    )
    return [job for job, ex, only in rows if name in (ex or []) or name in (only or [])]


def _reschedule(name: str) -> None:
    """A changed calendar moves the next fire of the enabled jobs that name it: those whose
    next fire is ahead, and those it had left with none (an `only_calendars` calendar with
    nothing ahead). A due one is the scheduler's to fire or count missed."""
    from jobs.timing import compute_next_run, next_run_from_now

    now = timeutil.now()
    names = jobs_naming(name)
    ahead_or_none = Q(next_run__gt=now) | Q(next_run__isnull=True)
    for job in Job.objects.filter(ahead_or_none, name__in=names, disabled=False):
        if job.next_run is None:  # from now on only: never a catch-up of a past @at
            nxt = next_run_from_now(job, now=now)
            Job.objects.filter(pk=job.pk, next_run__isnull=True).update(next_run=nxt)
        else:
            nxt = compute_next_run(job, after=now)
            Job.objects.filter(pk=job.pk, next_run=job.next_run).update(next_run=nxt)


@transaction.atomic
def calendar_delete(*, calendar: Calendar, actor: Actor = SYSTEM) -> None:
    """Delete a calendar no job names; 409 naming the jobs otherwise (a job would otherwise
    fire in its blackout, or never, without anyone having said so)."""
    users = jobs_naming(calendar.name)
    if users:
        shown = ", ".join(users[:20]) + (f" and {len(users) - 20} more" if len(users) > 20 else "")
        raise Conflict(
            f"calendar '{calendar.name}' is used by jobs: {shown}; remove it from them first",
            {"jobs": users[:100]},
        )
    name = calendar.name
    calendar.delete()
    audit_record(actor=actor, action="calendar_delete", target=name)


def unknown_names(names: list[str]) -> list[str]:
    """Which of these calendar names do not exist (job validation)."""
    if not names:
        return []
    known = set(Calendar.objects.filter(name__in=names).values_list("name", flat=True))
    return [n for n in names if n not in known]
