"""The scheduler role: `celery beat -S jobs.scheduler:JobScheduler`.

Built on django-celery-beat's DatabaseScheduler, so system periodic tasks stay editable in
the admin; jobs are fired straight from the `Job` table by their indexed `next_run`, never
mirrored into PeriodicTask rows.

A scheduler is a cluster member, so /v1/leader names one of /v1/members (as in Dkron, whose
leader is always a member): in a process that is also an agent (`manage.py serve`, a worker
with `-B`) it is that agent; otherwise it registers and heartbeats a member of its own, named
`<DKRON_NODE_NAME>-scheduler` or `manage.py scheduler --node-name`, tagged
`dkronweb_role=scheduler` and never given work. Each tick:
1. takes or renews the database lease, naming its member; a standby only waits (and retries
   within a second);
2. fires the due jobs (each fire key unique in the database: the lease is not the fence);
3. every few seconds, sweeps dead agents' runs and lost messages;
4. runs the inherited system periodic tasks;
5. sleeps until the next due job, at most TICK_MAX.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import close_old_connections
from django_celery_beat.schedulers import DatabaseScheduler

from jobs import timeutil
from jobs.services import agents, lease, maintenance, retention, runs

log = logging.getLogger("dkronweb.scheduler")

SWEEP_EVERY = 5.0


def _conf() -> dict[str, Any]:
    conf: dict[str, Any] = settings.DKRON
    return conf


def scheduler_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


_member_name: str | None = None  # set by `manage.py scheduler --node-name`


def configure(*, member_name: str | None) -> None:
    """Name this process's scheduler member (before celery beat starts the scheduler)."""
    global _member_name
    _member_name = member_name or None


def _own_agent() -> str:
    """The name of the agent running in this process, or "" when there is none."""
    from jobs import agent

    return agent._identity.name if agent._identity is not None else ""


class _Member:
    """The member this scheduler is: the process's agent, or a scheduler-only member of its
    own that it registers, heartbeats every HEARTBEAT_INTERVAL and marks left on close."""

    def __init__(self) -> None:
        shared = _own_agent()
        self.own = not shared
        self.name = shared or _member_name or f"{settings.NODE_NAME}-scheduler"
        self.instance_id = uuid.uuid4().hex
        self.registered = False
        self.last_beat = 0.0

    def keep_alive(self) -> None:
        """Register or heartbeat when due; a database error is the tick's to handle."""
        if not self.own:
            return  # the agent of this process heartbeats the shared member
        now = time.monotonic()
        if self.registered and now - self.last_beat < _conf()["HEARTBEAT_INTERVAL"]:
            return
        if not self.registered or not agents.agent_heartbeat(
            name=self.name, instance_id=self.instance_id, running=0
        ):
            agents.scheduler_register(name=self.name, instance_id=self.instance_id)
            self.registered = True
        self.last_beat = now

    def leave(self) -> None:
        if self.own and self.registered:
            agents.agent_leave(name=self.name, instance_id=self.instance_id)


class JobScheduler(DatabaseScheduler):
    """django-celery-beat's scheduler plus Dkron jobs, leadership and the maintenance sweep."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.holder = scheduler_id()
        self.member = _Member()
        self.is_leader = False
        self.last_sweep = 0.0
        self.last_ok = timeutil.now()  # the database last answered a tick
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        # The system periodic tasks (retention) are created here, before the inherited setup
        # reads the PeriodicTask table: they exist wherever a scheduler runs, never on
        # machines that only migrate, and an operator's edits in the admin are kept.
        try:
            _, created = retention.retention_schedule_ensure()
            if created:
                log.info("created the retention periodic task (hourly; editable in the admin)")
        except Exception:
            log.warning("could not create the retention periodic task", exc_info=True)
        super().setup_schedule()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        tick_max = _conf()["TICK_MAX"]
        try:
            interval = self._tick(tick_max)
        except Exception as exc:
            # A database or broker restart must not kill the scheduler: wait and retry.
            log.exception("scheduler tick failed; retrying")
            if isinstance(exc, DatabaseError):
                # Agents cannot heartbeat meanwhile: liveness gets a grace once it is back.
                agents.database_unreachable(last_ok=self.last_ok)
            close_old_connections()
            self.is_leader = False
            return tick_max
        self.last_ok = timeutil.now()
        agents.database_reachable(now=self.last_ok)
        return interval

    def _tick(self, tick_max: float) -> float:
        was_leader = self.is_leader
        self.member.keep_alive()
        self.is_leader = not _conf()["LEASE_ENABLED"] or lease.lease_acquire(
            holder=self.holder, ttl=_conf()["LEASE_TTL"], member=self.member.name
        )
        if self.is_leader != was_leader:
            log.info(
                "scheduler %s (member %s) is now %s",
                self.holder,
                self.member.name,
                "active" if self.is_leader else "standby",
            )
        if not self.is_leader:
            # Standbys retry often so one takes over within TTL + 0.5 s of the leader's death.
            return min(tick_max, 0.5)
        report = runs.fire_due_jobs()
        if report.fired or report.missed:
            log.info("fired %d run(s), %d missed fire(s)", report.fired, report.missed)
        now = time.monotonic()
        if now - self.last_sweep >= SWEEP_EVERY:
            self.last_sweep = now
            maintenance.sweep()
        system_interval = super().tick()
        if report.fired >= _conf()["FIRE_BATCH"]:
            return 0.001  # more are due: go again at once
        until_due = runs.seconds_until_next_due()
        interval = min(tick_max, system_interval or tick_max)
        if until_due is not None:
            interval = min(interval, until_due)
        return max(interval, 0.001)

    def close(self) -> None:
        try:
            if self.is_leader:
                lease.lease_release(holder=self.holder)
        except Exception:
            log.warning("could not release the scheduler lease", exc_info=True)
        try:
            self.member.leave()
        except Exception:
            log.warning("could not mark scheduler member %s as left", self.member.name)
        super().close()
