"""Private PostgreSQL and Redis servers: started, stopped, killed and restarted at will.

The fault checker (bench/chaos.py) and the fault tests (tests/faults) stop, kill and restart
servers, so they never touch the machine's shared PostgreSQL (5432) or Redis (6379): each starts
its own on free loopback ports, in a temporary directory, and removes them afterwards. Both are
restartable on the same port.

The private database is read with plain psycopg (Db: a fresh connection per query, so a restart
never leaves it holding a dead one).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.procs import free_port, wait_for

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and postgres."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for path in reversed(found):
        if (path / "initdb").exists() and (path / "postgres").exists():
            return path
    return None


def _stop_popen(popen: subprocess.Popen[bytes], sig: int, timeout: float = 20.0) -> None:
    if popen.poll() is not None:
        return
    os.kill(popen.pid, sig)
    try:
        popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(popen.pid, signal.SIGKILL)
        popen.wait(timeout=10)


class _Server:
    """A private server process this test session starts, stops and restarts on one port."""

    popen: subprocess.Popen[bytes] | None
    stop_signal = signal.SIGTERM
    stop_timeout = 20.0

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.popen is not None:
            _stop_popen(self.popen, self.stop_signal, timeout=self.stop_timeout)
        self.popen = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class RedisServer(_Server):
    """`redis-server` on its own port with no persistence (as the spec assumes for Redis)."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        if self.running():
            return
        self.starts += 1
        log = open(self.dir / f"redis-{self.starts}.log", "wb")  # noqa: SIM115 - child owns it
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self.popen = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        wait_for(lambda: self._ping(), timeout=15, what=f"redis on port {self.port}")

    def _ping(self) -> bool:
        if not self.running():
            raise AssertionError(f"redis-server exited; see {self.dir}")
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def flushall(self) -> None:
        import redis

        redis.Redis(port=self.port, socket_timeout=5).flushall()


class PostgresServer(_Server):
    """A private PostgreSQL cluster (initdb once), run as the `postgres` OS user.

    PostgreSQL refuses to run as root, so initdb and the server run as `postgres` in a
    temporary directory that user owns; the superuser inside is `root` with trust auth on
    loopback, like the shared test server. fsync is off: nothing here must survive a crash
    of the machine, only a restart of the server.
    """

    # Fast shutdown: clients are disconnected, open transactions rolled back.
    stop_signal = signal.SIGINT
    stop_timeout = 30.0

    def __init__(self, workdir: Path, bin_dir: Path, dbname: str = "dkfaults") -> None:
        self.bin = bin_dir
        self.dir = workdir / "pg"
        self.data = self.dir / "data"
        self.dbname = dbname
        self.port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dir, "postgres", "postgres")

    def url(self, dbname: str | None = None) -> str:
        return f"postgres://root@127.0.0.1:{self.port}/{dbname or self.dbname}"

    def _as_postgres(self) -> dict[str, Any]:
        return {"user": "postgres", "group": "postgres", "extra_groups": [], "cwd": self.dir}

    def initdb(self) -> None:
        env = {"PATH": os.environ.get("PATH", ""), "LANG": "C", "LC_ALL": "C"}
        args = [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "root"]
        args += ["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        done = subprocess.run(args, env=env, capture_output=True, **self._as_postgres())
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stdout!r} {done.stderr!r}")

    def start(self) -> None:
        if self.running():
            return
        self.starts += 1
        log = open(self.dir / f"postgres-{self.starts}.log", "wb")  # noqa: SIM115
        args = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        for opt in (
            "listen_addresses=127.0.0.1",
            f"unix_socket_directories={self.dir}",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=200",
            "shared_buffers=32MB",
        ):
            args += ["-c", opt]
        env = {"PATH": os.environ.get("PATH", ""), "LANG": "C", "LC_ALL": "C"}
        self.popen = subprocess.Popen(
            args,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self._as_postgres(),
        )
        log.close()
        wait_for(self._ready, timeout=30, what=f"postgres on port {self.port}")

    def _ready(self) -> bool:
        if not self.running():
            raise AssertionError(f"postgres exited; see {self.dir}")
        try:
            psycopg.connect(self.url("postgres"), connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def create_database(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')


class Db:
    """Plain SQL on the private database; one short connection per call survives restarts."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.url, connect_timeout=3, row_factory=dict_row) as conn:
            cur = conn.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def value(self, sql: str, *params: Any) -> Any:
        rows = self.rows(sql, *params)
        return next(iter(rows[0].values())) if rows else None

    def execute(self, sql: str, *params: Any) -> None:
        with psycopg.connect(self.url, connect_timeout=3) as conn:
            conn.execute(sql, params)

    def executions(self, job: str) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM jobs_execution WHERE job_name = %s ORDER BY id", job)

    def active(self) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT id, job_name, node_name, status, attempt FROM jobs_execution "
            "WHERE status IN ('queued', 'running') ORDER BY id"
        )

    def running(self) -> list[dict[str, Any]]:
        return [r for r in self.active() if r["status"] == "running"]


def postgres_bin_dir_or_raise() -> Path:
    """The PostgreSQL binaries' directory; FileNotFoundError when it or redis-server is missing."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not Path(REDIS_SERVER).exists():
        raise FileNotFoundError("PostgreSQL (initdb/postgres) or redis-server binaries")
    return bin_dir
