"""Slow clients cannot hold the web (issue 12, finding 9): a slowloris against `manage.py
serve`, and against the documented production web (nginx in front of gunicorn); a normal
request is still answered within a bound."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import free_port
from tests.harness import ROOT, reachable, require, wait_for

pytestmark = pytest.mark.e2e
HEADER_TIMEOUT = 2
SLOW_CLIENTS = 110  # more than waitress' connection_limit (100)


def slowloris(port: int, stop: threading.Event) -> list[socket.socket]:
    """Open SLOW_CLIENTS connections, each sending one more header line every second."""
    sockets = []
    for _ in range(SLOW_CLIENTS):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /health?scope=process HTTP/1.1\r\nHost: x\r\n")
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
        answer = httpx.get(
            f"http://127.0.0.1:{port}/health?scope=process", timeout=HEADER_TIMEOUT + 8
        )

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


def nginx_config(tmp_path: Path, port: int, upstream: int) -> Path:
    """docs/nginx.conf with this test's addresses and paths (nothing else changed)."""
    text = (ROOT / "docs" / "nginx.conf").read_text()
    text = text.replace("server web:8080;", f"server 127.0.0.1:{upstream};")
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    text = text.replace("/run/nginx-dkronweb.pid", str(tmp_path / "nginx.pid"))
    text = text.replace("/tmp/nginx-dkronweb-", str(tmp_path / "nginx-"))
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    return path


def test_nginx_in_front_of_gunicorn_answers_while_slow_clients_trickle_headers(tmp_path: Path):
    """The documented production web: gunicorn's sync workers behind docs/nginx.conf. Four
    slow clients straight at gunicorn held all its workers; through nginx they hold nothing."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        require(False, "nginx is not installed (apt-get install nginx-light)")
    web, front = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DKRON_")}
    env.update(
        DJANGO_SETTINGS_MODULE="dkronweb.settings",
        DKRON_DATA_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    gunicorn = Path(sys.executable).with_name("gunicorn")
    procs = [
        subprocess.Popen(
            [str(gunicorn), "dkronweb.wsgi", "-b", f"127.0.0.1:{web}", "-w", "2"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [nginx, "-c", str(nginx_config(tmp_path, front, web)), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    stop = threading.Event()
    sockets: list[socket.socket] = []
    base = f"http://127.0.0.1:{front}"
    try:
        wait_for(
            lambda: (
                reachable("127.0.0.1", front)
                and httpx.get(f"{base}/health?scope=process").status_code
            ),
            timeout=60,
            what="nginx and gunicorn",
        )
        sockets = slowloris(front, stop)
        time.sleep(2)

        answers = [
            httpx.get(f"{base}/health?scope=process", timeout=5).status_code for _ in range(5)
        ]

        assert answers == [200] * 5
    finally:
        stop.set()
        for s in sockets:
            s.close()
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
