"""Child processes: each in its own process group, with a log file; and the waits on them.

Shared by the benchmark, the soak, the fault checker and the test suite's real-process tests
(tests/harness.py, tests/faults): the tests import from here, never the other way round (an
import-linter contract in pyproject.toml). Nothing here imports Django: every role (web,
scheduler, agents, the baseline's worker and beat) is started as a subprocess with an explicit
environment.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent


class Proc:
    """A child process in its own session, so stopping it also stops its pool children.

    Its output (stdout and stderr) goes to `<log_dir>/<name>.log`, kept for assertions.
    """

    stop_timeout = 8.0  # s stop() waits after SIGTERM before it kills the group

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

    def signal(self, sig: int) -> None:
        """Send `sig` to the process itself (not its group), if it still runs."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM: Celery's warm shutdown, gunicorn's graceful stop)."""
        self.signal(signal.SIGTERM)

    def kill_group(self) -> None:
        """SIGKILL the whole group and reap the process (the log stays open)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the whole group at once, and close the log."""
        self.stop(timeout=0)

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, up to `timeout` s (default `stop_timeout`) to exit, then SIGKILL to
        whatever is left in the group (prefork children, a stuck parent); closes the log."""
        timeout = self.stop_timeout if timeout is None else timeout
        if timeout > 0:
            self.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        if not self._log.closed:
            self._log.close()


def stop_together(
    procs: Iterable[Proc], timeout: float | None = None, resume: bool = False
) -> None:
    """Stop these processes at once: SIGTERM to each first (their shutdowns overlap), then
    wait for each in turn. `resume`: SIGCONT each group first (a fault may have left it
    stopped, and a stopped process never sees its SIGTERM)."""
    procs = list(procs)
    for proc in procs:
        if resume:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGCONT)
        proc.terminate()
    for proc in procs:
        proc.stop(timeout=timeout)


class WaitTimeout(TimeoutError, AssertionError):
    """A wait_for that ran out of time: a TimeoutError for the benchmark's callers, and an
    AssertionError, i.e. a plain test failure, for the tests'."""


def wait_for(
    cond: Callable[[], Any],
    *,
    timeout: float = 20.0,
    interval: float = 0.1,
    what: str = "condition",
    procs: Iterable[Proc] = (),
) -> Any:
    """Poll until `cond()` is truthy and return its value; raise WaitTimeout after the
    deadline, or RuntimeError (Proc.check) as soon as one of `procs` has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        for proc in procs:
            proc.check()
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def wait_draining(
    left: Callable[[], int],
    *,
    window: float,
    cap: float = math.inf,
    interval: float = 0.5,
    each: Callable[[], None] | None = None,
) -> int:
    """Wait while `left()` (what is still queued, running or unfinished) keeps falling.

    A backlog is not stuck: this returns when `left()` is 0, when it has not fallen for
    `window` seconds, or after `cap` seconds in all; `each` runs every `interval` (a check
    that the cluster is alive). Returns the lowest count seen (0: drained)."""
    started = time.monotonic()
    best, progressed = left(), time.monotonic()
    while best and time.monotonic() - progressed < window:
        if time.monotonic() - started > cap:
            break
        time.sleep(interval)
        if each is not None:
            each()
        now = left()
        if now < best:
            best, progressed = now, time.monotonic()
    return best


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
    """A TCP port free on loopback right now (the OS's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python() -> str:
    return sys.executable


def agent_args(name: str, *tags: str, pool: str = "threads", concurrency: int = 4) -> list[str]:
    """`manage.py agent` under its node name, with its pool and tags."""
    args = [python(), "manage.py", "agent", "--node-name", name, "--pool", pool]
    args += ["-c", str(concurrency), "-l", "INFO"]
    for tag in tags:
        args += ["--tag", tag]
    return args


def scheduler_args(name: str) -> list[str]:
    """`manage.py scheduler` under its member name (two on one host need two)."""
    return [python(), "manage.py", "scheduler", "-l", "INFO", "--node-name", name]


def venv_bin(name: str) -> str:
    """A console script installed beside the running interpreter (the venv's bin)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name
