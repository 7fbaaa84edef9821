"""The agent role: a Celery worker with node tags (`celery worker --tag k=v`).

A worker bootstep gives the worker its node identity (and Celery's node name `<name>@<host>`
unless `-n` says otherwise), subscribes it to its node queue, registers it, heartbeats, closes
what a dead predecessor of the same name left running, starts its reaper (agent.reaper), and on a
warm stop marks it `leaving` (no new work) until its pool has finished, then `left`. Runs
revoked or terminated through Celery's own control commands are recorded as killed at once.
See docs/agents.md.
"""

from __future__ import annotations

import atexit
import logging
import socket
import threading
from typing import Any

from celery import bootsteps, signals
from django.conf import settings
from django.db import close_old_connections

from agent import reaper, revoke
from agent.runner import running_count, with_db_retry
from executors.shell import reap_orphans
from jobs import telemetry, tracing
from jobs.dispatch import node_queue
from jobs.node import Identity, configure, parse_tag_options
from jobs.services import agents as svc
from jobs.services.agents import (
    agent_leave,
    agent_leaving,
    agent_local_started,
    agent_local_stopped,
)
from jobs.services.executions import close_orphaned_runs

log = logging.getLogger("dkronweb.agent")


class Heartbeat(threading.Thread):
    def __init__(self, ident: Identity, concurrency: int, slots: int = 0) -> None:
        super().__init__(name="dkron-heartbeat", daemon=True)
        self.node = ident
        self.concurrency = concurrency
        self.slots = slots
        self.stopped = threading.Event()
        self.leaving = threading.Event()  # stopping: still heartbeats, with its real load
        self.reaper: Any = None  # agent.reaper.ReaperHandle, told the pool's pids each beat

    def run(self) -> None:
        interval = settings.DKRON["HEARTBEAT_INTERVAL"]
        stored: dict[str, Any] | None = None  # the metrics snapshot the row holds
        while not self.stopped.wait(interval):
            if self.reaper is not None:
                self.reaper.tell_pids()
            try:
                metrics = _metrics_snapshot()
                running = running_count()
                if self.leaving.is_set():
                    # A prefork parent sees none of its children's runs: count them.
                    running = max(running, svc.running_on(self.node.name))
                ok = svc.agent_heartbeat(
                    name=self.node.name,
                    instance_id=self.node.instance_id,
                    running=running,
                    metrics=metrics if metrics != stored else None,  # unchanged: not rewritten
                )
                stored = metrics
                if not ok and not self.leaving.is_set():
                    register(self.node, self.concurrency, self.slots)
                    stored = None  # registering cleared it
            except Exception:
                log.warning("heartbeat failed; retrying", exc_info=True)
                close_old_connections()

    def stop(self) -> None:
        self.stopped.set()


def _metrics_snapshot() -> dict[str, Any] | None:
    try:
        return telemetry.snapshot()
    except Exception:
        log.warning("could not collect the agent's metrics", exc_info=True)
        return None


def register(ident: Identity, concurrency: int, slots: int = 0) -> None:
    svc.agent_register(
        name=ident.name,
        instance_id=ident.instance_id,
        tags=ident.tags,
        address=socket.gethostbyname(socket.gethostname()) if settings.PRODUCTION else "127.0.0.1",
        concurrency=concurrency,
        slots=slots,
    )


def start_agent(ident: Identity, concurrency: int, *, slots: int = 0) -> Heartbeat:
    """Register, clean up after a dead predecessor, and start heartbeating."""
    with_db_retry(lambda: register(ident, concurrency, slots), what="registering the agent")
    closed = with_db_retry(lambda: close_orphaned_runs(node_name=ident.name), what="cleanup")
    if closed:
        log.warning(
            "closed %d execution(s) left running by a previous agent %s", closed, ident.name
        )
    reaped = len(reap_orphans(ident.name))
    if reaped:
        log.warning("killed %d process(es) left by a previous agent %s", reaped, ident.name)

    agent_local_started(name=ident.name, instance_id=ident.instance_id)
    beat = Heartbeat(ident, concurrency, slots)
    beat.start()
    log.info("agent %s started with tags %s", ident.name, ident.tags)
    return beat


class AgentStep(bootsteps.StartStopStep):
    """Worker bootstep: node identity, node queue, registration and heartbeat."""

    requires = ("celery.worker.components:Pool",)

    def __init__(
        self,
        worker: Any,
        tag: Any = (),
        node_name: str | None = None,
        slots: int | None = None,
        **kw: Any,
    ):
        super().__init__(worker, **kw)
        if slots is not None:
            # Here, before the pool is created (every step's __init__ runs before any creates
            # its part), so the pool runs exactly as many as the slots placement counts.
            if slots < 1:
                raise ValueError("--slots must be at least 1")
            if not getattr(worker, "autoscale", None):  # an autoscaled pool keeps its range
                worker.concurrency = worker.min_concurrency = slots
        self.slots = int(slots or worker.concurrency or 1)
        server = settings.DKRON["AGENT_SERVER"]
        tracing.set_service("dkronweb-agent")
        tracing.preload()  # before the pool forks (nothing when tracing is off)
        self.ident = configure(name=node_name, tags=parse_tag_options(tag), server=server)

        # Here, in the main process before the pool forks its children, so they inherit it.
        try:
            telemetry.setup(self.ident.instance_id)
        except Exception:
            log.warning("agent metrics stay per process (no metrics directory)", exc_info=True)

        worker.app.amqp.queues.select_add(node_queue(self.ident.name))
        self.beat: Heartbeat | None = None
        self.reaper: Any = None
        self.left = False
        global _step
        _step = self
        _connect_signals()

    def start(self, worker: Any) -> None:
        self.beat = start_agent(self.ident, int(worker.concurrency or 1), slots=self.slots)

        # From the main thread: the reaper's parent-death signal follows this thread.
        try:
            if settings.DKRON.get("AGENT_REAPER", True):
                self.reaper = reaper.start(self.ident)
        except Exception:
            log.warning("could not start the agent's reaper", exc_info=True)
        self.beat.reaper = self.reaper

    def stop(self, worker: Any) -> None:
        """A warm stop: `leaving` now (no new work), `left` once the pool has finished."""
        if self.beat is None or self.left:
            return
        self.beat.leaving.set()
        if self._record(agent_leaving, what="marking the agent leaving"):
            log.info("agent %s is leaving: it finishes its runs, then leaves", self.ident.name)

    def terminate(self, worker: Any) -> None:
        # A cold stop: the pool is being terminated, nothing is left to finish.
        self.leave()

    def leave(self) -> None:
        """The pool has finished (worker_shutdown, or the process exits): `left`."""
        if self.left or self.beat is None:
            return
        self.left = True
        agent_local_stopped()
        self.beat.stop()
        self.beat.join(timeout=5)  # a beat in flight must not write after `left`
        if self.reaper is not None:
            self.reaper.stop()  # a clean stop: the reaper exits quietly
        if self._record(agent_leave, what="leaving the cluster"):
            log.info("agent %s left", self.ident.name)

    def _record(self, service: Any, *, what: str) -> bool:
        """Record a stop step for this agent; False (logged) when the database would not.

        The calling thread's connection dates from start-up: a database restart since then
        broke it. Health-check it (CONN_HEALTH_CHECKS) and retry briefly, so a clean stop is
        still recorded as `leaving`/`left`, not `failed`.
        """
        try:
            close_old_connections()
            with_db_retry(
                lambda: service(name=self.ident.name, instance_id=self.ident.instance_id),
                what=what,
                deadline=10.0,
            )
            return True
        except Exception:
            log.warning("agent %s: %s failed", self.ident.name, what, exc_info=True)
            return False


_step: AgentStep | None = None


def _on_worker_shutdown(sender: Any = None, **kw: Any) -> None:
    # Sent after the blueprint (and so the pool, which waits for its tasks) has stopped.
    if _step is not None:
        _step.leave()
    tracing.shutdown()  # the last spans of a threads or solo pool


def _on_process_shutdown(**kw: Any) -> None:
    tracing.shutdown()  # a prefork child exits without atexit: its last spans go out here


def _at_exit() -> None:
    if _step is not None and _step.beat is not None and not _step.left:
        _step.leave()


def _connect_signals() -> None:
    """Hook the agent into the worker's life: connected when Celery loads the bootstep (the
    Celery app names it by string, `agent.worker:AgentStep`), so only worker processes, and
    never the web or the scheduler, carry these handlers."""

    signals.worker_shutdown.connect(_on_worker_shutdown, weak=False, dispatch_uid="dkron-agent")
    signals.worker_process_shutdown.connect(
        _on_process_shutdown, weak=False, dispatch_uid="dkron-tracing"
    )
    signals.task_revoked.connect(revoke.on_task_revoked, weak=False, dispatch_uid="dkron-revoke")
    atexit.unregister(_at_exit)
    atexit.register(_at_exit)
