"""When a job fires next: its schedule applied to its window (start, expiry, parent, disabled).

Reads only: the services that store `next_run`, the wire format that shows `next` and the
UI all ask here, so they agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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


def job_next_fire(job: Job, *, now: datetime | None = None) -> datetime | None:
    """`next` as shown: the stored next_run, or for a disabled job the time enabling it now
    would give (its stored next_run froze when it was disabled and may be long past)."""
    if not job.disabled:
        return job.next_run
    try:
        return next_run_from_now(job, now=now or timeutil.now())
    except sched.ScheduleError:  # a restored job Dkron accepts and we cannot parse
        return None
