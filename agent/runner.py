"""Runs one execution on an agent: claim it, run the executor, stream output, record the end.

The output so far is written to the execution row every flush interval; the same write tells
the agent whether someone asked for a kill (or deleted the job), which sets the cancel token.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from confidential import SecretError, output_secrets, redact, unseal
from executors import netguard
from executors.base import CancelToken, ConfigError, ExecutionContext, ExecutorError
from executors.output import OutputSink
from executors.registry import UnknownExecutor, get_executor, secret_spec
from jobs import params as job_params
from jobs import telemetry, timeutil, tracing
from jobs.logcontext import execution_logging
from jobs.models import Execution, ExecutionStatus, Run
from jobs.problems import describe_problems
from jobs.secrets import encryption_keys, server_secrets
from jobs.services import capacity
from jobs.services.executions import execution_claim, execution_close, execution_progress
from processors.base import ExecutionRecord, ProcessorOptions
from processors.registry import run_processors

log = logging.getLogger("dkronweb.runner")
T = TypeVar("T")

_running = 0
_running_lock = threading.Lock()


def running_count() -> int:
    return _running


def _track(delta: int) -> None:
    global _running
    with _running_lock:
        _running += delta


def with_db_retry(fn: Callable[[], T], *, what: str, deadline: float = 600.0) -> T:
    """Retry a database write while the database restarts; results are never dropped."""
    started = time.monotonic()
    delay = 0.5
    while True:
        try:
            return fn()
        except (OperationalError, InterfaceError):
            if time.monotonic() - started > deadline:
                raise
            log.warning("database unavailable while %s; retrying in %.1fs", what, delay)
            close_old_connections()
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


@dataclass
class _Live:
    sink: OutputSink
    cancel: CancelToken
    seen: int = -1


class _Flusher:
    """One thread per agent process pushes the live output and heartbeat of every execution
    running in it, and turns a kill request into a cancel.

    One shared thread, not one per execution: starting and joining a thread for each
    execution cost about a tenth of a trivial execution's time on the agent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, _Live] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, execution_id: int, sink: OutputSink, cancel: CancelToken) -> None:
        with self._lock:
            self._live[execution_id] = _Live(sink, cancel)
            # A prefork child inherits the parent's object but not its thread: start one here.
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="flusher", daemon=True)
                self._thread.start()

    def remove(self, execution_id: int) -> None:
        with self._lock:
            self._live.pop(execution_id, None)

    def _loop(self) -> None:
        interval = settings.DKRON["OUTPUT_FLUSH_INTERVAL"]
        while True:
            time.sleep(interval)
            with self._lock:
                live = list(self._live.items())
            for execution_id, entry in live:
                self._flush(execution_id, entry)
            if not live:
                close_old_connections()  # idle: do not hold a connection the database dropped

    def _flush(self, execution_id: int, entry: _Live) -> None:
        version = entry.sink.version
        output = _storable(entry.sink.text()) if version != entry.seen else None
        try:
            alive = execution_progress(
                execution_id=execution_id, output=output, truncated=entry.sink.truncated
            )
        except (OperationalError, InterfaceError):
            close_old_connections()
            return  # next flush retries; the executor keeps running meanwhile
        entry.seen = version
        if not alive:
            entry.cancel.cancel("killed")


_flusher = _Flusher()


def _storable(text: str) -> str:
    """PostgreSQL text refuses NUL: a job printing binary data must still be recorded."""
    return text.replace("\x00", "\ufffd")


def _final_output(reason: str, sink: OutputSink, limit: int) -> tuple[str, bool]:
    """Dkron stores `<error text>\\n` followed by the executor's output; keep the tail."""
    text = _storable(sink.text())
    if reason:
        text = f"{reason}\n{text}" if not text.startswith(reason) else text
    data = text.encode("utf-8", "replace")
    truncated = sink.truncated
    if len(data) > limit:
        data, truncated = data[-limit:], True
    return data.decode("utf-8", "ignore"), truncated


def _process_output(
    execution: Execution, status: str, output: str, reason: str, truncated: bool
) -> str:
    """Run the job's processors (SPEC 8) once; return the output to store.

    Each processor runs in name order and a failing one is only logged. When a processor with
    forward false delivered the output, the record keeps a pointer to it (after the error
    line, if any) instead of the output, as Dkron does.
    """
    processors = execution.run.snapshot.get("processors") or {}
    if not processors:
        return output
    record = ExecutionRecord(
        job_name=execution.job_name,
        execution_id=str(execution.pk),
        output=output,
        status=status,
        node_name=execution.node_name,
        attempt=execution.attempt,
        scheduled_at=execution.scheduled_at,
        started_at=execution.started_at,
        finished_at=timeutil.now(),
        truncated=truncated,
    )
    try:
        result = run_processors(
            processors,
            record,
            ProcessorOptions.from_settings(settings.DKRON),
            settings.DKRON.get("DISABLED_PROCESSORS", ()),
            log=log,
        )
    except Exception:  # each processor is guarded already; this covers bad settings
        log.exception("processors failed on execution %s", execution.pk)
        return output
    if not result.replace_output:
        return output
    return (f"{reason}\n" if reason else "") + result.pointer() + "\n"


def run_refusal(snapshot: dict[str, Any]) -> str:
    """Why this run must not reach an executor, or "" when it may.

    The one check made before every execution, on the agent and at run time: settings and
    findings can change after a job was saved. A job without an executor, or whose executor
    the operator has disabled since, or that a restore stored with problems (dkronweb's own
    validation failed; see `jobs.services.jobs.job_problems`) fails with the reason and is
    not retried: retrying cannot help until someone edits the job or the settings.
    """
    executor = snapshot.get("executor") or ""
    if not executor:
        return "No executor defined"  # Dkron's own message for this case
    if executor in settings.DKRON["DISABLED_EXECUTORS"]:
        return (
            f"executor '{executor}' is disabled by DKRON_DISABLED_EXECUTORS on this server: "
            "the job was saved before it was disabled"
        )
    problems = snapshot.get("problems") or {}
    if problems:
        return "invalid job: " + describe_problems(problems)
    return ""


@dataclass(frozen=True)
class Outcome:
    """How one delivery of an execution went on this agent.

    `status` is what this agent recorded ("" when it recorded nothing: the claim found the
    execution taken, killed while queued or deleted, or the row was closed by someone else
    before the result was written); `retry` the next attempt, queued and not yet published.
    """

    status: str = ""
    reason: str = ""
    job: str = ""
    retry: Execution | None = None


def run_execution(execution_id: int, *, node_name: str) -> Execution | None:
    """Run one execution here; returns the next attempt when the run must be retried."""
    return run(execution_id, node_name=node_name).retry


def run(execution_id: int, *, node_name: str, traceparent: str | None = None) -> Outcome:
    """Run one execution here: `run_execution`, also saying what was recorded.

    `traceparent`: the message's W3C trace header, the parent of this delivery's spans."""
    claim_started = tracing.now()
    execution = with_db_retry(
        lambda: execution_claim(execution_id=execution_id, node_name=node_name), what="claiming"
    )
    if execution is None:
        return Outcome()  # taken by another delivery, killed while queued, or deleted
    trace = tracing.delivery(execution, traceparent)
    trace.span("claim", start=claim_started, status=str(execution.status))
    _track(+1)
    try:
        with execution_logging(job=execution.job_name, execution=execution.pk):
            return _run_claimed(execution, trace)
    finally:
        _track(-1)


def _run_claimed(execution: Execution, trace: Any = tracing.NO_DELIVERY) -> Outcome:
    execute_started = tracing.now()
    limit = settings.DKRON["OUTPUT_LIMIT"]
    snapshot = execution.run.snapshot
    sink = OutputSink(limit)
    cancel = CancelToken()
    status: str = ExecutionStatus.SUCCESS
    reason, retryable = "", True
    flushing = False
    hidden: list[str] = []
    refusal = run_refusal(snapshot)
    try:
        if refusal:
            raise ExecutorError(refusal, retryable=False)
        executor = get_executor(snapshot["executor"])
        # Secrets are decrypted here only, and masked in everything the run records; the
        # steps, in this order, are in the docstring of `confidential`.
        stored = snapshot.get("executor_config") or {}
        spec = secret_spec(snapshot["executor"], stored)
        plain = unseal(spec, stored, encryption_keys())
        hidden = [*output_secrets(spec, plain), *server_secrets()]
        sink.hide(hidden)
        # Run parameters go into this plain copy only, after unsealing (so a value is never
        # decrypted) and never into a secret or where secrets go (jobs.params, rule 3).
        values = snapshot.get("params") or {}
        plain = job_params.substitute(plain, values, spec)
        config = executor.validate(plain)
        ctx = ExecutionContext(
            job_name=execution.job_name,
            config=config,
            output=sink,
            cancel=cancel,
            execution_id=str(execution.pk),
            run_id=str(execution.run_id),
            attempt=execution.attempt,
            scheduled_at=execution.scheduled_at,
            default_timeout=settings.DKRON["DEFAULT_MAX_RUNTIME"],
            outbound=netguard.Guard.from_settings(settings.DKRON),
            env_passthrough=tuple(settings.DKRON.get("JOB_ENV_PASSTHROUGH", ())),
            param_env=job_params.environment(values),
        )
        _flusher.add(execution.pk, sink, cancel)
        flushing = True
        # job and execution come from execution_logging (jobs.logcontext), in both formats.
        log.info("attempt %s started", execution.attempt)
        executor.execute(ctx)
    except (UnknownExecutor, ConfigError) as exc:
        status, reason, retryable = ExecutionStatus.FAILED, f"invalid job: {exc}", False
    except SecretError as exc:
        status, reason, retryable = ExecutionStatus.FAILED, f"secrets: {exc}", False
    except ExecutorError as exc:
        status, reason, retryable = exc.status, exc.message, exc.retryable
    except SoftTimeLimitExceeded:
        cancel.cancel("timeout")
        status, reason = ExecutionStatus.TIMEOUT, "timeout: the run exceeded its time limit"
    except Exception as exc:  # an executor bug must still close the execution
        # The traceback is logged with the job's secrets masked, like the output.
        trace = redact(traceback.format_exc(), hidden)
        log.error("executor crashed on execution %s\n%s", execution.pk, trace.rstrip())
        status, reason = ExecutionStatus.FAILED, f"executor error: {exc!r}"
    finally:
        if flushing:
            _flusher.remove(execution.pk)
    reason = redact(reason, hidden)
    reason = _storable(reason)
    output, truncated = _final_output(reason, sink, limit)
    output = _process_output(execution, status, output, reason, truncated)
    failed = status != ExecutionStatus.SUCCESS
    trace.span("execute", start=execute_started, status=status, error=reason if failed else "")
    finish_started = tracing.now()
    log.info("finished status=%s", status)
    closed = with_db_retry(
        lambda: execution_close(
            execution_id=execution.pk,
            status=status,
            output=output,
            truncated=truncated,
            reason=reason,
            retryable=retryable,
            claimed=execution,
        ),
        what="recording the result",
    )
    trace.span("finish", start=finish_started, status=closed.status or status)
    if execution.concurrency_key or closed.slot_waiters:  # what waits for this slot or key
        capacity.after_finish(key=execution.concurrency_key, slot_waiters=closed.slot_waiters)
    # In process only (no query): the heartbeat carries the figures to the database.
    telemetry.observe_execution(
        job=execution.job_name,
        status=status,
        started_at=execution.started_at,
        finished_at=timeutil.now(),
        scheduled_at=execution.scheduled_at,
        scheduled=execution.attempt == 1 and execution.run.trigger == Run.Trigger.SCHEDULE,
    )
    return Outcome(closed.status, reason[:255], execution.job_name, closed.retry)
