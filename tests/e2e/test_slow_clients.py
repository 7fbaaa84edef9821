"""Slow clients cannot hold the embedded server (issue 12, finding 9): a slowloris against
`manage.py serve`, then a normal request is still answered within the header timeout + slack."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_embedded import free_port
from tests.harness import ROOT, wait_for

pytestmark = pytest.mark.e2e
HEADER_TIMEOUT = 2
SLOW_CLIENTS = 110  # more than waitress' connection_limit (100)


def slowloris(port: int, stop: threading.Event) -> list[socket.socket]:
    """Open SLOW_CLIENTS connections, each sending one more header line every second."""
    sockets = []
    for _ in range(SLOW_CLIENTS):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        sockets.append(s)

    def trickle() -> None:
        deadline = time.monotonic() + 30  # bounded: the attack stops by itself
        while not stop.is_set() and time.monotonic() < deadline:
            for s in sockets:
                with contextlib.suppress(OSError):  # closed by the server: what we want
                    s.sendall(b"X-Slow: 1\r\n")
            stop.wait(1)

    threading.Thread(target=trickle, daemon=True).start()
    return sockets


def test_a_normal_request_is_answered_while_slow_clients_trickle_headers(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DKRON_")}
    env.update(
        DJANGO_SETTINGS_MODULE="dkronweb.settings",
        DKRON_DATA_DIR=str(tmp_path),
        DKRON_WEB_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "serve",
                "--port",
                str(port),
                "--no-agent",
                "--no-scheduler",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stop = threading.Event()
    sockets: list[socket.socket] = []
    try:
        wait_for(lambda: re.search(r"Press Ctrl-C", log.read_text()), timeout=60, what="serve")
        sockets = slowloris(port, stop)
        time.sleep(1)

        # Bound: the slow connections are closed HEADER_TIMEOUT after their first byte, at
        # their next line (1 s later); a few seconds of slack on top for a loaded machine.
        answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=HEADER_TIMEOUT + 8)

        assert answer.status_code == 200
    finally:
        stop.set()
        for s in sockets:
            s.close()
        proc.send_signal(2)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
