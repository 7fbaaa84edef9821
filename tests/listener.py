"""A raw TCP or UDP socket on 127.0.0.1 that records whether anything reached it: the target
of the outbound guard's attack tests (a refused connection must leave it empty)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Listener:
    def __init__(self, kind: str = "tcp") -> None:
        self.udp = kind == "udp"
        self.sock = socket.socket(
            socket.AF_INET, socket.SOCK_DGRAM if self.udp else socket.SOCK_STREAM
        )
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[str] = []  # "connect" per TCP connection, the data of a datagram
        self.sock.settimeout(0.1)
        self._stop = threading.Event()
        if not self.udp:
            self.sock.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                if self.udp:
                    data, _ = self.sock.recvfrom(65536)
                    self.received.append(data.decode("utf-8", "replace"))
                else:
                    conn, _ = self.sock.accept()
                    self.received.append("connect")
                    conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@contextmanager
def listening(kind: str = "tcp") -> Iterator[Listener]:
    listener = Listener(kind)
    try:
        yield listener
    finally:
        listener.close()
