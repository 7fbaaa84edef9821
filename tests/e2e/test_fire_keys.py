"""End to end: an http job's retry sends the fire key of its first attempt (issue 17).

A real scheduler fires the job and a real agent runs it against a loopback server that answers
500 to the first request of each fire key and 200 to the next, so every fire fails once and
its retry succeeds: the target sees the same Idempotency-Key and scheduled time twice, with
attempts 1 and 2, and could have deduplicated the second.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jobs.models import Execution
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def target() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A server that fails the first request of each Idempotency-Key; every request's fire
    headers, in arrival order."""
    seen: list[dict[str, str]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - stdlib API
            self.rfile.read(int(self.headers["Content-Length"] or 0))
            fields = {
                name: self.headers.get(name, "")
                for name in (
                    "Idempotency-Key",
                    "X-Dkron-Scheduled-Time",
                    "X-Dkron-Attempt",
                    "X-Dkron-Execution",
                )
            }
            with lock:
                first = all(s["Idempotency-Key"] != fields["Idempotency-Key"] for s in seen)
                seen.append(fields)
            code = 500 if first else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    finally:
        server.shutdown()
        server.server_close()


def http_job(name: str, url: str, schedule: str) -> dict[str, object]:
    return {
        "name": name,
        "schedule": schedule,
        "retries": 1,
        "retry_backoff": 0.2,
        "executor": "http",
        "executor_config": {"method": "POST", "url": url, "expectCode": "200", "timeout": "5"},
    }


def retried_run(job: str) -> list[Execution]:
    """Attempts 1 and 2 of the first run whose retry finished; empty until there is one."""
    retry = (
        Execution.objects.filter(job_name=job, attempt=2)
        .exclude(status__in=["queued", "running"])
        .order_by("id")
        .first()
    )
    if retry is None:
        return []
    return list(Execution.objects.filter(run_id=retry.run_id).order_by("attempt"))


def test_a_scheduled_fire_and_its_retry_send_the_same_idempotency_key(cluster, api, target):
    url, seen = target
    cluster.agent("agent-a")
    cluster.scheduler()
    response = api.post("/v1/jobs", http_job("charge", url, "@every 1s"), format="json")
    assert response.status_code == 201, response.content

    first, retry = wait_for(lambda: retried_run("charge"), timeout=30, what="a retried fire")

    assert (first.status, retry.status) == ("failed", "success"), (first.output, retry.output)
    assert first.scheduled_at == retry.scheduled_at is not None
    scheduled = first.scheduled_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    key = f"charge@{scheduled}"
    requests = [s for s in seen if s["Idempotency-Key"] == key]
    assert requests == [
        {
            "Idempotency-Key": key,
            "X-Dkron-Scheduled-Time": scheduled,
            "X-Dkron-Attempt": "1",
            "X-Dkron-Execution": str(first.pk),
        },
        {
            "Idempotency-Key": key,
            "X-Dkron-Scheduled-Time": scheduled,
            "X-Dkron-Attempt": "2",
            "X-Dkron-Execution": str(retry.pk),
        },
    ]
    assert RFC3339_UTC.fullmatch(scheduled)


def test_a_manual_run_and_its_retry_send_the_runs_key(cluster, api, target):
    url, seen = target
    cluster.agent("agent-a")
    response = api.post("/v1/jobs", http_job("refund", url, "@manually"), format="json")
    assert response.status_code == 201, response.content
    api.post("/v1/jobs/refund/run")

    first, retry = wait_for(lambda: retried_run("refund"), timeout=30, what="a retried run")
    assert (first.status, retry.status) == ("failed", "success"), (first.output, retry.output)
    key = f"refund@run-{first.run_id}"
    assert [(s["Idempotency-Key"], s["X-Dkron-Attempt"]) for s in seen] == [
        (key, "1"),
        (key, "2"),
    ]
    assert [s["X-Dkron-Scheduled-Time"] for s in seen] == ["", ""]  # a manual run has none
