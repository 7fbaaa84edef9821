"""A newcomer's first ten minutes, as a test: the README's `make run` (SQLite, one process), a
job made with plain HTTP, its output read back, disabled and re-enabled, a Dkron backup
restored, and a published Dkron client library (pydkron) driving the same server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.harness import ROOT, wait_for

pytestmark = pytest.mark.e2e

ZERO_TIME = "0001-01-01T00:00:00Z"
BACKUP = ROOT / "tests" / "operations" / "data" / "dkron-backup.json"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Embedded:
    base: str
    port: int
    password: str
    client: httpx.Client
    log: Path


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    """`make run PORT=...` exactly as the README says, on a data directory of its own."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DKRON_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(DKRON_DATA_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    log = tmp_path / "make-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        text = wait_for(
            lambda: "API token:" in log.read_text() and log.read_text(),
            timeout=120,
            what="the first-start credentials printed by make run",
        )
        token = re.search(r"API token:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        password = re.search(r"admin password:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base), timeout=30, what="the web server")
        client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        yield Embedded(base, port, password, client, log)
    finally:
        # Ctrl-C, as a user stops it: SIGINT to make and everything it started.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise


def finished(execution: dict) -> bool:
    """As a Dkron client tells: Go writes an unset time as its zero value, not null."""
    return execution["finished_at"] not in (None, ZERO_TIME)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health?scope=process", timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def test_a_newcomer_makes_a_job_reads_its_output_pauses_it_and_restores_a_backup(embedded):
    api = embedded.client
    # The README's first job, sent the way its curl line sends it.
    created = api.post(
        "/v1/jobs",
        content=json.dumps(
            {
                "name": "hello",
                "schedule": "@every 1s",
                "executor": "shell",
                "executor_config": {"command": "echo hello from $DKRON_JOB_NAME", "shell": "true"},
            }
        ),
        headers={"Content-Type": "application/json"},
    )
    assert created.status_code == 201, created.text

    def successes() -> list[dict]:
        return [e for e in api.get("/v1/jobs/hello/executions").json() if e["success"]]

    runs = wait_for(lambda: successes() or None, timeout=30, what="the first run of hello")
    assert runs[0]["output"] == "hello from hello\n"

    # Disabled: nothing runs, `next` is never in the past; enabled: no burst of the fires that
    # fell while it was off.
    assert api.post("/v1/jobs/hello/toggle").json()["disabled"] is True
    disabled_at = datetime.now(UTC)
    time.sleep(5)
    job = api.get("/v1/jobs/hello").json()
    assert job["disabled"] is True
    assert job["next"] is None or parse_time(job["next"]) >= disabled_at
    assert api.post("/v1/jobs/hello/toggle").json()["disabled"] is False
    enabled_at = datetime.now(UTC)
    wait_for(
        lambda: any(parse_time(e["scheduled_at"]) >= enabled_at for e in successes()) or None,
        timeout=30,
        what="a run after re-enabling",
    )
    executions = api.get("/v1/jobs/hello/executions").json()
    fell_while_disabled = [
        e
        for e in executions
        if e["scheduled_at"]
        and disabled_at.timestamp() + 1.5
        < parse_time(e["scheduled_at"]).timestamp()
        < enabled_at.timestamp() - 0.5
    ]
    assert fell_while_disabled == []
    assert api.get("/v1/jobs/hello").json()["missed_count"] == 0

    # A Dkron backup (Dkron's own export format) restores whole.
    backup = json.loads(BACKUP.read_text())
    restored = api.post("/v1/restore", files={"file": ("backup.json", BACKUP.read_bytes())})
    assert restored.status_code == 200, restored.text
    names = {j["name"] for j in api.get("/v1/jobs").json()}
    assert {j["name"] for j in backup} <= names


def test_a_published_dkron_client_drives_the_embedded_default(embedded):
    from pydkron.client import DkronClient

    # pydkron sends no auth header of its own; HTTP Basic in the host string is how its users
    # reach a Dkron behind auth, and requests turns it into an Authorization header.
    dkron = DkronClient([f"admin:{embedded.password}@127.0.0.1:{embedded.port}"])
    job = {
        "name": "client-job",
        "schedule": "@every 1h",
        "executor": "shell",
        "executor_config": {"command": "echo from the client", "shell": "true"},
        "tags": {"role": "dkron:1"},
        "metadata": {"cron": "auto", "team": "ops"},
        "retries": 0,
        "concurrency": "allow",
    }
    dkron.create_job(job)
    assert dkron.get_job("client-job")["executor_config"]["command"] == "echo from the client"
    # A Django app that syncs its jobs with Dkron (django-dkron) lists by metadata first.
    listed = embedded.client.get("/v1/jobs", params={"metadata[cron]": "auto"})
    assert listed.status_code == 200, listed.text
    assert [j["name"] for j in listed.json()] == ["client-job"]

    dkron.run_job("client-job")
    outputs = wait_for(
        lambda: [e["output"] for e in dkron.get_executions("client-job") if finished(e)] or None,
        timeout=30,
        what="the run started by the client",
    )
    assert outputs == ["from the client\n"]
    assert dkron.toggle("client-job")["disabled"] is True
    assert dkron.toggle("client-job")["disabled"] is False
    dkron.delete_job("client-job")
    assert embedded.client.get("/v1/jobs/client-job").status_code == 404
