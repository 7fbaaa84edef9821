"""A bounded, thread-safe output buffer that keeps the tail (Dkron keeps the last 256,000 bytes)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from confidential import redact

DEFAULT_LIMIT = 256_000


class OutputSink:
    """Ring buffer of bytes. Writers append; the agent snapshots it to show live output."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.truncated = False
        self.version = 0  # bumps on every write so the agent only flushes when it changed
        self._hidden: tuple[str, ...] = ()

    def hide(self, secrets: Iterable[str]) -> None:
        """Show these values (the job's secrets) as the mask in `text()`: a command that
        echoes its password does not store it in the execution record."""
        self._hidden = tuple(secrets)

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        if not data:
            return
        with self._lock:
            self._buf += data
            overflow = len(self._buf) - self.limit
            if overflow > 0:
                del self._buf[:overflow]
                self.truncated = True
            self.version += 1

    def getvalue(self) -> bytes:
        with self._lock:
            return bytes(self._buf)

    def text(self) -> str:
        """The output as stored and shown: decoded, the hidden values masked."""
        text = self.getvalue().decode("utf-8", "replace")
        return redact(text, self._hidden) if self._hidden else text
