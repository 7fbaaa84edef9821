"""The agent's reaper: a small helper process that outlives a killed agent by a moment.

The agent's main process starts it (`python -m agent.reaper`) from its main thread with a
parent-death signal, in a session of its own (a `kill -9` of the agent's process group does not
reach it), and tells it over a pipe the pids of its pool children every heartbeat. It waits.

- On a clean stop the agent writes `stop` and the reaper exits quietly.
- When the agent dies any other way (kill -9, OOM killer, a crash), the reaper, within a poll
  interval: kills the job processes of that agent instance (found by DKRON_AGENT_ID in their
  environment, so double-forked and re-parented ones too) and the pool children it last saw;
  closes the agent's running executions as failed with a reason that says so (retries as
  usual); and marks the agent dead at once, so no placement picks it and the scheduler's sweep
  moves its queued work on its next pass instead of after AGENT_DEAD_AFTER.

A reaper killed together with its agent changes nothing: the agent is then found dead by its
heartbeat, and a restarted agent of the same name reaps what is left (executors.shell).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

log = logging.getLogger("dkronweb.reaper")

POLL = 0.2  # seconds between checks that the agent still lives


class ReaperHandle:
    """The agent's end: the reaper process and the pipe to it."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self._lock = threading.Lock()

    def _send(self, line: str) -> None:
        stdin = self.popen.stdin
        if stdin is None:
            return
        with self._lock, contextlib.suppress(OSError, ValueError):
            stdin.write(line.encode() + b"\n")
            stdin.flush()

    def tell_pids(self) -> None:
        """The agent's child processes now (pool children, direct job children)."""
        import psutil

        try:
            children = psutil.Process().children()
        except psutil.Error:
            return
        stamps = []
        for child in children:
            if child.pid == self.popen.pid:
                continue
            with contextlib.suppress(psutil.Error):
                stamps.append(f"{child.pid}@{child.create_time():.2f}")
        self._send("pids " + " ".join(stamps))

    def stop(self) -> None:
        """A clean stop: the reaper exits without touching anything."""
        self._send("stop")
        with contextlib.suppress(OSError, ValueError):
            if self.popen.stdin is not None:
                self.popen.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)


def _pdeathsig() -> None:
    from executors.shell import _PR_SET_PDEATHSIG, _prctl

    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def start(ident: Any) -> ReaperHandle:
    """Start the reaper of this agent instance (call from the main thread)."""
    from django.conf import settings

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DKRON_AGENT_ID", "DKRON_AGENT_NAME", "DKRON_SPAWNER")
    }
    argv = [sys.executable, "-m", "agent.reaper", str(os.getpid()), ident.name, ident.instance_id]
    popen = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        cwd=str(settings.BASE_DIR),
        env=env,
        start_new_session=True,  # a kill of the agent's process group must not take it too
        preexec_fn=_pdeathsig,
    )
    log.info("agent %s: reaper started (pid %d)", ident.name, popen.pid)
    return ReaperHandle(popen)


# --- the reaper process ---------------------------------------------------------------------


def _wait_for_death(agent_pid: int, stdin: IO[bytes]) -> tuple[bool, list[str]]:
    """Block until the agent stops cleanly (False) or dies (True); the last pids it sent."""
    # The parent-death signal only wakes this loop: Linux sends it when the *thread* that
    # started the reaper ends, so the agent is dead only once this process was re-parented.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pids: list[str] = []
    buffer = b""
    fd = stdin.fileno()
    eof = False
    while True:
        if os.getppid() != agent_pid:
            return True, pids
        if eof:
            time.sleep(POLL)
            continue
        with contextlib.suppress(InterruptedError):
            ready, _, _ = select.select([fd], [], [], POLL)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                eof = True  # the pipe closed: the agent is gone (or exits right now)
                continue
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace").strip()
                if line == "stop":
                    return False, pids
                if line.startswith("pids"):
                    pids = line.split()[1:]


def _kill_stamped(stamps: list[str]) -> list[int]:
    import psutil

    killed = []
    for stamp in stamps:
        pid_text, _, started = stamp.partition("@")
        with contextlib.suppress(ValueError, psutil.Error):
            proc = psutil.Process(int(pid_text))
            if abs(proc.create_time() - float(started)) < 0.05:
                proc.kill()
                killed.append(proc.pid)
    return killed


def kill_left(*, instance_id: str, pool_pids: list[str]) -> list[int]:
    """Kill the pool children last seen and every job process of the agent instance."""
    from executors.shell import kill_agent_processes

    return _kill_stamped(pool_pids) + kill_agent_processes(instance_id)


def reap(
    *, name: str, instance_id: str, killed: list[int], started: float
) -> tuple[list[int], int]:
    """Record the death of the agent instance (after kill_left). Returns (killed, closed)."""
    closed = _record(name=name, instance_id=instance_id, killed=len(killed))
    log.warning(
        "agent %s (instance %s) died: killed %d process(es) it left, closed %d running "
        "execution(s), marked it dead (%.2fs)",
        name,
        instance_id,
        len(killed),
        closed,
        time.monotonic() - started,
    )
    return killed, closed


def _record(*, name: str, instance_id: str, killed: int) -> int:
    from agent.runner import with_db_retry
    from jobs import dispatch, timeutil
    from jobs.models import Agent, Execution, ExecutionStatus
    from jobs.services.agents import agent_died
    from jobs.services.executions import execution_finish

    def record() -> int:
        if not Agent.objects.filter(name=name, instance_id=instance_id).exists():
            return 0  # a new instance of that name took over: it cleans up (restart)
        agent_died(name=name, instance_id=instance_id)
        now = timeutil.now()
        closed = 0
        rows = Execution.objects.filter(node_name=name, status=ExecutionStatus.RUNNING)
        for pk, output in rows.values_list("pk", "output"):
            line = (
                f"agent {name} died while running this execution; its reaper killed the "
                f"job's processes ({killed} process(es) of that agent)"
            )
            text = output or ""
            retry = execution_finish(
                execution_id=pk,
                status=ExecutionStatus.FAILED,
                output=f"{line}\n{text}" if text else f"{line}\n",
                reason=f"agent {name} died; its job processes were killed",
            )
            closed += 1
            if retry is not None:
                delay = max(0.0, ((retry.not_before or now) - now).total_seconds())
                dispatch.publish_on_commit(retry, countdown=delay)
        return closed

    return with_db_retry(record, what="recording the agent's death", deadline=60.0)


def main(argv: list[str]) -> int:
    agent_pid, name, instance_id = int(argv[0]), argv[1], argv[2]
    if os.getppid() != agent_pid:  # died before the death signal was armed
        died, pids = True, list[str]()
    else:
        died, pids = _wait_for_death(agent_pid, sys.stdin.buffer)
    if not died:
        return 0
    started = time.monotonic()
    # Processes first (psutil only), the database after Django is set up.
    killed = kill_left(instance_id=instance_id, pool_pids=pids)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dkronweb.settings")
    import django

    django.setup()
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s: %(levelname)s/reaper] %(message)s"
    )
    reap(name=name, instance_id=instance_id, killed=killed, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
