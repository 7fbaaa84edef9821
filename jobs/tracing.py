"""OpenTelemetry traces of runs: one trace per run, spans for fire, publish, claim, execute, finish.

Off unless the standard `OTEL_*` environment turns it on (`configured`: read from the
process environment, as the SDK reads the rest of those variables itself, not through
django.conf.settings, which knows none of them); off, nothing of
OpenTelemetry is imported and every call below is a check of the module flag `ENABLED` (the
hot paths are benchmarked, and a light agent must stay light: docs/agents.md).

How the spans of one run find each other (docs/monitoring.md, "Tracing"):

1. The trace id is derived from the run (`trace_id`: 128 bits of a hash of its job and run
   ids), so every process that handles the run agrees on it without asking anyone: a retry
   published by an agent and a message the sweep publishes again stay in the run's trace.
2. The `fire` span (the scheduler, or the web process for Run now) is the trace's root; its
   span id is derived from the run too (`fire_span_id`), so `publish` spans, wherever they
   are made, name it as their parent.
3. Each Celery message carries a W3C `traceparent` header naming its `publish` span; the
   agent's `claim`, `execute` and `finish` spans for that delivery are its children. A
   message without the header (an older scheduler) or with one of another trace parents
   them to the fire span instead.

Spans are recorded after the fact with explicit start and end times (`_record`): a batch of
fires or publishes costs no context switching, and the SDK's first import inside an agent
never shows up in a span's duration.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.models import Execution, Run

log = logging.getLogger("dkronweb.tracing")

# The exporters OTEL_TRACES_EXPORTER may name here: OTLP over HTTP/protobuf (no gRPC in
# agents) and the SDK's console exporter; "none" turns tracing off.
EXPORTERS = ("otlp", "console")


def configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* environment asks for traces.

    On when OTEL_TRACES_EXPORTER names an exporter, or, without it, when an OTLP endpoint
    (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; off when
    OTEL_SDK_DISABLED is true or the exporter is "none". Unlike the SDK's own default (OTLP to
    localhost), nothing set means off.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _exporter_names(environ)
    if exporters:
        return exporters != ["none"]
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    raw = environ.get("OTEL_TRACES_EXPORTER", "")
    return [n.strip().lower() for n in raw.split(",") if n.strip()]


# The one check the hot paths make. Set once from the environment; `enable` (tests) and
# `disable` change it.
ENABLED: bool = configured()

_service = "dkronweb"
_provider: Any = None
_tracer: Any = None
_ids: Any = None
_install_lock = threading.Lock()


def set_service(name: str) -> None:
    """This process's default service.name (OTEL_SERVICE_NAME wins); call before any span.

    The scheduler says `dkronweb-scheduler`, the agent `dkronweb-agent`; the first call wins,
    so the embedded mode (every role in one process) is one service.
    """
    global _service
    if _service == "dkronweb" and _provider is None:
        _service = name


def preload() -> None:
    """Import the SDK and its exporter now when tracing is on: an agent's main process does,
    before its prefork pool forks, so the children share those pages instead of each loading
    them (about 7 MB) with its first span."""
    if not ENABLED:
        return
    try:
        import opentelemetry.sdk.trace.export  # noqa: F401

        if "otlp" in (_exporter_names(os.environ) or ["otlp"]):
            import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
            import requests  # noqa: F401  (the exporter's HTTP client, imported when it is made)
    except ImportError:
        log.warning("tracing is on but OpenTelemetry's SDK is not installed", exc_info=True)


# --- ids and the traceparent header ----------------------------------------------------------


def _hash(text: str, bits: int) -> int:
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[: bits // 8], "big")
    return value or 1  # zero is the invalid id


def trace_id(*, job_id: int, run_id: int) -> int:
    """The run's trace id (128 bits), the same in every process."""
    return _hash(f"dkronweb run {job_id}:{run_id}", 128)


def fire_span_id(*, job_id: int, run_id: int) -> int:
    """The span id of the run's `fire` span (64 bits): the parent of its publish spans."""
    return _hash(f"dkronweb fire {job_id}:{run_id}", 64)


def traceparent(trace: int, span: int) -> str:
    """A W3C traceparent (version 00, sampled)."""
    return f"00-{trace:032x}-{span:016x}-01"


def parse_traceparent(value: Any) -> tuple[int, int] | None:
    """(trace id, span id) of a W3C traceparent, or None when it is not one."""
    if not isinstance(value, str):
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace, span = int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None
    return (trace, span) if trace and span else None


def _new_span_id() -> int:
    return random.getrandbits(64) or 1


def _iso(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else ""


# --- the SDK, loaded on the first span -------------------------------------------------------


def _install(exporter: Any = None) -> Any:
    """The tracer: a TracerProvider with a BatchSpanProcessor on the configured exporter, or
    (tests) a SimpleSpanProcessor on `exporter`. Imported here only, when tracing is on."""
    global _provider, _tracer, _ids
    with _install_lock:
        if _tracer is not None:
            return _tracer
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
        from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

        class _ChosenIds(IdGenerator):
            """Random ids, except the ones `_record` chose for the span it is starting (a
            run's derived trace and fire span ids, a publish span's id already sent)."""

            def __init__(self) -> None:
                self.random = RandomIdGenerator()
                self.chosen = threading.local()

            def generate_span_id(self) -> int:
                span = getattr(self.chosen, "span", 0)
                self.chosen.span = 0
                return span or self.random.generate_span_id()

            def generate_trace_id(self) -> int:
                trace = getattr(self.chosen, "trace", 0)
                self.chosen.trace = 0
                return trace or self.random.generate_trace_id()

        env = os.environ
        attributes: dict[str, str] = {}
        if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        ):
            attributes["service.name"] = _service
        _ids = _ChosenIds()
        provider = TracerProvider(resource=Resource.create(attributes), id_generator=_ids)
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            for name in _exporter_names(env) or ["otlp"]:
                if name == "otlp":
                    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
                        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
                    )
                    if protocol != "http/protobuf":
                        log.warning(
                            "OTEL_EXPORTER_OTLP_PROTOCOL=%s: dkronweb exports traces over "
                            "http/protobuf only (port 4318 of a collector)",
                            protocol,
                        )
                    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                        OTLPSpanExporter,
                    )

                    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
                elif name == "console":
                    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
                elif name != "none":
                    log.warning(
                        "OTEL_TRACES_EXPORTER=%s is not one dkronweb exports to (%s): ignored",
                        name,
                        ", ".join(EXPORTERS),
                    )
        _provider = provider
        _tracer = provider.get_tracer("dkronweb")
        return _tracer


def enable(exporter: Any = None) -> None:
    """Turn tracing on in this process; with `exporter` (the SDK's InMemorySpanExporter in
    the tests) every span is exported as it ends, else to what OTEL_* configures."""
    global ENABLED
    disable()
    _install(exporter)
    ENABLED = True


def disable() -> None:
    """Flush and drop the tracer; tracing is off in this process from now on."""
    global ENABLED
    shutdown()
    ENABLED = False


def shutdown() -> None:
    """Export the spans still buffered (a process about to stop): scheduler close, worker
    shutdown. Safe to call when tracing is off or was never used; a span recorded after it
    starts a new provider."""
    global _provider, _tracer
    with _install_lock:
        provider, _provider, _tracer = _provider, None, None
    if provider is None:
        return
    try:
        provider.force_flush(timeout_millis=5000)
        provider.shutdown()
    except Exception:  # a collector gone at shutdown must not stop the process stopping
        log.warning("could not export the last traces", exc_info=True)


def _record(
    name: str,
    *,
    trace: int,
    span: int,
    parent: int | None,
    start: int,
    end: int,
    attributes: dict[str, Any],
    error: str = "",
    kind: str = "INTERNAL",
) -> None:
    """One finished span with these ids and times (nanoseconds since the epoch)."""
    try:
        tracer = _tracer or _install()
        from opentelemetry import trace as trace_api
        from opentelemetry.context import Context

        context = Context()
        if parent:
            # Sampled as the run's fire span was: the sampler (OTEL_TRACES_SAMPLER, every run
            # by default) decides a root span on its trace id alone, and the run's trace id is
            # the same in every process, so a ratio keeps or drops a run's spans together.
            root = _provider.sampler.should_sample(None, trace, "fire").decision.is_sampled()
            remote = trace_api.SpanContext(
                trace, parent, is_remote=True, trace_flags=trace_api.TraceFlags(int(root))
            )
            context = trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote))
        else:
            _ids.chosen.trace = trace
        _ids.chosen.span = span
        try:
            started = tracer.start_span(
                name,
                context=context,
                kind=getattr(trace_api.SpanKind, kind),
                attributes={k: v for k, v in attributes.items() if v is not None and v != ""},
                start_time=start,
            )
        finally:  # chosen ids are for this span only, even when it was not sampled
            _ids.chosen.trace = _ids.chosen.span = 0
        if error:
            started.set_status(trace_api.Status(trace_api.StatusCode.ERROR, error[:255]))
        started.end(end_time=max(end, start))
    except ImportError:  # configured, but the SDK is missing: say so once, then stay off
        global ENABLED
        ENABLED = False
        log.warning("tracing is off: OpenTelemetry's SDK is not installed", exc_info=True)
    except Exception:  # tracing must never fail a run
        log.warning("could not record span %s", name, exc_info=True)


def _execution_attributes(execution: Execution) -> dict[str, Any]:
    return {
        "dkron.job": execution.job_name,
        "dkron.node": execution.node_name,
        "dkron.attempt": execution.attempt,
        "dkron.execution_id": execution.pk,
        "dkron.run_id": execution.run_id,
        "dkron.scheduled_at": _iso(execution.scheduled_at),
    }


def _run_ids(execution: Execution) -> tuple[int, int]:
    trace = trace_id(job_id=execution.job_id, run_id=execution.run_id)
    return trace, fire_span_id(job_id=execution.job_id, run_id=execution.run_id)


# --- fire -----------------------------------------------------------------------------------


def fired(runs: list[tuple[Run, str]], *, start: int) -> None:
    """The `fire` spans of a batch of new runs, recorded once their transaction commits (a
    fire rolled back never happened). Each run comes with its outcome: "" when it was
    queued, else the status of what the fire recorded (skipped, failed)."""
    if not ENABLED or not runs:
        return
    from django.db import transaction

    def record() -> None:
        end = time.time_ns()
        for run, outcome in runs:
            ids = {"job_id": run.job_id, "run_id": run.pk}
            _record(
                "fire",
                trace=trace_id(**ids),
                span=fire_span_id(**ids),
                parent=None,
                start=start,
                end=end,
                kind="PRODUCER",
                attributes={
                    "dkron.job": run.job.name,
                    "dkron.run_id": run.pk,
                    "dkron.trigger": str(run.trigger),
                    "dkron.scheduled_at": _iso(run.scheduled_at),
                    "dkron.status": outcome or "queued",
                },
                error=outcome if outcome == "failed" else "",
            )

    transaction.on_commit(record)


# --- publish --------------------------------------------------------------------------------


class _NoPublish:
    """Tracing off: no header, nothing recorded."""

    def header(self, execution: Execution) -> None:
        return None

    def end(self) -> None:
        return None


class _Publish:
    """The `publish` spans of one batch of messages: each message's header names its span,
    recorded when the batch is flushed (`end`)."""

    def __init__(self) -> None:
        self.start = time.time_ns()
        self.sent: list[tuple[Execution, int]] = []

    def header(self, execution: Execution) -> dict[str, str]:
        span = _new_span_id()
        self.sent.append((execution, span))
        trace, _ = _run_ids(execution)
        return {"traceparent": traceparent(trace, span)}

    def end(self) -> None:
        end = time.time_ns()
        for execution, span in self.sent:
            trace, fire = _run_ids(execution)
            _record(
                "publish",
                trace=trace,
                span=span,
                parent=fire,
                start=self.start,
                end=end,
                kind="PRODUCER",
                attributes={**_execution_attributes(execution), "dkron.queue": execution.queue},
            )
        self.sent = []


_NO_PUBLISH = _NoPublish()


def publishing() -> _NoPublish | _Publish:
    """What a publisher asks for each message's headers (`header`, None when off) and calls
    `end` on once the messages are out."""
    return _Publish() if ENABLED else _NO_PUBLISH


# --- the agent: claim, execute, finish --------------------------------------------------------


class _NoDelivery:
    def span(self, name: str, *, start: int, status: str = "", error: str = "") -> None:
        return None


class _Delivery:
    """One delivery of an execution on this agent: its spans share the message's parent."""

    def __init__(self, execution: Execution, header: Any) -> None:
        self.attributes = _execution_attributes(execution)
        self.trace, self.parent = _run_ids(execution)
        sent = parse_traceparent(header)
        if sent is not None and sent[0] == self.trace:
            self.parent = sent[1]

    def span(self, name: str, *, start: int, status: str = "", error: str = "") -> None:
        attributes = {**self.attributes, "dkron.status": status}
        _record(
            name,
            trace=self.trace,
            span=_new_span_id(),
            parent=self.parent,
            start=start,
            end=time.time_ns(),
            kind="CONSUMER" if name == "claim" else "INTERNAL",
            attributes=attributes,
            error=error,
        )


NO_DELIVERY = _NoDelivery()


def delivery(execution: Execution, header: Any = None) -> _NoDelivery | _Delivery:
    """The span recorder of a claimed execution (`header`: its message's traceparent)."""
    return _Delivery(execution, header) if ENABLED else NO_DELIVERY


def now() -> int:
    """A span's start, in nanoseconds since the epoch."""
    return time.time_ns()
