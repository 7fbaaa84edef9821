"""Private PostgreSQL and Redis servers for the fault tests, and a cluster that uses them.

The fault tests stop, kill and restart servers, so they never touch the machine's shared
PostgreSQL (5432) or Redis (6379): each session starts its own on free loopback ports, in a
temporary directory, and removes them afterwards. Both are restartable on the same port.

The test process reads the private database with plain psycopg (a fresh connection per query, so
a restart never leaves it holding a dead one) and changes jobs through the REST API of a real web
process (`manage.py serve --no-agent --no-scheduler`), as a Dkron client would.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from tests.harness import ROOT, Proc, wait_for

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
ADMIN_PASSWORD = "faults-admin-pass"

# Short timings for every process of the fault tests (seconds); the bounds derive from them.
HEARTBEAT_INTERVAL = 0.5
AGENT_DEAD_AFTER = 3.0
LEASE_TTL = 3.0
QUEUED_REPUBLISH_AFTER = 3.0
TIMINGS = {
    "DKRON_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
    "DKRON_AGENT_DEAD_AFTER": str(AGENT_DEAD_AFTER),
    "DKRON_LEASE_TTL": str(LEASE_TTL),
    "DKRON_QUEUED_REPUBLISH_AFTER": str(QUEUED_REPUBLISH_AFTER),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
            cur = conn.execute(sql, params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    def value(self, sql: str, *params: Any) -> Any:
        rows = self.rows(sql, *params)
        return next(iter(rows[0].values())) if rows else None

    def execute(self, sql: str, *params: Any) -> None:
        with psycopg.connect(self.url, connect_timeout=3) as conn:
            conn.execute(sql, params)  # type: ignore[arg-type]

    def executions(self, job: str) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM jobs_execution WHERE job_name = %s ORDER BY id", job)

    def active(self) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT id, job_name, node_name, status, attempt FROM jobs_execution "
            "WHERE status IN ('queued', 'running') ORDER BY id"
        )

    def running(self) -> list[dict[str, Any]]:
        return [r for r in self.active() if r["status"] == "running"]


class Api:
    """The /v1 API of the private web process, with HTTP Basic (what Dkron clients send)."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, auth=("admin", ADMIN_PASSWORD), timeout=30.0)

    def create_job(self, name: str, command: str, **fields: Any) -> dict[str, Any]:
        body = {
            "name": name,
            "schedule": fields.pop("schedule", "@manually"),
            "executor": "shell",
            "executor_config": {"command": command, "shell": "true"},
            **fields,
        }
        response = self.client.post("/v1/jobs", json=body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def run(self, name: str) -> None:
        response = self.client.post(f"/v1/jobs/{name}/run")
        assert response.status_code == 202, response.text

    def members(self) -> dict[str, dict[str, Any]]:
        return {m["Name"]: m for m in self.client.get("/v1/members").json()}


class Services:
    """The session's private servers and the web process that serves the API on them."""

    def __init__(
        self,
        workdir: Path,
        pg: PostgresServer,
        redis: RedisServer,
        broker_url: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.pg = pg
        self.redis = redis
        # None: the private Redis. An amqp:// URL (a RabbitMQ vhost, see use_broker) is the
        # machine's RabbitMQ, which these tests never stop or restart.
        self.broker_override = broker_url
        self.db = Db(pg.url())
        self.web: Proc | None = None
        self.web_port = free_port()
        self.api = Api(f"http://127.0.0.1:{self.web_port}")

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="dkronweb.settings_test",
            DKRON_DATABASE_URL=self.pg.url(),
            DKRON_BROKER_URL=self.broker_url,
            DKRON_DATA_DIR=str(self.workdir / "data"),
            DKRON_SECRET_KEY="fault-tests-secret-key",
            DKRON_ADMIN_PASSWORD=ADMIN_PASSWORD,
            PYTHONUNBUFFERED="1",
            **TIMINGS,
        )
        env.update(extra)
        return env

    @property
    def broker_url(self) -> str:
        return self.broker_override or self.redis.url()

    def use_broker(self, url: str | None, log_dir: Path) -> None:
        """Every process started from now on, the web process included, uses `url` (None: the
        private Redis again). The web process is restarted on it."""
        if url == self.broker_override:
            return
        if self.web is not None:
            self.web.stop()
        self.broker_override = url
        self.start_web(log_dir)

    def migrate(self) -> None:
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{done.stdout!r}\n{done.stderr!r}")

    def start_web(self, log_dir: Path) -> None:
        args = [sys.executable, "manage.py", "serve", "--no-agent", "--no-scheduler"]
        args += ["--port", str(self.web_port)]
        self.web = Proc("web", args, self.env(), log_dir)
        web = self.web

        def up() -> bool:
            if not web.alive():
                raise AssertionError(f"web exited:\n{web.log()[-3000:]}")
            return listening(self.web_port)

        wait_for(up, timeout=60, what="the web process")

    def ensure_up(self) -> None:
        """Start whatever a failed test left stopped."""
        self.redis.start()
        self.pg.start()

    def reset(self) -> None:
        """Forget the previous test's jobs, runs, agents, lease and queued messages."""
        self.db.execute(
            "TRUNCATE jobs_execution, jobs_run, jobs_job, jobs_agent, jobs_lease CASCADE"
        )
        self.redis.flushall()
        if self.broker_override:
            from tests.harness import reset_rabbitmq

            reset_rabbitmq(self.broker_override, ("dkron.default",))

    def close(self) -> None:
        if self.web is not None:
            self.web.stop()
        self.redis.stop()
        self.pg.stop()


class FaultCluster:
    """Agents and schedulers (real processes) on the private servers."""

    def __init__(self, services: Services, log_dir: Path) -> None:
        self.services = services
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    def agent(
        self,
        name: str,
        *tags: str,
        pool: str = "threads",
        concurrency: int = 2,
        wait: bool = True,
        **env: str,
    ) -> Proc:
        args = [sys.executable, "manage.py", "agent", "--node-name", name]
        args += ["--pool", pool, "-c", str(concurrency), "-l", "INFO"]
        for tag in tags:
            args += ["--tag", tag]
        proc = Proc(
            f"agent-{name}", args, self.services.env(DKRON_NODE_NAME=name, **env), self.log_dir
        )
        self.procs.append(proc)
        if wait:
            self.wait_registered(proc, name)
        return proc

    def wait_registered(self, proc: Proc, name: str, timeout: float = 60.0) -> None:
        db = self.services.db

        def registered() -> bool:
            if not proc.alive():
                raise AssertionError(f"agent {name} exited:\n{proc.log()[-3000:]}")
            row = db.rows('SELECT instance_id FROM jobs_agent WHERE name = %s AND NOT "left"', name)
            return bool(row and row[0]["instance_id"] and " ready." in proc.log())

        wait_for(registered, timeout=timeout, interval=0.2, what=f"agent {name} to register")

    def agents(self, *names: str, **kwargs: Any) -> list[Proc]:
        """Start several agents at once (their start-up overlaps), then wait for all."""
        procs = [self.agent(name, wait=False, **kwargs) for name in names]
        for proc, name in zip(procs, names, strict=True):
            self.wait_registered(proc, name)
        return procs

    def scheduler(self, name: str = "scheduler", **env: str) -> Proc:
        # Its member name in /v1/members and /v1/leader: two schedulers on one host need two.
        args = [sys.executable, "manage.py", "scheduler", "-l", "INFO", "--node-name", name]
        proc = Proc(name, args, self.services.env(**env), self.log_dir)
        self.procs.append(proc)
        return proc

    def wait_leader(self, proc: Proc, timeout: float = 60.0) -> None:
        def leads() -> bool:
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited:\n{proc.log()[-3000:]}")
            holder = self.services.db.value(
                "SELECT holder FROM jobs_lease WHERE name = 'scheduler' AND expires_at > now()"
            )
            return bool(holder and f":{proc.pid}:" in holder)

        wait_for(leads, timeout=timeout, interval=0.2, what=f"{proc.name} to lead")

    def stop_all(self) -> None:
        for proc in self.procs:  # all at once: their warm shutdowns overlap
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGCONT)  # a test may leave one stopped
                proc.signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            proc.stop(timeout=10)
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                proc.kill_group()  # and whatever its pool left behind
        self.procs.clear()


@contextlib.contextmanager
def private_services(log_dir: Path) -> Iterator[Services]:
    """Start PostgreSQL (initdb, migrate) and Redis on free ports; remove everything after."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not Path(REDIS_SERVER).exists():
        raise FileNotFoundError("PostgreSQL (initdb/postgres) or redis-server binaries")
    workdir = Path(tempfile.mkdtemp(prefix="dkfaults-"))
    workdir.chmod(0o755)  # postgres (another OS user) must reach its directory inside
    pg = PostgresServer(workdir, bin_dir)
    redis = RedisServer(workdir)
    services = Services(workdir, pg, redis)
    try:
        started = time.monotonic()
        pg.initdb()
        pg.start()
        pg.create_database()
        redis.start()
        services.migrate()
        services.start_web(log_dir)
        print(
            f"\nprivate services up in {time.monotonic() - started:.1f}s: "
            f"postgres :{pg.port}, redis :{redis.port}, web :{services.web_port} ({workdir})"
        )
        yield services
    finally:
        services.close()
        shutil.rmtree(workdir, ignore_errors=True)


def report(name: str, **numbers: Any) -> None:
    """Print `FAULT <name>: k=v ...` and append it as a JSON line to artifacts/report.jsonl."""
    shown = " ".join(
        f"{k}={v:.2f}s" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items()
    )
    print(f"FAULT {name}: {shown}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    line = {"fault": name, "at": datetime.now().astimezone().isoformat(), **numbers}
    with open(ARTIFACTS / "report.jsonl", "a") as fh:
        fh.write(json.dumps(line, default=str) + "\n")


# --- checks shared by the tests -------------------------------------------------------------


def drain(db: Db, timeout: float = 60.0) -> float:
    """Wait until no execution is queued or running; return how long it took.

    Called after the jobs were disabled: a tick that read them as due just before may still
    commit its fires a moment later, so wait out one tick (DKRON_TICK_MAX, 1 s) first, or the
    drain can pass before those executions exist.
    """
    time.sleep(1.5)
    started = time.monotonic()
    wait_for(lambda: not db.active(), timeout=timeout, interval=0.25, what="executions to drain")
    return time.monotonic() - started


def assert_nothing_running(db: Db) -> None:
    left = db.active()
    assert left == [], f"executions left active: {left}"


@dataclass
class FireCheck:
    """What a per-second job did over a test, counted from its side effects (lines written)."""

    job: str
    window: int  # fire times of the schedule between the first and the last one seen
    runs: int  # Run rows with a scheduled time
    effects: int  # lines the job appended (one per execution that ran)
    duplicated: int  # lines beyond the first for the same fire time
    lost: int  # fire times in the window with no line at all
    unexecuted: int  # Run rows with no line (a created run that never ran)
    stray: int  # lines with no Run row
    not_success: int  # Run rows without exactly one successful execution
    missed_count: int  # the misfires the job counted (misfire_policy skip / run_once)
    catchup: int  # runs started by the misfire policy (trigger catchup)

    def numbers(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "job"}


def check_fires(db: Db, job: str, effects_file: Path, every: float = 1.0) -> FireCheck:
    lines = effects_file.read_text().split() if effects_file.exists() else []
    seen = [datetime.fromisoformat(line) for line in lines]
    runs = db.rows(
        "SELECT r.id, r.scheduled_at, r.trigger, "
        "  (SELECT count(*) FROM jobs_execution e WHERE e.run_id = r.id) AS executions, "
        "  (SELECT count(*) FROM jobs_execution e "
        "    WHERE e.run_id = r.id AND e.status = 'success') AS successes "
        "FROM jobs_run r JOIN jobs_job j ON j.id = r.job_id "
        "WHERE j.name = %s AND r.scheduled_at IS NOT NULL ORDER BY r.scheduled_at",
        job,
    )
    run_times = {r["scheduled_at"] for r in runs}
    times = set(seen) | run_times
    window: set[datetime] = set()
    if times:
        first, last = min(times), max(times)
        steps = round((last - first).total_seconds() / every)
        window = {first + timedelta(seconds=every * k) for k in range(steps + 1)}
    return FireCheck(
        job=job,
        window=len(window),
        runs=len(runs),
        effects=len(seen),
        duplicated=len(seen) - len(set(seen)),
        lost=len(window - set(seen)),
        unexecuted=len(run_times - set(seen)),
        stray=len(set(seen) - run_times),
        not_success=sum(1 for r in runs if r["successes"] != 1 or r["executions"] != 1),
        missed_count=int(db.value("SELECT missed_count FROM jobs_job WHERE name = %s", job) or 0),
        catchup=sum(1 for r in runs if r["trigger"] == "catchup"),
    )


def total(checks: list[FireCheck], field_name: str) -> int:
    return sum(int(getattr(c, field_name)) for c in checks)
