"""Backfills: run a job's past fire times over a range, once each, at a bounded concurrency.

A backfill is a catch-up the operator asks for. It takes the fire path every scheduled and
catch-up fire takes (`runs.start_runs`, trigger `backfill`), so its runs get the scheduled
time's fire key (job, scheduled_at): a time the scheduler fired, or another backfill ran,
conflicts and is passed over, and two identical backfills run each missing time once.

1. `backfill_plan` lists the job's fire times in [from, to] in its zone and says for each
   whether it is included and why (the dry run's answer); `backfill_start` stores the
   included ones as pending items of a `Backfill`.
2. The scheduler leader calls `backfills_tick` on each tick: under the backfill row's lock it
   counts the backfill's active runs, and starts the next pending items while fewer than
   `max_concurrency` are active (a small batch a tick), deciding each again at that moment.
3. Re-running a time that ran (`reprocess` failed or all) moves the fire key: the earlier run
   is released from it (its `scheduled_at` cleared by a conditional update that only a
   finished run still holding the key passes) and a new run takes the key in the same
   transaction. The earlier run stays in history (its executions keep their scheduled time),
   and the key still names exactly one run, so a time is never run twice at once and a
   concurrent re-run of the same time finds the key taken and passes it over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils.dateparse import parse_date, parse_datetime

from jobs import calendars, timeutil
from jobs import schedule as sched
from jobs.errors import Conflict, DomainError
from jobs.models import Backfill, BackfillItem, Concurrency, Job, JobStatus, Run
from jobs.services import runs as run_services
from jobs.services.audit import SYSTEM, Actor, audit_record
from jobs.timing import parse_job_schedule

log = logging.getLogger("dkronweb.backfill")

MAX_TIMES = 10_000  # fire times one backfill may cover (more: 400, split the range)
BATCH = 100  # items one backfill starts per tick at most
OPEN_PER_TICK = 50  # backfills advanced per tick at most (oldest first)
OPEN = (Backfill.State.PENDING, Backfill.State.RUNNING)
FAILED_STATUSES = (JobStatus.FAILED, JobStatus.PARTIALLY_FAILED, "skipped")
_TINY = timedelta(microseconds=1)


@dataclass(frozen=True)
class Request:
    """A backfill request, checked: the range (aware UTC, `to` clamped to now) and options."""

    range_from: datetime
    range_to: datetime
    reprocess: str
    max_concurrency: int
    dry_run: bool


@dataclass(frozen=True)
class Planned:
    """One fire time of the range: whether the backfill runs it, and why (or why not)."""

    scheduled_at: datetime
    included: bool
    reason: str
    run_id: int | None = None  # the run holding the fire key now, if any


# No backfill reaches before the Unix epoch: older times are typing mistakes (year 0001 also
# overflowed the conversion to UTC, a 500).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def _time(job: Job, value: Any, field: str) -> datetime:
    """An RFC 3339 time; one without an offset is read on the job's own wall clock."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            parsed = parse_datetime(text)
            day = parse_date(text) if parsed is None else None
        except ValueError:
            parsed = day = None
        if day is not None:  # a bare date: its midnight on the job's wall clock
            parsed = datetime(day.year, day.month, day.day)
        if parsed is None:
            raise DomainError(
                f"{field}: '{value[:64]}' is not a time (RFC 3339, e.g. 2026-03-01T00:00:00Z)",
                {field: "not a time"},
            )
        moment = parsed
    elif value is None or value == "":
        raise DomainError(f"{field} is required (an RFC 3339 time)", {field: "required"})
    else:
        raise DomainError(f"{field}: must be an RFC 3339 time (a string)", {field: "not a time"})
    try:
        if moment.utcoffset() is None:
            moment = moment.replace(tzinfo=_zone(job))
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC: before the first datetime there is
        moment = EARLIEST - _TINY
    if moment < EARLIEST:
        raise DomainError(
            f"{field}: before {EARLIEST.date()}; no fire time is that old", {field: "too early"}
        )
    return moment


def _zone(job: Job) -> ZoneInfo:
    try:
        parsed = parse_job_schedule(job)
    except sched.ScheduleError:
        parsed = None
    if parsed is not None:
        return parsed.tz
    return sched.validate_timezone(job.timezone, default_tz=settings.TIME_ZONE)


def clean_request(*, job: Job, data: Any, now: datetime | None = None) -> Request:
    """Check a backfill body; a DomainError (400) naming the field when it is wrong."""
    if not isinstance(data, dict):
        raise DomainError("the backfill body must be a JSON object", {})
    now = now or timeutil.now()
    range_from = _time(job, data.get("from"), "from")
    to_given = data.get("to")
    range_to = now if to_given in (None, "") else _time(job, to_given, "to")
    if range_from > range_to:
        raise DomainError("from: must not be after to", {"from": "after to"})
    if range_from > now:
        raise DomainError("from: is in the future (the scheduler runs those)", {"from": "future"})
    range_to = min(range_to, now)  # the times still to come are the scheduler's
    reprocess = data.get("reprocess", Backfill.Reprocess.MISSING)
    if reprocess in (None, ""):
        reprocess = Backfill.Reprocess.MISSING
    if reprocess not in Backfill.Reprocess.values:
        known = ", ".join(Backfill.Reprocess.values)
        raise DomainError(
            f"reprocess: '{str(reprocess)[:32]}' is not one of {known}", {"reprocess": "unknown"}
        )
    concurrency = data.get("max_concurrency", 1)
    if concurrency in (None, ""):
        concurrency = 1
    if isinstance(concurrency, str) and concurrency.isascii() and concurrency.isdigit():
        concurrency = int(concurrency)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise DomainError(
            "max_concurrency: must be a whole number of at least 1",
            {"max_concurrency": "at least 1"},
        )
    if concurrency > 1000:
        raise DomainError("max_concurrency: at most 1000", {"max_concurrency": "at most 1000"})
    dry_run = data.get("dry_run", False)
    if isinstance(dry_run, str) and dry_run.lower() in ("true", "false", "1", "0"):
        dry_run = dry_run.lower() in ("true", "1")
    if not isinstance(dry_run, bool):
        raise DomainError("dry_run: must be true or false", {"dry_run": "not a boolean"})
    return Request(range_from, range_to, str(reprocess), concurrency, dry_run)


def fire_times(job: Job, request: Request) -> list[datetime]:
    """The job's fire times in [from, to] (its schedule, in its zone); 400 past MAX_TIMES."""
    if job.parent_id is not None:
        raise DomainError(
            "job: a dependent job runs after its parent and has no fire times to backfill",
            {"job": "dependent"},
        )
    try:
        schedule = parse_job_schedule(job)
    except sched.ScheduleError as exc:
        raise DomainError(f"job: its schedule cannot be used: {exc}", {"job": "schedule"}) from None
    if schedule is None or schedule.kind == "manual":
        raise DomainError("job: it has no schedule to backfill", {"job": "no schedule"})
    anchor = job.anchor
    if schedule.interval is not None and anchor is not None and anchor > request.range_from:
        # @every runs in the phase set when its schedule was set; before that moment its
        # times are the same phase extended back (a new job's last month has its times too).
        anchor -= ((anchor - request.range_from) // schedule.interval + 1) * schedule.interval
    times = schedule.fires_between(
        request.range_from - _TINY, request.range_to, anchor=anchor, limit=MAX_TIMES + 1
    )
    if len(times) > MAX_TIMES:
        raise DomainError(
            f"from: the range holds more than {MAX_TIMES:,} fire times; split it",
            {"from": "range too long", "to": "range too long"},
        )
    return times


def _decide(job: Job, t: datetime, run: Run | None, reprocess: str) -> tuple[bool, str]:
    """Whether time `t` runs under `reprocess`, given the run holding its key (if any)."""
    if job.starts_at and t < job.starts_at:
        return False, "before the job's starts_at"
    if job.expires_at and t > job.expires_at:
        return False, "after the job's expires_at"
    reason = calendars.exclusion_reason(job, t)
    if reason:
        return False, reason
    if run is None:
        return True, "missing: never ran"
    if not run.finished:
        return False, f"running: run {run.pk} has not finished"
    status = run.status or "unknown"
    if reprocess == Backfill.Reprocess.ALL:
        return True, f"re-run: run {run.pk} ended {status} (reprocess=all)"
    if reprocess == Backfill.Reprocess.FAILED and status in FAILED_STATUSES:
        return True, f"re-run: run {run.pk} ended {status} (reprocess=failed)"
    return False, f"already ran: run {run.pk} ended {status}"


def _runs_at(job: Job, times: list[datetime]) -> dict[datetime, Run]:
    if not times:
        return {}
    rows = Run.objects.filter(
        job=job, scheduled_at__gte=min(times), scheduled_at__lte=max(times)
    ).only("pk", "scheduled_at", "status", "finished")
    wanted = set(times)
    return {r.scheduled_at: r for r in rows if r.scheduled_at in wanted}


def backfill_plan(*, job: Job, request: Request) -> list[Planned]:
    """Every fire time of the range with its verdict (reads only: the dry run)."""
    times = fire_times(job, request)
    taken = _runs_at(job, times)
    planned = []
    for t in times:
        run = taken.get(t)
        included, reason = _decide(job, t, run, request.reprocess)
        planned.append(Planned(t, included, reason, run.pk if run else None))
    return planned


@transaction.atomic
def backfill_start(*, job: Job, request: Request, actor: Actor = SYSTEM) -> Backfill:
    """Store a backfill and its included fire times; the scheduler leader runs them."""
    planned = backfill_plan(job=job, request=request)
    included = [p for p in planned if p.included]
    now = timeutil.now()
    backfill = Backfill.objects.create(
        job=job,
        range_from=request.range_from,
        range_to=request.range_to,
        reprocess=request.reprocess,
        max_concurrency=request.max_concurrency,
        state=Backfill.State.PENDING if included else Backfill.State.DONE,
        fire_times=len(planned),
        total=len(included),
        actor=actor.name[:150],
        finished_at=None if included else now,
    )
    BackfillItem.objects.bulk_create(
        [BackfillItem(backfill=backfill, scheduled_at=p.scheduled_at) for p in included],
        batch_size=1000,
    )
    audit_record(
        actor=actor,
        action="backfill",
        target=job.name,
        detail={
            "backfill": backfill.pk,
            "from": request.range_from.isoformat(),
            "to": request.range_to.isoformat(),
            "reprocess": request.reprocess,
            "max_concurrency": request.max_concurrency,
            "total": len(included),
        },
    )
    return backfill


@transaction.atomic
def backfill_cancel(*, backfill: Backfill, actor: Actor = SYSTEM) -> Backfill:
    """Stop a backfill: its pending times never start; runs already started finish."""
    now = timeutil.now()
    changed = Backfill.objects.filter(pk=backfill.pk, state__in=OPEN).update(
        state=Backfill.State.CANCELLED, cancelled_at=now, finished_at=now
    )
    if not changed:
        backfill.refresh_from_db()
        raise Conflict(f"backfill {backfill.pk} has ended already (state {backfill.state})")
    BackfillItem.objects.filter(backfill=backfill, state=BackfillItem.State.PENDING).update(
        state=BackfillItem.State.CANCELLED, reason="cancelled"
    )
    audit_record(
        actor=actor,
        action="backfill_cancel",
        target=backfill.job.name,
        detail={"backfill": backfill.pk},
    )
    backfill.refresh_from_db()
    return backfill


@dataclass
class TickReport:
    started: int = 0  # runs started this tick
    open: int = 0  # backfills still open after it (the scheduler wakes sooner while any are)


def backfills_tick(*, now: datetime | None = None) -> TickReport:
    """Advance the open backfills, oldest first (the scheduler leader, once a tick)."""
    report = TickReport()
    ids = list(
        Backfill.objects.filter(state__in=OPEN)
        .order_by("id")
        .values_list("pk", flat=True)[:OPEN_PER_TICK]
    )
    for pk in ids:
        try:
            with transaction.atomic():
                started, still_open = _advance(pk, now=now or timeutil.now())
        except (OperationalError, InterfaceError):
            raise  # the database is away: the scheduler's tick retries
        except Exception as exc:
            log.exception("backfill %s cannot go on; marking it failed", pk)
            Backfill.objects.filter(pk=pk, state__in=OPEN).update(
                state=Backfill.State.FAILED, error=str(exc)[:255], finished_at=timeutil.now()
            )
            continue
        report.started += started
        report.open += still_open
    return report


def _advance(pk: int, *, now: datetime) -> tuple[int, bool]:
    """One backfill's step, under its row's lock (two advancers never start the same item).

    1. Items whose run finished (or was trimmed from history) are done.
    2. Room = max_concurrency less its active runs; a job whose concurrency is forbid or
       replace takes one at a time, and none while any run of it (a scheduled one too) is
       active.
    3. The next pending items, oldest first, are decided again now and started in one
       `start_runs` batch; a key taken meanwhile (the scheduler fired it) passes the item.
    """
    backfill = Backfill.objects.select_for_update().filter(pk=pk, state__in=OPEN).first()
    if backfill is None:
        return 0, False
    job = Job.objects.get(pk=backfill.job_id)
    items = BackfillItem.objects.filter(backfill=backfill)
    started = items.filter(state=BackfillItem.State.STARTED)
    active = set(started.filter(run__finished=False).values_list("pk", flat=True))
    done = started.exclude(pk__in=active).update(state=BackfillItem.State.DONE)
    backfill.finished += done
    room = backfill.max_concurrency - len(active)
    if job.concurrency in (Concurrency.FORBID, Concurrency.REPLACE):
        # Forbid would skip a run started while another is active, replace would kill it.
        room = 0 if run_services.has_active_run(job) else min(room, 1)
    launched = 0
    if room > 0:
        batch = list(items.filter(state=BackfillItem.State.PENDING)[: min(room, BATCH)])
        launched = _launch(backfill, job, batch)
    if backfill.state == Backfill.State.PENDING:
        backfill.state, backfill.started_at = Backfill.State.RUNNING, now
    still_open = True
    if not items.filter(
        state__in=(BackfillItem.State.PENDING, BackfillItem.State.STARTED)
    ).exists():
        backfill.state, backfill.finished_at, still_open = Backfill.State.DONE, now, False
    backfill.save(
        update_fields=["state", "started_at", "finished_at", "created", "skipped", "finished"]
    )
    return launched, still_open


def _launch(backfill: Backfill, job: Job, batch: list[BackfillItem]) -> int:
    if not batch:
        return 0
    taken = _runs_at(job, [i.scheduled_at for i in batch])
    fires: list[run_services.Fire] = []
    passed: list[BackfillItem] = []
    for item in batch:
        run = taken.get(item.scheduled_at)
        included, reason = _decide(job, item.scheduled_at, run, backfill.reprocess)
        if included and run is not None:
            # Release the key from the finished run (see the module docstring, step 3).
            released = Run.objects.filter(
                pk=run.pk, scheduled_at=item.scheduled_at, finished=True
            ).update(scheduled_at=None)
            if not released:
                included, reason = False, f"running: run {run.pk} started again meanwhile"
            else:
                item.previous_run_id = run.pk
        if not included:
            item.state, item.reason = BackfillItem.State.SKIPPED, reason[:255]
            passed.append(item)
            continue
        item.reason = reason[:255]
        fires.append(
            run_services.Fire(job=job, scheduled_at=item.scheduled_at, trigger=Run.Trigger.BACKFILL)
        )
    runs = {r.scheduled_at: r for r in run_services.start_runs(fires)}
    for item in batch:
        if item.state != BackfillItem.State.PENDING:
            continue
        run = runs.get(item.scheduled_at)
        if run is None:
            item.state, item.reason = BackfillItem.State.SKIPPED, "already ran: fired meanwhile"
            passed.append(item)
        else:
            item.state, item.run_id = BackfillItem.State.STARTED, run.pk
    BackfillItem.objects.bulk_update(batch, ["state", "reason", "run", "previous_run"])
    backfill.skipped += len(passed)
    backfill.created += len(runs)
    return len(runs)


def backfill_to_dict(backfill: Backfill) -> dict[str, Any]:
    """A backfill as the API answers it (and the UI's progress view reads it)."""
    return {
        "id": backfill.pk,
        "job": backfill.job.name,
        "from": iso(backfill.range_from),
        "to": iso(backfill.range_to),
        "reprocess": backfill.reprocess,
        "max_concurrency": backfill.max_concurrency,
        "state": backfill.state,
        "fire_times": backfill.fire_times,
        "total": backfill.total,
        "created": backfill.created,
        "skipped": backfill.skipped,
        "finished": backfill.finished,
        "pending": max(0, backfill.total - backfill.created - backfill.skipped)
        if backfill.state in OPEN
        else 0,
        "error": backfill.error,
        "actor": backfill.actor,
        "created_at": iso(backfill.created_at),
        "started_at": iso(backfill.started_at),
        "finished_at": iso(backfill.finished_at),
        "cancelled_at": iso(backfill.cancelled_at),
    }


def planned_to_dict(planned: Planned, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "scheduled_at": iso(planned.scheduled_at),
        "local": planned.scheduled_at.astimezone(zone).isoformat(),
        "included": planned.included,
        "reason": planned.reason,
        "run": planned.run_id,
    }


def job_zone(job: Job) -> ZoneInfo:
    """The zone the job's fire times are read in (its schedule's, TZ= prefix included)."""
    return _zone(job)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
