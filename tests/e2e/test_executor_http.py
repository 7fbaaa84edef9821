"""An http job created with Dkron-style JSON runs on a real agent against a local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jobs.models import Execution
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - stdlib API
            body = self.rfile.read(int(self.headers["Content-Length"] or 0)).decode()
            seen.append({"path": self.path, "body": body, "trace": self.headers["X-Trace"]})
            payload = b'{"accepted": true}'
            self.send_response(202)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()


def test_an_http_job_posts_to_the_server_and_records_the_response(cluster, api, receiver):
    url, seen = receiver
    cluster.agent("agent-a")
    body = {
        "name": "webhook",
        "schedule": "@manually",
        "executor": "http",
        "executor_config": {
            "method": "POST",
            "url": f"{url}/hook",
            "headers": json.dumps(["Content-Type: application/json", "X-Trace: a:b:c"]),
            "body": '{"ping": true}',
            "timeout": "5",
            "expectCode": "200,202",
            "expectBody": "accepted",
        },
    }
    assert api.post("/v1/jobs", body, format="json").status_code == 201
    api.post("/v1/jobs/webhook/run")
    execution = wait_for(
        lambda: (
            Execution.objects.filter(job_name="webhook")
            .exclude(status__in=["queued", "running"])
            .first()
        ),
        what="the http job to finish",
    )
    assert execution.status == "success", execution.output
    assert '{"accepted": true}' in execution.output
    assert seen == [{"path": "/hook", "body": '{"ping": true}', "trace": "a:b:c"}]
