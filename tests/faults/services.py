"""The fault tests' services on private PostgreSQL and Redis servers, and a cluster on them.

The servers themselves (PostgresServer, RedisServer, Db) are bench/servers.py's, shared with
the fault checker (bench/chaos.py): the fault tests stop, kill and restart them, so they never
touch the machine's shared PostgreSQL (5432) or Redis (6379).

The test process reads the private database with plain psycopg (Db: a fresh connection per
query, so a restart never leaves it holding a dead one) and changes jobs through the REST API of
a real web process (`manage.py serve --no-agent --no-scheduler`), as a Dkron client would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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

from bench.procs import agent_args, free_port, scheduler_args, stop_together
from bench.servers import Db, PostgresServer, RedisServer, listening, postgres_bin_dir_or_raise
from bench.servers import postgres_bin_dir as postgres_bin_dir  # re-exported (tests/bench)
from tests.harness import ROOT, Proc, wait_for

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
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
        args = agent_args(name, *tags, pool=pool, concurrency=concurrency)
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
        proc = Proc(name, scheduler_args(name), self.services.env(**env), self.log_dir)
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
        # All at once (their warm shutdowns overlap), resumed first: a test may leave one
        # stopped. stop() kills whatever a process's pool left behind in its group.
        stop_together(reversed(self.procs), timeout=10, resume=True)
        self.procs.clear()


@contextlib.contextmanager
def private_services(log_dir: Path) -> Iterator[Services]:
    """Start PostgreSQL (initdb, migrate) and Redis on free ports; remove everything after."""
    bin_dir = postgres_bin_dir_or_raise()
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


def leader_pid(services: Services) -> int | None:
    """The pid of the scheduler holding the unexpired leader lease, if any."""
    holder = services.db.value(
        "SELECT holder FROM jobs_lease WHERE name = 'scheduler' AND expires_at > now()"
    )
    return int(holder.split(":")[1]) if holder else None


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
