"""Child processes of the benchmark: each in its own process group, with a log file.

Nothing here imports Django: the runner starts every role (web, scheduler, agents, the
baseline's worker and beat) as a subprocess with an explicit environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent


class Proc:
    """A child process in its own session, so stopping it also stops its pool children."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def rss(self) -> int:
        """Resident memory of the process itself (bytes)."""
        return int(self.ps.memory_info().rss)

    def tree_rss(self) -> int:
        total = self.rss()
        for child in self.ps.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += int(child.memory_info().rss)
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process itself."""
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode}; log tail:\n{self.log()[-3000:]}"
            )

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM: Celery's warm shutdown, gunicorn's graceful stop)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the whole group at once."""
        self.stop(timeout=0)

    def stop(self, timeout: float = 8.0) -> None:
        if timeout > 0:
            self.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        # Whatever is left in the group (prefork children, a stuck parent) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        if not self._log.closed:
            self._log.close()


def wait_for(
    cond: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
    procs: list[Proc] | None = None,
) -> Any:
    """Poll until `cond()` is truthy; raise after the deadline or if a watched process died."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        for proc in procs or ():
            proc.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_idle(proc: Proc, *, timeout: float, cpu_below: float = 0.15, window: float = 0.5) -> float:
    """Wait until the process uses less than `cpu_below` of a core over `window` seconds.

    Used to know that a beat process has finished loading its schedule. Returns the seconds
    waited.
    """
    started = time.monotonic()
    last = proc.cpu_seconds()
    while time.monotonic() - started < timeout:
        time.sleep(window)
        proc.check()
        now = proc.cpu_seconds()
        if now - last < cpu_below * window:
            return time.monotonic() - started
        last = now
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python() -> str:
    return sys.executable


def venv_bin(name: str) -> str:
    """A console script installed beside the running interpreter (the venv's bin)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name
