"""End to end: a real scheduler and a real (prefork) agent export a run's trace over OTLP/HTTP.

The OTEL_* environment points both at a real OTLP/HTTP receiver on loopback, written here: an
http.server accepting POST /v1/traces and decoding each ExportTraceServiceRequest with
opentelemetry-proto, as a collector does. One run must be one trace holding fire and publish
(the scheduler) and claim, execute and finish (the agent), with the job, node and attempt.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from jobs import tracing
from jobs.models import Execution
from tests.e2e.helpers import create
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


@dataclass
class Received:
    service: str
    name: str
    trace_id: int
    span_id: int
    parent_id: int
    attributes: dict[str, Any]
    error: bool


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Received] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def trace(self, *, job_id: int, run_id: int) -> list[Received]:
        trace = tracing.trace_id(job_id=job_id, run_id=run_id)
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces":
            self.send_response(404)
            self.end_headers()
            return
        request = ExportTraceServiceRequest.FromString(body)
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        Received(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            trace_id=int.from_bytes(span.trace_id, "big"),
                            span_id=int.from_bytes(span.span_id, "big"),
                            parent_id=int.from_bytes(span.parent_span_id or b"", "big"),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            error=span.status.code == 2,  # STATUS_CODE_ERROR
                        )
                    )
        with self.server.lock:
            self.server.spans += found
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def otel(receiver: Receiver) -> dict[str, str]:
    # The batch processor's delay shortened so the test waits less; the rest is the default.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}


def first_run(job: str, api, *, attempts: int = 1) -> list[Execution]:
    """The executions of the job's first run, once `attempts` of them have finished; the job
    is disabled as soon as it has fired once (it fires every second)."""

    def done() -> list[Execution] | None:
        rows = list(Execution.objects.filter(job_name=job).order_by("id"))
        if not rows:
            return None
        run = [e for e in rows if e.run_id == rows[0].run_id]
        over = [e for e in run if e.status not in ("queued", "running")]
        return run if len(over) >= attempts else None

    wait_for(lambda: Execution.objects.filter(job_name=job).exists(), timeout=30, what="a fire")
    api.post(f"/v1/jobs/{job}/toggle")
    return wait_for(done, timeout=60, what=f"{attempts} finished attempt(s) of the first run")


def by_name(spans: list[Received]) -> dict[str, list[Received]]:
    found: dict[str, list[Received]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def test_a_scheduled_run_is_one_trace_of_fire_publish_claim_execute_finish(cluster, api, receiver):
    cluster.agent("agent-t", pool="prefork", concurrency=1, **otel(receiver))
    cluster.scheduler(**otel(receiver))
    create(api, "traced", "echo traced", schedule="@every 1s")
    [execution] = first_run("traced", api)
    assert execution.status == "success"
    ids = {"job_id": execution.job_id, "run_id": execution.run_id}
    names = {"fire", "publish", "claim", "execute", "finish"}

    spans = wait_for(
        lambda: (s := receiver.trace(**ids)) and names <= {x.name for x in s} and s,
        timeout=30,
        what="the run's five spans at the receiver",
    )
    found = by_name(spans)
    assert {name: len(found[name]) for name in names} == dict.fromkeys(names, 1)
    [fire], [publish] = found["fire"], found["publish"]
    assert fire.service == publish.service == "dkronweb-scheduler"
    assert fire.parent_id == 0 and publish.parent_id == fire.span_id
    assert fire.attributes["dkron.job"] == "traced"
    assert fire.attributes["dkron.trigger"] == "schedule"
    for name in ("claim", "execute", "finish"):
        [span] = found[name]
        assert span.service == "dkronweb-agent"
        assert span.parent_id == publish.span_id  # through the message's traceparent
        assert span.attributes["dkron.job"] == "traced"
        assert span.attributes["dkron.node"] == "agent-t"
        assert span.attributes["dkron.attempt"] == 1
        assert span.attributes["dkron.execution_id"] == execution.pk
        assert not span.error
    assert found["execute"][0].attributes["dkron.status"] == "success"


def test_a_retry_stays_in_the_runs_trace_with_attempt_two(cluster, api, receiver):
    cluster.agent("agent-r", pool="prefork", concurrency=1, **otel(receiver))
    cluster.scheduler(**otel(receiver))
    create(api, "flaky", "echo no; exit 3", schedule="@every 1s", retries=1)
    first, second = first_run("flaky", api, attempts=2)
    assert (first.attempt, second.attempt) == (1, 2)
    assert second.status == "failed"
    ids = {"job_id": first.job_id, "run_id": first.run_id}

    def complete() -> list[Received] | None:
        spans = receiver.trace(**ids)
        finishes = [s for s in spans if s.name == "finish"]
        return spans if len(finishes) == 2 and any(s.name == "fire" for s in spans) else None

    found = by_name(wait_for(complete, timeout=30, what="both attempts' spans"))
    assert len(found["fire"]) == 1
    for name in ("publish", "claim", "execute", "finish"):
        assert sorted(s.attributes["dkron.attempt"] for s in found[name]) == [1, 2], name
    retry = next(s for s in found["publish"] if s.attributes["dkron.attempt"] == 2)
    assert retry.service == "dkronweb-agent"  # the agent publishes the retry
    assert retry.parent_id == found["fire"][0].span_id
    claim = next(s for s in found["claim"] if s.attributes["dkron.attempt"] == 2)
    assert claim.parent_id == retry.span_id
    assert all(s.error and s.attributes["dkron.status"] == "failed" for s in found["execute"])


def test_a_stopping_scheduler_and_agent_export_the_spans_they_still_hold(cluster, api, receiver):
    # A batch delay no test outlives: the spans can only leave with the shutdown flush (the
    # scheduler's close, the prefork child's worker_process_shutdown).
    held = {**otel(receiver), "OTEL_BSP_SCHEDULE_DELAY": "600000"}
    agent = cluster.agent("agent-s", pool="prefork", concurrency=1, **held)
    scheduler = cluster.scheduler(**held)
    create(api, "last", "echo last", schedule="@every 1s")
    [execution] = first_run("last", api)
    ids = {"job_id": execution.job_id, "run_id": execution.run_id}
    assert receiver.trace(**ids) == []  # still in the processes' batches
    scheduler.stop()
    agent.stop()
    names = {span.name for span in receiver.trace(**ids)}
    assert names == {"fire", "publish", "claim", "execute", "finish"}
