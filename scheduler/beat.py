"""The scheduler role: `celery beat -S scheduler.beat:JobScheduler` (or `manage.py scheduler`).

Built on django-celery-beat's DatabaseScheduler, so system periodic tasks stay editable in
the admin; jobs are fired straight from the `Job` table by their indexed `next_run`, never
mirrored into PeriodicTask rows. docs/scheduler.md describes leadership, stopping, the
catch-up rate, the takeover republish and what /health says.

A scheduler is a cluster member, so /v1/leader names one of /v1/members (as in Dkron, whose
leader is always a member): in a process that is also an agent (`manage.py serve`, a worker
with `-B`) it is that agent; otherwise it registers and heartbeats a member of its own, named
`<DKRON_NODE_NAME>-scheduler` or `manage.py scheduler --node-name`, tagged
`dkronweb_role=scheduler` and never given work. Each tick:
1. takes the database lease when it does not hold it comfortably (a thread with its own
   connection renews it every TTL/3, however long a tick takes); a standby only waits (and
   retries within a second). Becoming active, its first act is to publish what the previous
   scheduler committed and never published;
2. fires the due jobs, a bounded batch per transaction, each transaction fenced by a lease
   renewal that rolls it back when the lease was lost (and fire keys are unique as well);
3. publishes the catch-up runs whose slot has come (CATCHUP_RATE);
4. every few seconds, sweeps dead agents' runs and lost messages; twice a second, admits what
   waits for a slot or a key and advances the open backfills (jobs.services.backfill); every
   second, checks the jobs' SLA rules (jobs.services.sla);
5. runs the inherited system periodic tasks;
6. sleeps until the next due job, at most TICK_MAX.

With DKRON_SCHEDULER_SHARDS > 1 every scheduler also holds its share of shard leases and
fires the due jobs of its shards; the lease above is shard 0, and only its holder (the leader)
does steps 3-5 (scheduler/shards.py, docs/scheduler.md).

SIGTERM or SIGINT while it sleeps exits at once; inside a tick it only sets a flag, checked
between transactions, so what was committed is published before it exits and releases the
lease. A second signal, or STOP_TIMEOUT without an exit, exits hard (the lease then expires
by its TTL and the next leader republishes what was left).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from datetime import datetime
from types import FrameType
from typing import Any

from celery import signals as celery_signals
from django.conf import settings
from django.db import Error as DatabaseError
from django.db import close_old_connections, connection
from django_celery_beat.schedulers import DatabaseScheduler

from jobs import node, timeutil, tracing
from jobs.services import (
    agents,
    backfill,
    capacity,
    counters,
    lease,
    maintenance,
    retention,
    runs,
    sla,
)
from scheduler.shards import ShardLeases

log = logging.getLogger("dkronweb.scheduler")

SWEEP_EVERY = 5.0
CATCHUP_STEP = 0.2
# How often the leader admits what waits for an agent slot or a concurrency key (the agents
# do it as their runs end; this pass covers the runs the sweep closes and rate windows).
CAPACITY_EVERY = 0.5


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


class _Member:
    """The member this scheduler is: the process's agent, or a scheduler-only member of its
    own that it registers, heartbeats every HEARTBEAT_INTERVAL and marks left on close."""

    def __init__(self) -> None:
        shared = node.local_agent_name()
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


class _Renewer(threading.Thread):
    """Renews the lease every TTL/3 on its own database connection while the scheduler leads,
    so leadership holds however long a tick takes; a failed renewal (taken over, or expired)
    makes the scheduler a standby at once."""

    def __init__(self, scheduler: JobScheduler) -> None:
        super().__init__(name="lease-renewer", daemon=True)
        self.scheduler = scheduler
        self.done = threading.Event()

    def run(self) -> None:
        ttl = float(_conf()["LEASE_TTL"])
        try:
            while not self.done.wait(ttl / 3):
                if self.scheduler.is_leader:
                    self.scheduler.renew_once()
                try:
                    self.scheduler.shards.renew()
                except Exception:
                    log.warning("could not renew the scheduler's shards", exc_info=True)
                    connection.close()
        finally:
            connection.close()

    def stop(self) -> None:
        self.done.set()
        if self is not threading.current_thread():
            self.join(timeout=2)


class JobScheduler(DatabaseScheduler):
    """django-celery-beat's scheduler plus Dkron jobs, leadership and the maintenance sweep."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        tracing.set_service("dkronweb-scheduler")
        self.holder = scheduler_id()
        self.member = _Member()
        # Shards need leases: with the lease disabled (a test of fire keys) every scheduler
        # fires every job.
        shards = int(_conf()["SHARDS"]) if _conf()["LEASE_ENABLED"] else 1
        self.shards = ShardLeases(holder=self.holder, member=self.member.name, count=shards)
        self.is_leader = False
        self.last_sweep = 0.0
        self.last_capacity = 0.0
        self.last_sla = 0.0
        self.sla_active = False  # jobs with SLA rules or open alerts: check every second
        self.held = False  # executions wait for a slot or a key: come back within CAPACITY_EVERY
        self.backfilling = False  # a backfill is open: come back within CAPACITY_EVERY
        self.last_backfill = 0.0
        self.rate_due: float | None = None  # monotonic time a full rate window frees a place
        self.last_ok = timeutil.now()  # the database last answered a tick
        # Since when this scheduler has been firing without a break (active, every tick done):
        # a fire due after it is late, never missed, however long the work takes (runs._plan).
        self.active_since: datetime | None = None
        self.lease_until = 0.0  # monotonic time until which this process surely holds the lease
        self.republished = 0  # executions published by the last takeover
        self.busy = False  # inside a tick, a sync or close: a signal only asks to stop
        self.stopping = False
        self.renewer: _Renewer | None = None
        self.tokens = 0.0  # the catch-up publish budget (CATCHUP_RATE per second)
        self.last_refill = time.monotonic()
        self.tick_started = time.monotonic()
        super().__init__(*args, **kwargs)

    # --- starting and stopping -------------------------------------------------------------

    def started(self) -> None:
        """celery beat's Service started this scheduler: renew the lease from a thread, and
        on the main thread take over SIGTERM and SIGINT from celery's handler (which wrote to
        the database from inside the interrupted statement and could deadlock there)."""
        if _conf()["LEASE_ENABLED"] and self.renewer is None:
            self.renewer = _Renewer(self)
            self.renewer.start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stopping:
            log.error("second %s while stopping: exiting now, without releasing the lease", name)
            os._exit(1)
        self.stopping = True
        bound = float(_conf()["STOP_TIMEOUT"])
        threading.Thread(
            target=self._watchdog, args=(bound,), name="stop-watchdog", daemon=True
        ).start()
        if self.busy:
            log.info("%s: stopping after the current step (at most %g s)", name, bound)
            return  # the tick checks the flag between transactions and raises SystemExit
        log.info("%s: stopping", name)
        raise SystemExit(0)  # sleeping between ticks: celery's loop calls close()

    def _watchdog(self, bound: float) -> None:
        time.sleep(bound)
        log.error(
            "the scheduler did not stop within %g s (STOP_TIMEOUT; a database stall?): exiting "
            "without releasing the lease; it expires in LEASE_TTL and the next leader publishes "
            "what this one committed",
            bound,
        )
        logging.shutdown()
        os._exit(1)

    def _check_stop(self) -> None:
        if self.stopping:
            raise SystemExit(0)

    def sync(self) -> None:
        self.busy = True
        try:
            super().sync()
        finally:
            self.busy = False

    # --- leadership ----------------------------------------------------------------------

    def holds_lease(self) -> bool:
        """This process holds the lease for comfortably longer than a renewal period."""
        return self.lease_until - time.monotonic() > float(_conf()["LEASE_TTL"]) / 3

    def renew_once(self) -> bool:
        """Extend the lease if still held (the renewer thread); False when it is lost."""
        ttl = float(_conf()["LEASE_TTL"])
        sent = time.monotonic()
        try:
            held = lease.lease_renew(holder=self.holder, ttl=ttl)
        except Exception:
            log.warning("could not renew the scheduler lease", exc_info=True)
            close_old_connections()
            connection.close()
            return self.holds_lease()
        if held:
            self.lease_until = max(self.lease_until, sent + ttl)
        else:
            self.lease_lost("its renewal")
        return held

    def lease_lost(self, how: str) -> None:
        if self.is_leader:
            log.warning("scheduler %s lost the lease (%s): standby, not firing", self.holder, how)
        self.lease_until = 0.0
        self.is_leader = False
        self.active_since = None

    def fence(self) -> bool:
        """The fire transaction's last statement: renew the lease only while still held."""
        ttl = float(_conf()["LEASE_TTL"])
        sent = time.monotonic()
        if not lease.lease_renew(holder=self.holder, ttl=ttl):
            return False
        self.lease_until = max(self.lease_until, sent + ttl)
        return True

    def _fence_shards(self, extra: list[int]) -> bool:
        """The fence of a sharded fire transaction: the leader's lease (shard 0) when it
        leads, and every extra shard fired in it; any one lost rolls the whole batch back."""
        if self.is_leader and not self.fence():
            return False
        return self.shards.fence(extra)

    def _lead(self) -> bool:
        conf = _conf()
        if not conf["LEASE_ENABLED"]:
            return True
        if self.is_leader and self.holds_lease():
            return True
        ttl = float(conf["LEASE_TTL"])
        sent = time.monotonic()
        if lease.lease_acquire(holder=self.holder, ttl=ttl, member=self.member.name):
            self.lease_until = sent + ttl
            return True
        self.lease_until = 0.0
        return False

    def take_over(self, shards: list[int] | None = None) -> int:
        """A new leader's first act (or a shard's new holder's): publish what the previous
        scheduler left unpublished, of shard 0 (or `shards`) only when the jobs are sharded."""
        sharded = None
        if self.shards.enabled:
            sharded = runs.Shards(count=self.shards.count, since=dict.fromkeys(shards or [0]))
        n = runs.publish_left_unpublished(shards=sharded)
        counters.counter_add("scheduler_republished:takeover", n)
        log.info(
            "republished %d execution(s) left unpublished by the previous scheduler%s",
            n,
            f" (shard(s) {shards})" if shards else "",
        )
        if shards:
            return n
        self.republished = n
        self.tokens = 0.0
        self.last_refill = time.monotonic()
        return n

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
        self._check_stop()
        tick_max = _conf()["TICK_MAX"]
        self.busy = True
        if time.monotonic() - self.tick_started > float(_conf()["MISFIRE_GRACE"]):
            # The last tick began longer ago than the grace: it hung (a database stall) or the
            # process was frozen. Nobody fired meanwhile, so what fell due is judged as missed.
            self.active_since = None
        self.tick_started = time.monotonic()
        try:
            if _conf()["CLOCK_FROM_DATABASE"]:
                timeutil.follow(lease.database_clock_offset())
            interval = self._tick(tick_max)
        except Exception as exc:
            # A database or broker restart must not kill the scheduler: wait and retry.
            log.exception("scheduler tick failed; retrying")
            self.active_since = None  # fires due from here on were nobody's: misfires
            if isinstance(exc, DatabaseError):
                # Agents cannot heartbeat meanwhile: liveness gets a grace once it is back.
                agents.database_unreachable(last_ok=self.last_ok)
            close_old_connections()
            if not self.holds_lease():
                self.is_leader = False
            interval = tick_max
        else:
            self._note_stall()
            self.last_ok = timeutil.now()
            agents.database_reachable(now=self.last_ok)
        finally:
            self.busy = False
        self._check_stop()  # a signal during the tick: what it committed is published
        return float(interval)

    def _tick(self, tick_max: float) -> float:
        was_leader = self.is_leader
        started = timeutil.now()
        self.member.keep_alive()
        self.is_leader = self._lead()
        if self.is_leader != was_leader:
            log.info(
                "scheduler %s (member %s) is now %s",
                self.holder,
                self.member.name,
                "active" if self.is_leader else "standby",
            )
            if self.is_leader:
                self.take_over()
        extra: dict[int, datetime | None] = {}
        if self.shards.enabled:
            taken = self.shards.rebalance(leading=self.is_leader)
            if taken:
                self.take_over(taken)
            extra = self.shards.since()
        if not self.is_leader:
            self.active_since = None
            if not extra:
                # Standbys retry often so one takes over within TTL + 0.5 s of a death.
                return min(tick_max, 0.5)
        elif self.active_since is None:
            self.active_since = started
        self._note_stall()  # before placing runs on agents that could not heartbeat
        sharded: runs.Shards | None = None
        if self.shards.enabled:
            since = dict(extra)
            if self.is_leader:
                since[0] = self.active_since
            sharded = runs.Shards(count=self.shards.count, since=since)
            report = runs.fire_due_jobs(
                fence=lambda: self._fence_shards(list(extra)), shards=sharded
            )
        else:
            fence = self.fence if _conf()["LEASE_ENABLED"] else None
            report = runs.fire_due_jobs(fence=fence, active_since=self.active_since)
        if report.fenced:
            if self.shards.enabled:
                self.shards.lost(list(extra))
                self.lease_until = 0.0  # the rolled-back fence did not renew it: ask again
                if self.is_leader and not lease.lease_renew(
                    holder=self.holder, ttl=float(_conf()["LEASE_TTL"])
                ):
                    self.lease_lost("the fire transaction's fence")
            else:
                self.lease_lost("the fire transaction's fence")
            return min(tick_max, 0.5)
        if report.fired or report.missed:
            log.info(
                "fired %d run(s), %d missed fire(s)%s",
                report.fired,
                report.missed,
                f", {report.catchup_waiting} catch-up run(s) given publish slots"
                if report.catchup_waiting
                else "",
            )
        if self.stopping:
            return 0.0
        if not self.is_leader:
            # Firing shards only: the leader sweeps, publishes catch-ups and runs the system
            # tasks. Ticks stay short so that a dead scheduler's shards are taken in time.
            if report.more:
                return 0.001
            until = runs.seconds_until_next_due(shards=sharded)
            return max(0.001, min(0.5, tick_max, until if until is not None else tick_max))
        catchup_wait = self._publish_catchups()
        if self.stopping:
            return 0.0
        now = time.monotonic()
        if now - self.last_sweep >= SWEEP_EVERY:
            self.last_sweep = now
            if _conf()["CLOCK_FROM_DATABASE"]:
                # The sweep closes runs whose agents look dead by the clock. The offset taken
                # at the tick's start is a fire and a publish old; a host clock step since then
                # would make every agent look dead (a chaos run lost fires so): read it again.
                timeutil.follow(lease.database_clock_offset())
            maintenance.sweep()
        rate_due = self.rate_due is not None and now >= self.rate_due
        if rate_due or now - self.last_capacity >= CAPACITY_EVERY:
            self.last_capacity = now
            self.held = capacity.tick()
            wait = capacity.rate_wait() if self.held else None
            # A millisecond past the moment: the window's start is exclusive.
            self.rate_due = None if wait is None else now + wait + 0.001
        if now - self.last_sla >= sla.CHECK_EVERY:
            self.last_sla = now
            self.sla_active = sla.check().active
        # Backfills (jobs.services.backfill): the next times of each open one, within its
        # max_concurrency; while any is open the scheduler wakes at CAPACITY_EVERY. Not on
        # every tick: a burst ticks back to back, and each pass is a query.
        if now - self.last_backfill >= CAPACITY_EVERY:
            self.last_backfill = now
            self.backfilling = backfill.backfills_tick().open > 0
        system_interval = super().tick()
        if report.more:
            return 0.001  # more are due: go again at once
        until_due = runs.seconds_until_next_due(shards=sharded)
        interval = min(tick_max, system_interval or tick_max)
        if self.held or self.backfilling:
            interval = min(interval, CAPACITY_EVERY)
            if self.rate_due is not None:
                interval = min(interval, self.rate_due - now)
        if self.sla_active:
            interval = min(interval, sla.CHECK_EVERY)
        if self.shards.enabled:
            interval = min(interval, 0.5)  # free shards (a dead scheduler's) are taken in time
        if until_due is not None:
            interval = min(interval, until_due)
        if catchup_wait is not None:
            interval = min(interval, catchup_wait)
        return max(interval, 0.001)

    def _note_stall(self) -> None:
        """A tick whose database calls hung for longer than half the agents' dead time met a
        database stall (a hang, not an error): the agents could not heartbeat meanwhile
        either, so their liveness gets the outage grace (agents.database_unreachable), as
        after an error. Checked before the fires are placed and when the tick ends."""
        if time.monotonic() - self.tick_started > float(_conf()["AGENT_DEAD_AFTER"]) / 2:
            agents.database_unreachable(last_ok=self.last_ok)
            agents.database_reachable(now=timeutil.now())

    def _publish_catchups(self) -> float | None:
        """Publish the catch-up runs whose slot has come, at most CATCHUP_RATE per second
        (a token bucket of one second's worth, so a backlog overdue after a takeover does not
        go out as a burst); the seconds until the next one is worth waking for, or None."""
        rate = float(_conf()["CATCHUP_RATE"])
        if rate <= 0:
            return None
        now = time.monotonic()
        burst = max(1.0, rate)
        self.tokens = min(burst, self.tokens + (now - self.last_refill) * rate)
        self.last_refill = now
        budget = min(int(self.tokens), int(_conf()["FIRE_BATCH"]))
        if budget >= 1:
            self.tokens -= runs.publish_due_catchups(limit=budget)
        until = runs.seconds_until_next_catchup()
        if until is None:
            return None
        refill = max(0.0, (1.0 - self.tokens) / rate)
        # Wake in steps of at least CATCHUP_STEP: a catch-up starts at most that late.
        return max(until, refill, CATCHUP_STEP)

    def close(self) -> None:
        self.busy = True
        if self.renewer is not None:
            self.renewer.stop()
        try:
            if self.is_leader or self.lease_until:
                lease.lease_release(holder=self.holder)
                log.info("scheduler %s released the lease", self.holder)
        except Exception:
            log.warning("could not release the scheduler lease", exc_info=True)
        self.is_leader = False
        try:
            self.shards.close()
        except Exception:
            log.warning("could not release the scheduler's shards", exc_info=True)
        try:
            self.member.leave()
        except Exception:
            log.warning("could not mark scheduler member %s as left", self.member.name)
        tracing.shutdown()  # the fire and publish spans of the last ticks
        super().close()


@celery_signals.beat_init.connect
def _beat_started(sender: Any = None, **kwargs: Any) -> None:
    scheduler = getattr(sender, "scheduler", None)
    if isinstance(scheduler, JobScheduler):
        scheduler.started()
