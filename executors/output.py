"""A bounded, thread-safe output buffer that keeps the tail (Dkron keeps the last 256,000 bytes)."""

from __future__ import annotations

import threading

DEFAULT_LIMIT = 256_000


class OutputSink:
    """Ring buffer of bytes. Writers append; the agent snapshots it to show live output."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.truncated = False
        self.version = 0  # bumps on every write so the agent only flushes when it changed

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
        return self.getvalue().decode("utf-8", "replace")
