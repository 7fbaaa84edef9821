"""The embedded web server (waitress) with a deadline for reading each request (slowloris).

waitress reads requests on its main loop and hands complete ones to its threads, so a slow
client holds no thread, only one of `connection_limit` connections. Its `channel_timeout`
counts inactivity, which a client sending a byte every few seconds resets forever: 101 such
clients held every connection and new requests waited without end. `DeadlineChannel` closes a
connection whose request headers are not complete HEADER_TIMEOUT seconds after its first byte,
or whose whole request is not read within READ_TIMEOUT seconds; idle connections are closed
after HEADER_TIMEOUT of silence (waitress' own `channel_timeout`).
"""

from __future__ import annotations

import time
from typing import Any

from waitress import create_server
from waitress.channel import HTTPChannel


class DeadlineChannel(HTTPChannel):
    header_timeout = 10.0
    read_timeout = 60.0
    _started: float | None = None

    def handle_read(self) -> None:
        now = time.monotonic()
        super().handle_read()
        request = self.request
        if request is None or request.completed:
            self._started = None  # between requests: waitress' idle timeout applies
            return
        if self._started is None:
            self._started = now
            return
        elapsed = now - self._started
        if elapsed > self.read_timeout or (
            not request.headers_finished and elapsed > self.header_timeout
        ):
            self.handle_close()


def make_server(
    application: Any,
    *,
    host: str,
    port: int,
    threads: int,
    header_timeout: float,
    read_timeout: float,
) -> Any:
    """A waitress server whose channels are DeadlineChannel with these timeouts."""
    channel = type(
        "Channel",
        (DeadlineChannel,),
        {"header_timeout": header_timeout, "read_timeout": read_timeout},
    )
    server = create_server(
        application,
        host=host,
        port=port,
        threads=threads,
        channel_timeout=max(1, int(header_timeout)),
        cleanup_interval=max(1, int(header_timeout / 2)),
    )
    server.channel_class = channel
    return server
