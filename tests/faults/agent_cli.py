"""Helpers of the agent lifecycle tests: real `celery worker` agents and the real Celery CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any

import psutil

from tests.faults.services import FaultCluster, Services
from tests.harness import ROOT, Proc

HOST = socket.gethostname()


def celery_worker(
    faults: FaultCluster,
    name: str,
    *extra: str,
    pool: str = "threads",
    concurrency: int = 2,
    wait: bool = True,
    **env: str,
) -> Proc:
    """`celery -A dkronweb worker --node-name <name>` as the docs give it (no `-n`)."""
    args = [sys.executable, "-m", "celery", "-A", "dkronweb", "worker", "--node-name", name]
    args += ["--pool", pool, "-c", str(concurrency), "-l", "INFO", "--without-mingle"]
    args += ["--without-gossip", *extra]
    proc = Proc(f"worker-{name}", args, faults.services.env(**env), faults.log_dir)
    faults.procs.append(proc)
    if wait:
        faults.wait_registered(proc, name)
    return proc


def celery_cli(services: Services, *args: str, timeout: float = 30.0) -> str:
    """Run `celery -A dkronweb <args>` against the private broker; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "dkronweb", *args],
        cwd=ROOT,
        env=services.env(),
        capture_output=True,
        timeout=timeout,
        text=True,
    )
    return done.stdout + done.stderr


def inspect_json(services: Services, what: str, node: str) -> dict[str, Any]:
    out = celery_cli(services, "inspect", what, "-d", node, "--json", "-t", "5")
    start = out.find("{")
    data: dict[str, Any] = json.loads(out[start : out.rfind("}") + 1]) if start >= 0 else {}
    return data


def job_processes(execution_id: int) -> list[psutil.Process]:
    """Live processes of one execution (by the environment the shell executor gives them)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("DKRON_EXECUTION_ID") == str(execution_id):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found
