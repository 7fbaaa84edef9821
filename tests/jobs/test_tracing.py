"""OpenTelemetry traces of runs (jobs.tracing), recorded into the SDK's in-memory exporter.

One run is one trace: fire (the root), publish (its child, named by the message's traceparent
header), and the agent's claim, execute and finish (children of the publish span); a retry
stays in the run's trace. Off (no OTEL_* configuration), nothing of OpenTelemetry is imported
and no statement is added.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery import signals
from django.db import connection
from django.test.utils import CaptureQueriesContext
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agent import runner, tasks
from jobs import dispatch, node, tracing
from jobs.models import Execution
from jobs.services import executions
from jobs.services.runs import run_now
from tests.factories import agent, job

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.enable(exporter)
    try:
        yield exporter
    finally:
        tracing.disable()


@pytest.fixture
def here(monkeypatch):
    monkeypatch.setattr(node, "_identity", node.Identity(name="n1"))
    agent("n1")


@pytest.fixture
def sent_headers():
    """The traceparent of every run task published (Celery's before_task_publish)."""
    seen: dict[int, str | None] = {}

    def record(sender=None, headers=None, body=None, **kw):
        if sender == dispatch.RUN_TASK:
            seen[body[1]["execution_id"]] = (headers or {}).get("traceparent")

    signals.before_task_publish.connect(record, weak=False)
    try:
        yield seen
    finally:
        signals.before_task_publish.disconnect(record)  # type: ignore[attr-defined]


def by_name(exporter: InMemorySpanExporter) -> dict[str, list]:
    found: dict[str, list] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def deliver(execution_id: int, header: str | None) -> Any:
    return tasks.run_execution.apply(
        kwargs={"execution_id": execution_id}, headers={"traceparent": header or ""}
    )


def test_one_run_is_one_trace_of_fire_publish_claim_execute_and_finish(
    transactional_db, here, spans, sent_headers
):
    run_now(job=job("traced", executor="echo", executor_config={"message": "hi"}), force=True)
    execution = Execution.objects.get(job_name="traced")
    assert deliver(execution.pk, sent_headers[execution.pk]).successful()

    found = by_name(spans)
    assert sorted(found) == ["claim", "execute", "finish", "fire", "publish"]
    assert all(len(v) == 1 for v in found.values()), found
    [fire], [publish] = found["fire"], found["publish"]
    trace = tracing.trace_id(job_id=execution.job_id, run_id=execution.run_id)
    assert {s.context.trace_id for v in found.values() for s in v} == {trace}
    assert fire.parent is None
    assert fire.context.span_id == tracing.fire_span_id(
        job_id=execution.job_id, run_id=execution.run_id
    )
    assert publish.parent.span_id == fire.context.span_id
    header = tracing.parse_traceparent(sent_headers[execution.pk])
    assert header == (trace, publish.context.span_id)
    for name in ("claim", "execute", "finish"):
        [span] = found[name]
        assert span.parent.span_id == publish.context.span_id, name
        assert span.attributes["dkron.job"] == "traced"
        assert span.attributes["dkron.node"] == "n1"
        assert span.attributes["dkron.attempt"] == 1
        assert span.attributes["dkron.execution_id"] == execution.pk
        assert span.attributes["dkron.run_id"] == execution.run_id
        assert span.status.status_code != StatusCode.ERROR
    assert found["execute"][0].attributes["dkron.status"] == "success"
    assert fire.attributes["dkron.job"] == "traced"
    assert fire.attributes["dkron.trigger"] == "manual"
    assert publish.attributes["dkron.attempt"] == 1
    assert publish.attributes["dkron.queue"] == "dkron.node.n1"
    assert fire.start_time <= publish.start_time <= found["claim"][0].start_time
    assert found["claim"][0].end_time <= found["execute"][0].start_time
    assert found["execute"][0].end_time <= found["finish"][0].start_time


def test_a_retry_stays_in_the_runs_trace_with_attempt_two(
    transactional_db, here, spans, sent_headers
):
    failing = job("flaky", executor="echo", executor_config={"message": "x", "fail": "true"})
    failing.retries = 1
    failing.save()
    run_now(job=failing, force=True)
    first = Execution.objects.get(job_name="flaky")
    # Eager, Celery runs the retry (attempt 2, with its own message headers) inline.
    assert deliver(first.pk, sent_headers[first.pk]).failed()
    assert Execution.objects.get(job_name="flaky", attempt=2).status == "failed"

    found = by_name(spans)
    trace = tracing.trace_id(job_id=first.job_id, run_id=first.run_id)
    assert {s.context.trace_id for v in found.values() for s in v} == {trace}
    assert len(found["fire"]) == 1
    assert sorted(s.attributes["dkron.attempt"] for s in found["publish"]) == [1, 2]
    for name in ("claim", "execute", "finish"):
        assert sorted(s.attributes["dkron.attempt"] for s in found[name]) == [1, 2], name
    retry_publish = next(s for s in found["publish"] if s.attributes["dkron.attempt"] == 2)
    assert retry_publish.parent.span_id == found["fire"][0].context.span_id
    for span in found["execute"]:
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description == "echo: failing as configured"
        assert span.attributes["dkron.status"] == "failed"
    second_claim = next(s for s in found["claim"] if s.attributes["dkron.attempt"] == 2)
    assert second_claim.parent.span_id == retry_publish.context.span_id


def test_a_message_without_a_header_is_parented_to_the_fire_span(transactional_db, here, spans):
    # An older scheduler's message, or a header of another trace.
    run_now(job=job("plain", executor="echo", executor_config={"message": "hi"}), force=True)
    execution = Execution.objects.get(job_name="plain")
    other = tracing.traceparent(12345, 678)
    assert runner.run(execution.pk, node_name="n1", traceparent=other).status == "success"
    found = by_name(spans)
    fire = tracing.fire_span_id(job_id=execution.job_id, run_id=execution.run_id)
    for name in ("claim", "execute", "finish"):
        assert found[name][0].parent.span_id == fire
        assert found[name][0].context.trace_id == found["fire"][0].context.trace_id


def test_a_republish_by_the_sweep_joins_the_runs_trace(transactional_db, here, spans):
    run_now(job=job("lost", executor="echo", executor_config={"message": "x"}), force=True)
    execution = Execution.objects.select_related("run").get(job_name="lost")
    dispatch.publish_many([execution])  # what the sweep does with a message it thinks lost
    found = by_name(spans)
    assert len(found["publish"]) == 2
    assert len({s.context.span_id for s in found["publish"]}) == 2
    fire = found["fire"][0].context
    assert all(s.context.trace_id == fire.trace_id for s in found["publish"])
    assert all(s.parent.span_id == fire.span_id for s in found["publish"])


def test_a_run_the_sampler_drops_records_no_span_anywhere(transactional_db, here, monkeypatch):
    # The sampler decides on the run's trace id, the same for the agent's spans as for the fire.
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off")
    exporter = InMemorySpanExporter()
    tracing.enable(exporter)
    try:
        run_now(job=job("dropped", executor="echo", executor_config={"message": "x"}), force=True)
        execution = Execution.objects.get(job_name="dropped")
        header = tracing.traceparent(
            tracing.trace_id(job_id=execution.job_id, run_id=execution.run_id), 99
        )
        assert deliver(execution.pk, header).successful()
    finally:
        tracing.disable()
    assert exporter.get_finished_spans() == ()


def test_the_service_name_is_the_roles_unless_otel_service_name_says(monkeypatch):
    def service() -> str:
        exporter = InMemorySpanExporter()
        tracing.enable(exporter)
        try:
            tracing._record("x", trace=1, span=2, parent=None, start=1, end=2, attributes={})
        finally:
            tracing.disable()
        [span] = exporter.get_finished_spans()
        return str(span.resource.attributes["service.name"])

    monkeypatch.setattr(tracing, "_service", "dkronweb")
    tracing.set_service("dkronweb-agent")
    tracing.set_service("dkronweb-scheduler")  # the first role of the process wins
    assert service() == "dkronweb-agent"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "nightly-batch")
    assert service() == "nightly-batch"


def test_a_fire_rolled_back_records_no_span(transactional_db, here, spans):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        run_now(job=job("undone", executor="echo", executor_config={"message": "x"}), force=True)
        raise RuntimeError
    assert spans.get_finished_spans() == ()


def test_tracing_off_adds_no_statement_to_an_execution(transactional_db, here, monkeypatch):
    monkeypatch.setattr(executions, "TRIM_EVERY", 10**9)
    assert not tracing.ENABLED
    run_now(job=job("quiet", executor="echo", executor_config={"message": "hi"}), force=True)
    execution = Execution.objects.get(job_name="quiet")
    with CaptureQueriesContext(connection) as off:
        assert deliver(execution.pk, None).successful()
    exporter = InMemorySpanExporter()
    tracing.enable(exporter)
    try:
        run_now(job=job("loud", executor="echo", executor_config={"message": "hi"}), force=True)
        execution = Execution.objects.get(job_name="loud")
        with CaptureQueriesContext(connection) as on:
            assert deliver(execution.pk, None).successful()
    finally:
        tracing.disable()
    assert len(on) == len(off)  # tracing reads nothing from the database, on or off
    assert len(exporter.get_finished_spans()) == 5


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_SERVICE_NAME": "x"}, False),
    ],
)
def test_the_otel_environment_turns_tracing_on(environ, on):
    assert tracing.configured(environ) is on


def test_traceparent_round_trips_and_junk_is_refused():
    header = tracing.traceparent(2**127 + 5, 2**63 + 7)
    assert tracing.parse_traceparent(header) == (2**127 + 5, 2**63 + 7)
    assert header.endswith("-01") and len(header) == 55
    for junk in (None, "", "00-xyz", "00-" + "0" * 32 + "-" + "0" * 16 + "-01", 42):
        assert tracing.parse_traceparent(junk) is None


def test_the_trace_id_is_the_runs_in_every_process():
    a = tracing.trace_id(job_id=1, run_id=2)
    assert a == tracing.trace_id(job_id=1, run_id=2)
    assert a != tracing.trace_id(job_id=1, run_id=3)
    assert 0 < a < 2**128 and 0 < tracing.fire_span_id(job_id=1, run_id=2) < 2**64


SCRIPT = """
import json, sys
import django
django.setup()
from jobs import tracing
from jobs.services import runs
from jobs import dispatch
from agent import runner, tasks
print(json.dumps({
    "enabled": tracing.ENABLED,
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"),
}))
"""


def _modules(**env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ.update(DJANGO_SETTINGS_MODULE="dkronweb.settings_test", **env)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_off_the_fire_publish_and_agent_paths_import_nothing_of_opentelemetry():
    off = _modules()
    assert off == {"enabled": False, "loaded": []}
    on = _modules(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert on["enabled"] is True
    assert on["loaded"] == []  # on, the SDK is loaded with the first span, not before
