"""Small real servers the processor tests send to: a Fluent forward endpoint and syslog sockets."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from tests.harness import wait_for


def _event_time(code: int, data: bytes) -> Any:
    if code == 0:  # Fluent's EventTime: seconds and nanoseconds, big-endian uint32 each
        seconds, nanos = struct.unpack(">II", data)
        return seconds + nanos / 1e9
    return msgpack.ExtType(code, data)


class ForwardServer:
    """A Fluent forward-protocol endpoint over TCP: decodes each message-mode event
    `[tag, time, record]` with msgpack and keeps it in `events`."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.events: list[list[Any]] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        unpacker = msgpack.Unpacker(raw=False, ext_hook=_event_time)
        with conn:
            while data := conn.recv(65536):
                unpacker.feed(data)
                self.events.extend(unpacker)

    def wait_for_events(self, n: int = 1) -> list[list[Any]]:
        return wait_for(
            lambda: self.events if len(self.events) >= n else None,
            timeout=10,
            what=f"{n} fluent event(s)",
        )

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def forward_server() -> Iterator[ForwardServer]:
    server = ForwardServer()
    try:
        yield server
    finally:
        server.close()


def receive_all(sock: socket.socket, *, until: bytes) -> list[bytes]:
    """Datagrams until one contains `until` (the processor's end marker)."""
    sock.settimeout(10)
    messages: list[bytes] = []
    while True:
        data = sock.recv(65536)
        messages.append(data)
        if until in data:
            return messages


@contextlib.contextmanager
def udp_syslog() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


@contextlib.contextmanager
def unix_syslog(path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield sock
    finally:
        sock.close()
