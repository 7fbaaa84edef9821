"""NATS test servers: the machine's nats-server on 4222, private nats-server instances (password,
permissions, max_payload), and a stand-in that never answers a flush.

Fixtures are named `*_fixture` and registered under the short name; tests/conftest.py loads
this module as a plugin (`pytest_plugins`), so tests ask for them by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.harness import reachable, require

LOCAL_URL = "nats://127.0.0.1:4222"
USER, PASSWORD = "u", "p"
PERMS_USER, PERMS_PASSWORD = "writer", "writer-pw"
MAX_PAYLOAD = 1024


def nats_server_binary() -> str | None:
    for candidate in ("/usr/sbin/nats-server", shutil.which("nats-server")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """A private nats-server on a free port (never the machine's shared one)."""

    def __init__(self, binary: str, log_dir: Path, *args: str, config: str = "") -> None:
        self.port = free_port()
        self.log_path = log_dir / f"nats-{self.port}.log"
        argv = [binary, "-a", "127.0.0.1", "-p", str(self.port), *args]
        if config:
            conf = log_dir / f"nats-{self.port}.conf"
            conf.write_text(config)
            argv += ["-c", str(conf)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not start: {self.log_path.read_text()}")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class NatsStandIn:
    """Speaks just enough NATS to be connected to, then fails the way no real server will.

    "no_pong": sends INFO, answers the connect handshake's PING, and never answers another
    (a flush that is never confirmed). "silent": accepts TCP and never sends INFO.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.received = bytearray()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = int(self._sock.getsockname()[1])
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for conn in self._conns:
            conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.mode == "silent":
                while conn.recv(4096):
                    pass
                return
            info = (
                b'INFO {"server_id":"stand-in","version":"2.9.0","proto":1,'
                b'"host":"127.0.0.1","port":%d,"max_payload":1048576}\r\n' % self.port
            )
            conn.sendall(info)
            answered = False
            while chunk := conn.recv(4096):
                self.received += chunk
                if not answered and b"PING\r\n" in self.received:
                    conn.sendall(b"PONG\r\n")
                    answered = True
        except OSError:
            return


def receive(url: str, subject: str, action: Callable[[], Any], **auth: Any) -> tuple[Any, Any]:
    """Subscribe on `subject`, run `action` in a thread, and return its result and the message
    that arrived (None if none did within 5 s)."""

    async def main() -> tuple[Any, Any]:
        client = await nats.connect(url, **auth)
        try:
            subscription = await client.subscribe(subject)
            await client.flush()
            result = await asyncio.to_thread(action)
            try:
                message = await subscription.next_msg(timeout=5)
            except nats.errors.TimeoutError:
                message = None
            return result, message
        finally:
            await client.close()

    return asyncio.run(main())


@pytest.fixture(scope="session", name="nats_local")
def nats_local_fixture() -> str:
    """The machine's NATS server (TESTING.md); never reconfigured by tests."""
    require(reachable("127.0.0.1", 4222), "NATS at 127.0.0.1:4222 is needed")
    return LOCAL_URL


@pytest.fixture(scope="session", name="nats_binary")
def nats_binary_fixture() -> str:
    binary = nats_server_binary()
    require(binary is not None, "nats-server (/usr/sbin/nats-server) is needed")
    assert binary is not None
    return binary


@pytest.fixture(scope="session", name="nats_logs")
def nats_logs_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nats")


@pytest.fixture(scope="session", name="nats_auth")
def nats_auth_fixture(nats_binary: str, nats_logs: Path) -> Iterator[NatsServer]:
    """A private server that requires user `u` with password `p`."""
    server = NatsServer(nats_binary, nats_logs, "--user", USER, "--pass", PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session", name="nats_jetstream")
def nats_jetstream_fixture(nats_binary: str, nats_logs: Path) -> Iterator[NatsServer]:
    """A private server with JetStream on (its store in the log folder)."""
    store = nats_logs / f"js-{uuid.uuid4().hex[:8]}"
    server = NatsServer(nats_binary, nats_logs, "-js", "-sd", str(store))
    yield server
    server.stop()


@pytest.fixture(scope="session", name="nats_limited")
def nats_limited_fixture(nats_binary: str, nats_logs: Path) -> Iterator[NatsServer]:
    """A private server whose user may not publish on forbidden.> and whose max_payload is 1 KiB."""
    config = f"""
max_payload: {MAX_PAYLOAD}
authorization {{
  users = [
    {{
      user: {PERMS_USER}, password: {PERMS_PASSWORD},
      permissions: {{publish: {{deny: ["forbidden.>"]}}}}
    }}
  ]
}}
"""
    server = NatsServer(nats_binary, nats_logs, config=config)
    yield server
    server.stop()


@pytest.fixture(name="nats_no_pong")
def nats_no_pong_fixture() -> Iterator[NatsStandIn]:
    stand_in = NatsStandIn("no_pong")
    yield stand_in
    stand_in.close()


@pytest.fixture(name="nats_silent")
def nats_silent_fixture() -> Iterator[NatsStandIn]:
    stand_in = NatsStandIn("silent")
    yield stand_in
    stand_in.close()
