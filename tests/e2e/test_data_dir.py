"""`manage.py serve` in a fresh data directory leaves nothing other users can read: the SQLite
database and the -wal and -shm files SQLite adds while jobs run, the secret key, every directory
(issue 12, finding 4: a local user copied a 0644 database and read secrets and sessions)."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import free_port
from tests.harness import ROOT, wait_for

pytestmark = pytest.mark.e2e


def test_serve_creates_the_data_dir_and_every_file_in_it_owner_only(tmp_path: Path):
    data = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DKRON_")}
    env.update(DJANGO_SETTINGS_MODULE="dkronweb.settings", DKRON_DATA_DIR=str(data))
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        token = wait_for(
            lambda: re.search(r"API token:\s+(\S+)", log.read_text()), timeout=60, what="token"
        ).group(1)
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        )
        created = client.post(
            "/v1/jobs",
            json={
                "name": "secretive",
                "schedule": "@every 1s",
                "executor": "shell",
                "executor_config": {"command": "echo hi", "env": "DB_PASSWORD=hunter2-x"},
            },
        )
        assert created.status_code == 201, created.text
        wait_for(
            lambda: any(r["success"] for r in client.get("/v1/jobs/secretive/executions").json()),
            timeout=30,
            what="a successful run",
        )
        paths = [data, *(Path(d) / n for d, dirs, files in os.walk(data) for n in dirs + files)]
        names = {p.name for p in paths}
        assert {"dkronweb.sqlite3", "dkronweb.sqlite3-wal", "dkronweb.sqlite3-shm"} <= names
        assert "secret_key" in names
        loose = {
            str(p.relative_to(tmp_path)): f"{stat.S_IMODE(p.stat().st_mode):04o}"
            for p in paths
            if stat.S_IMODE(p.stat().st_mode) & 0o077
        }
        assert loose == {}
        assert "dkron.W003" not in log.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
