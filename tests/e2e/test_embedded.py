"""The embedded default: `manage.py serve` (what `make run` starts) on SQLite, end to end."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import free_port
from tests.harness import ROOT, wait_for

pytestmark = pytest.mark.e2e


def test_serve_runs_web_scheduler_and_agent_in_one_process_and_stops_on_ctrl_c(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DKRON_")}
    env.update(
        DJANGO_SETTINGS_MODULE="dkronweb.settings",
        DKRON_DATA_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        token = wait_for(
            lambda: re.search(r"API token:\s+(\S+)", log.read_text()),
            timeout=60,
            what="the first-start credentials",
        ).group(1)
        assert re.search(r"admin password:\s+\S+", log.read_text())
        base = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        assert httpx.get(f"{base}/v1/jobs").status_code == 401
        # Healthy once the scheduler in the process has ticked and holds the lease.
        wait_for(
            lambda: httpx.get(f"{base}/health").status_code == 200,
            timeout=30,
            what="/health to answer 200 (the embedded scheduler active)",
        )
        assert httpx.get(f"{base}/health").json()["status"] == "healthy"
        created = client.post(
            "/v1/jobs",
            json={
                "name": "embedded",
                "schedule": "@every 1s",
                "executor": "shell",
                "executor_config": {"command": "echo hi from $DKRON_JOB_NAME", "shell": "true"},
            },
        )
        assert created.status_code == 201, created.text

        def two_successes():
            runs = client.get("/v1/jobs/embedded/executions").json()
            ok = [r for r in runs if r["success"]]
            return ok if len(ok) >= 2 else None

        runs = wait_for(two_successes, timeout=30, what="two scheduled runs")
        assert runs[0]["output"] == "hi from embedded\n"
        [member] = client.get("/v1/members").json()  # one process: one member
        assert member["statusText"] == "alive"
        leader = client.get("/v1/leader").json()
        assert leader["Name"] == member["Name"]  # the leader is that member, as in Dkron
        assert client.get("/v1/isleader").json() == "I am a leader"
        ui = client.get("/ui/", follow_redirects=False)
        assert ui.status_code == 302 and "/ui/login/" in ui.headers["location"]
        assert httpx.get(f"{base}/ui/login/").status_code == 200
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        print(f"stopped in {time.monotonic() - started:.1f}s")
    assert code == 0, log.read_text()[-3000:]
    assert "Stopped." in log.read_text()
    # Ctrl-C hands the scheduler lease back: a restart leads at once, not after LEASE_TTL.
    with sqlite3.connect(tmp_path / "dkronweb.sqlite3") as db:
        assert db.execute("select holder from jobs_lease").fetchall() == [("",)]
