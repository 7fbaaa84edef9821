"""When a job fires next: its schedule applied to its window (start, expiry, parent, disabled).

Reads only: the services that store `next_run`, the wire format that shows `next` and the
UI all ask here, so they agree.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from django.conf import settings

from jobs import calendars, timeutil
from jobs import schedule as sched
from jobs.models import Job


def parse_job_schedule(job: Job) -> sched.Schedule | None:
    if not job.schedule:
        return None
    return sched.parse(
        job.schedule, job_name=job.name, timezone=job.timezone, default_tz=settings.TIME_ZONE
    )


def compute_next_run(job: Job, *, after: datetime) -> datetime | None:
    """The true next fire time after `after`, honouring the start/expiry window."""
    if job.parent_id is not None:
        return None  # Dkron never schedules a child: it runs only after its parent succeeds
    schedule = parse_job_schedule(job)
    if schedule is None:
        return None
    if schedule.kind == "at":
        # Kept even when past: the scheduler treats a past @at as a misfire (policy decides).
        candidate = schedule.at
    else:
        base = after
        if job.starts_at and job.starts_at > after:
            base = job.starts_at - timedelta(microseconds=1)
        candidate = schedule.next_after(base, anchor=job.anchor)
        # Past the times the job's calendars exclude, so `next` is the real next fire.
        candidate = calendars.next_allowed(
            job, candidate, lambda t: schedule.next_after(t, anchor=job.anchor)
        )
    if candidate is not None and job.expires_at and candidate > job.expires_at:
        return None
    return candidate


def next_run_from_now(job: Job, *, now: datetime) -> datetime | None:
    """The first fire time after `now` for a job that comes (back) onto the schedule.

    Time spent disabled is not missed time: Dkron takes a disabled job out of cron and adds it
    back on enable, so the next fire is the first one after the enable, whatever the misfire
    policy. A past @at therefore never fires (compute_next_run keeps it, as a misfire, for a job
    that was enabled all along).
    """
    candidate = compute_next_run(job, after=now)
    if candidate is not None and candidate <= now:
        return None
    return candidate


def jitter_offset(job: Job, scheduled: datetime) -> timedelta:
    """Where in its jitter window the fire scheduled at `scheduled` starts (issue 16).

    A hash of the job's name and the scheduled time, never a random draw: every scheduler,
    a restarted one and one that took over after a failover compute the same offset, so a
    fire neither moves nor runs twice when the scheduler changes. Millisecond steps.
    """
    window_ms = int(job.jitter * 1000)
    if window_ms <= 0:
        return timedelta(0)
    key = f"{job.name}\x00{scheduled.astimezone(UTC).isoformat()}".encode()
    digest = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
    return timedelta(milliseconds=digest % window_ms)


def fire_start(job: Job, scheduled: datetime) -> datetime:
    """When the fire scheduled at `scheduled` starts: the scheduled time plus its offset."""
    return scheduled + jitter_offset(job, scheduled)


def next_fields(job: Job, scheduled: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The stored pair for the next fire scheduled at `scheduled`: `next_run`, when it starts
    (what the scheduler's index orders), and `next_scheduled`, its scheduled time (the fire
    key) when jitter moved it, else None."""
    if scheduled is None or job.jitter <= 0:
        return scheduled, None
    start = fire_start(job, scheduled)
    return start, (scheduled if start != scheduled else None)


def set_next(job: Job, scheduled: datetime | None) -> None:
    """Store the next fire scheduled at `scheduled` on the job (see `next_fields`)."""
    job.next_run, job.next_scheduled = next_fields(job, scheduled)


def scheduled_next(job: Job) -> datetime | None:
    """The scheduled time of the stored next fire (the fire key): `next_run` less jitter."""
    return job.next_scheduled or job.next_run


def job_next_fire(job: Job, *, now: datetime | None = None) -> datetime | None:
    """`next` as shown: the schedule's next time (the stored one, before jitter), or for a
    disabled job the time enabling it now would give (its stored next fire froze when it was
    disabled and may be long past)."""
    if not job.disabled:
        return scheduled_next(job)
    try:
        return next_run_from_now(job, now=now or timeutil.now())
    except sched.ScheduleError:  # a restored job Dkron accepts and we cannot parse
        return None
