"""`python -m bench.chaos --duration 20m --seed N`: a fault checker in the style of Jepsen's
Chronos test. A real cluster runs per-second jobs whose runs record side effects while a nemesis
applies random faults on a seeded schedule; at the end every expected fire must be matched by
exactly one run that started within a stated bound after its scheduled time.

The cluster (all separate processes, production settings `dkronweb.settings`, short timings):
a private PostgreSQL and a private Redis (the broker) on free ports (bench/servers.py:
restartable, stoppable, nobody else's), gunicorn `dkronweb.wsgi` (2 sync workers), two
schedulers (`s1`, `s2`) and three agents (`a1` tag grp=x, `a2` grp=x alt=y, `a3` alt=y).

Jobs (created through the REST API): `@every 1s` .. `@every 5s` shell jobs, some untagged (one
agent per fire), some tagged to two agents (`grp: x:1`, `alt: y:1`), misfire_policy skip /
run_once / run_all, concurrency allow, retries 2. Each run appends `S <job> <scheduled at>
<execution id> <attempt> <start time>` to the job's side-effect file when it starts, sleeps
0.3 s (1.5 s for c2s-runall), and appends `D ...` (the same fields, the end time) when it ends.

Faults (one at a time, a recovery gap between two; each is printed with its time):
  sched-kill9   kill -9 of a scheduler (the leader 80% of the time), restarted 1-3 s later
  sched-term    SIGTERM of the leader; its exit must come within SIGTERM_EXIT s; restarted
  agent-kill9   kill -9 of an agent's main process, restarted under its name 1-3 s later
  agent-term    SIGTERM of an agent (warm shutdown), restarted under its name
  leader-stop   SIGSTOP of the leader for LEASE_TTL + 2..4 s, then SIGCONT
  redis-restart the broker down for 1-3 s (no persistence: queued messages are lost)
  pg-restart    PostgreSQL stopped (fast shutdown) for 1-3 s, then started
  pg-stall      every PostgreSQL process SIGSTOPped for 10-20 s (10-15 short), then SIGCONT
  clock-jump    a scheduler's clock (the leader's 80% of the time) steps 10-20 s forward for
                6-10 s, then back (libfaketime preloaded into the schedulers, its offset file
                rewritten; left out when libfaketime is not installed)

The check (after a quiet tail, the jobs disabled, the cluster drained):
- expected fires: per job, every time of its lattice (anchor + k * every) after its anchor up
  to the disable instant minus TAIL_SLACK; fires in the last TAIL_SLACK s may or may not have
  run (never twice).
- each expected fire: exactly one Run row with that scheduled time, at least one execution
  that started (an `S` line with that DKRON_SCHEDULED_AT) and exactly one that ended (`D`
  line) with a success recorded. No fault here lasts MISFIRE_GRACE (60 s), so every policy
  must run every fire (a late fire within the grace always runs); a misfire counted
  (missed_count) or a catch-up run is reported and fails the run.
- LOST: an expected fire with no run, or no `S` line, or no successful execution.
- DUPLICATE: a fire with more than one Run row, more than one `D` line, or more than one
  successful execution; a run with two `S` lines is allowed only when the first attempt was
  closed as failed (a retry after a kill, at least once) and never wrote its `D` line.
  Lines or runs of a time off the lattice count too.
- STUCK: an execution queued or running, or a run unfinished, after the drain (DRAIN s
  without progress).
- BOUND: the first `S` line of a fire at t must be written by deadline(t): t + BASE_BOUND, or
  for a fire in a fault's window the fault's deadline (see BOUNDS: max(start + a, end + b)),
  whichever is later. The lag figures (p50 / p99 / max) are given overall, for quiet fires
  and per fault kind.
- EARLY: a fire whose first `S` line is more than EARLY_SLACK s before its scheduled time.
- a SIGTERMed process that does not exit within SIGTERM_EXIT s is a failure (sigterm-exit).

It prints the seed first, the faults as applied, then the table, and exits 1 on any loss,
duplicate, stuck run, missed bound, early start, misfire or slow SIGTERM exit (2 when the
PostgreSQL or redis-server binaries are missing). Replay a run with the same `--seed` and
`--duration`: the same faults in the same order with the same lengths (the timing of a real
cluster differs, and "the leader" is whichever scheduler leads at that moment).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.procs import (
    ROOT,
    Proc,
    agent_args,
    free_port,
    python,
    scheduler_args,
    stop_together,
    venv_bin,
    wait_draining,
    wait_for,
)
from bench.report import percentile
from bench.servers import Db, PostgresServer, RedisServer, postgres_bin_dir_or_raise

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "chaos-admin-pass"

# Timings of every process (seconds); the bounds derive from them.
HEARTBEAT_INTERVAL = 0.5
AGENT_DEAD_AFTER = 3.0
LEASE_TTL = 3.0
QUEUED_REPUBLISH_AFTER = 3.0
MISFIRE_GRACE = 60.0
TIMINGS = {
    "DKRON_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
    "DKRON_AGENT_DEAD_AFTER": str(AGENT_DEAD_AFTER),
    "DKRON_LEASE_TTL": str(LEASE_TTL),
    "DKRON_QUEUED_REPUBLISH_AFTER": str(QUEUED_REPUBLISH_AFTER),
    "DKRON_MISFIRE_GRACE": str(MISFIRE_GRACE),
}
BASE_BOUND = 3.0  # s from the fire time to the job's start with no fault nearby
SIGTERM_EXIT = 10.0  # s a SIGTERMed scheduler or agent may take to exit
TAIL_SLACK = 3.0  # s before the disable whose fires may or may not have run
SLACK = 4.0  # s of process start-up and tick on a loaded machine, added to each fault bound
DRAIN = 45.0  # s without progress after which what is active is stuck

# Per fault kind: the deadline of a fire in its window is max(start + a, end + b), a and b in
# seconds. The windows: fires scheduled from BASE_BOUND before the fault starts to its deadline.
BOUNDS: dict[str, tuple[float, float, str]] = {
    "sched-kill9": (
        LEASE_TTL + SLACK,
        SLACK,
        "the standby takes the lease when it expires (LEASE_TTL), fires what is due",
    ),
    "sched-term": (
        LEASE_TTL + SLACK,
        SLACK,
        "the leader releases or lets the lease lapse; the standby fires from then on",
    ),
    "agent-kill9": (
        AGENT_DEAD_AFTER + QUEUED_REPUBLISH_AFTER + SLACK,
        SLACK,
        "the agent is dead after AGENT_DEAD_AFTER; its queued work moves, running is retried",
    ),
    "agent-term": (
        QUEUED_REPUBLISH_AFTER + SLACK,
        SLACK,
        "a leaving agent finishes what runs; its queued work moves to the others",
    ),
    "leader-stop": (
        LEASE_TTL + SLACK,
        SLACK,
        "the standby takes over after LEASE_TTL; the resumed leader is fenced (no double fire)",
    ),
    "redis-restart": (
        0.0,
        QUEUED_REPUBLISH_AFTER + SLACK + 4.0,
        "queued messages lost with the broker are republished after QUEUED_REPUBLISH_AFTER",
    ),
    "pg-restart": (
        0.0,
        LEASE_TTL + SLACK,
        "every process reconnects; the leader re-takes the lease and fires what is due",
    ),
    "pg-stall": (
        0.0,
        LEASE_TTL + SLACK,
        "nothing commits during the stall; after it, every due fire runs once",
    ),
    "clock-jump": (
        0.0,
        LEASE_TTL + SLACK,
        "a scheduler's clock steps forward, then back: nothing fires early, twice or late",
    ),
}
LIBFAKETIME = next(
    (
        p
        for p in (
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/faketime/libfaketime.so.1",
        )
        if Path(p).exists()
    ),
    None,
)
KINDS = [k for k in BOUNDS if k != "clock-jump" or LIBFAKETIME]
EARLY_SLACK = 0.5  # s: a run may not start more than this before its scheduled time


@dataclass(frozen=True)
class JobSpec:
    name: str
    every: int
    policy: str
    tags: dict[str, str]
    sleep: float = 0.3  # s between its start line and its end line


JOBS = [
    JobSpec("c1s-skip", 1, "skip", {}),
    JobSpec("c1s-runall-x", 1, "run_all", {"grp": "x:1"}),
    JobSpec("c2s-runall", 2, "run_all", {}, sleep=1.5),  # often in flight when a fault hits
    JobSpec("c2s-skip-y", 2, "skip", {"alt": "y:1"}),
    JobSpec("c3s-runonce", 3, "run_once", {}),
    JobSpec("c5s-runonce-y", 5, "run_once", {"alt": "y:1"}),
]
AGENTS = {"a1": ["grp=x"], "a2": ["grp=x", "alt=y"], "a3": ["alt=y"]}
SCHEDULERS = ["s1", "s2"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: use e.g. 150s, 20m, 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


@dataclass
class Fault:
    kind: str
    target: str
    start: float  # epoch seconds
    end: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def deadline(self) -> float:
        a, b, _ = BOUNDS[self.kind]
        return max(self.start + a, self.end + b)

    def covers(self, t: float) -> bool:
        return self.start - BASE_BOUND <= t <= self.deadline


class Chaos:
    def __init__(self, workdir: Path, seed: int, verbose: bool = True) -> None:
        self.workdir = workdir
        self.rng = random.Random(seed)
        self.seed = seed
        self.verbose = verbose
        self.t0 = time.monotonic()
        self.log_dir = workdir / "logs"
        self.effects = workdir / "effects"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.effects.mkdir(parents=True, exist_ok=True)
        bin_dir = postgres_bin_dir_or_raise()
        self.pg = PostgresServer(workdir, bin_dir, dbname="dkchaos")
        self.redis = RedisServer(workdir)
        self.db = Db(self.pg.url())
        self.web_port = free_port()
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{self.web_port}", auth=("admin", PASSWORD), timeout=30
        )
        self.procs: dict[str, Proc] = {}
        self.starts: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.failures: list[str] = []  # of the faults themselves (a slow SIGTERM exit)

    def say(self, message: str) -> None:
        if self.verbose:
            print(f"[{time.monotonic() - self.t0:7.1f}s] {message}", file=sys.stderr, flush=True)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DKRON_", "DJANGO_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="dkronweb.settings",
            DKRON_ENV="production",
            DKRON_DATABASE_URL=self.pg.url(),
            DKRON_BROKER_URL=self.redis.url(),
            DKRON_SECRET_KEY="dkchaos-not-a-secret-" + "k" * 40,
            DKRON_DATA_DIR=str(self.workdir / "data"),
            DKRON_ALLOWED_HOSTS="127.0.0.1,localhost",
            DKRON_SECURE_COOKIES="false",
            DKRON_HSTS_SECONDS="0",
            DKRON_UNTAGGED_TARGET="one",
            DKRON_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            **TIMINGS,
        )
        env.update(extra)
        return env

    # --- processes ---------------------------------------------------------------------------

    def start(self, name: str, args: list[str], **env: str) -> Proc:
        self.starts[name] += 1
        proc = Proc(f"{name}-{self.starts[name]}", args, self.env(**env), self.log_dir)
        self.procs[name] = proc
        return proc

    def clock_file(self, name: str) -> Path:
        return self.workdir / f"clock-{name}"

    def start_scheduler(self, name: str) -> Proc:
        args = scheduler_args(name)
        if not LIBFAKETIME:
            return self.start(name, args)
        # libfaketime re-reads the offset file on every clock call (FAKETIME_NO_CACHE): the
        # nemesis steps this process's clock (wall and monotonic) by writing it. With
        # FAKETIME_DONT_FAKE_MONOTONIC=1, Debian's 0.9.10 fails Python's time.sleep (EINVAL).
        self.clock_file(name).write_text("+0\n")
        return self.start(
            name,
            args,
            LD_PRELOAD=LIBFAKETIME,
            FAKETIME_TIMESTAMP_FILE=str(self.clock_file(name)),
            FAKETIME_NO_CACHE="1",
        )

    def start_agent(self, name: str, wait: bool = True) -> Proc:
        args = agent_args(name, *AGENTS[name], pool="threads", concurrency=4)
        proc = self.start(name, args, DKRON_NODE_NAME=name)
        if wait:
            self.wait_agent(name, proc)
        return proc

    def wait_agent(self, name: str, proc: Proc, timeout: float = 90.0) -> None:
        def registered() -> bool:
            proc.check()
            with contextlib.suppress(Exception):
                row = self.db.rows(
                    'SELECT instance_id FROM jobs_agent WHERE name = %s AND NOT "left"', name
                )
                return bool(row and row[0]["instance_id"] and " ready." in proc.log())
            return False

        wait_for(registered, timeout=timeout, interval=0.3, what=f"agent {name} to register")

    def leader(self) -> str | None:
        """The scheduler (s1/s2) whose pid is in the live lease, if any."""
        with contextlib.suppress(Exception):
            holder = self.db.value(
                "SELECT holder FROM jobs_lease WHERE name = 'scheduler' AND expires_at > now()"
            )
            for name in SCHEDULERS:
                proc = self.procs.get(name)
                if holder and proc and f":{proc.pid}:" in holder:
                    return name
        return None

    def manage(self, *args: str) -> None:
        done = subprocess.run(
            [python(), "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout!r}\n{done.stderr!r}")

    def up(self) -> None:
        self.workdir.chmod(0o755)
        self.pg.initdb()
        self.pg.start()
        self.pg.create_database()
        self.redis.start()
        self.manage("migrate", "--no-input", "-v", "0")
        create = (
            "from django.contrib.auth import get_user_model as g; "
            f"g().objects.create_superuser('admin', '', {PASSWORD!r})"
        )
        self.manage("shell", "-c", create)
        gunicorn = [venv_bin("gunicorn"), "dkronweb.wsgi", "-b", f"127.0.0.1:{self.web_port}"]
        self.start("web", gunicorn + ["-w", "2", "--log-level", "warning"])
        for name in SCHEDULERS:
            self.start_scheduler(name)
        procs = [self.start_agent(name, wait=False) for name in AGENTS]
        for name, proc in zip(AGENTS, procs, strict=True):
            self.wait_agent(name, proc)

        def web_ready() -> bool:
            try:
                return self.api.get("/v1/members").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(web_ready, timeout=90, interval=0.3, what="the web server")
        wait_for(lambda: self.leader(), timeout=90, interval=0.3, what="a scheduler to lead")
        self.say(
            f"cluster up: postgres :{self.pg.port}, redis :{self.redis.port}, "
            f"web :{self.web_port}, schedulers {SCHEDULERS}, agents {list(AGENTS)}; "
            f"leader {self.leader()}"
        )

    def stop_all(self) -> None:
        stop_together(self.procs.values(), timeout=10, resume=True)
        self.procs.clear()
        if self.pg.popen is not None:
            with contextlib.suppress(psutil.Error):
                self.pg_signal(signal.SIGCONT)
        self.redis.stop()
        self.pg.stop()

    def create_jobs(self) -> None:
        for spec in JOBS:
            start = "echo S $DKRON_JOB_NAME $DKRON_SCHEDULED_AT $DKRON_EXECUTION_ID $DKRON_ATTEMPT"
            command = (
                f'{start} "$(date +%s.%N)" >> {self.effects}/$DKRON_JOB_NAME; sleep {spec.sleep}; '
                f"echo D $DKRON_JOB_NAME $DKRON_SCHEDULED_AT $DKRON_EXECUTION_ID $DKRON_ATTEMPT "
                f'"$(date +%s.%N)" >> {self.effects}/$DKRON_JOB_NAME'
            )
            body = {
                "name": spec.name,
                "schedule": f"@every {spec.every}s",
                "executor": "shell",
                "executor_config": {"command": command, "shell": "true"},
                "tags": spec.tags,
                "misfire_policy": spec.policy,
                "concurrency": "allow",
                "retries": 2,
                "retry_backoff": 0.5,
                "history_limit": 1_000_000,
            }
            response = self.api.post("/v1/jobs", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"creating {spec.name}: {response.status_code} {response.text}")

    # --- the nemesis ---------------------------------------------------------------------------

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if not proc.alive():
                self.say(f"{name} exited by itself ({proc.popen.returncode}); restarting it")
                self.failures.append(f"{name} exited by itself with {proc.popen.returncode}")
                self.restart(name)

    def restart(self, name: str) -> None:
        if name in AGENTS:
            self.start_agent(name)
        elif name in SCHEDULERS:
            self.start_scheduler(name)
        else:
            raise RuntimeError(f"{name} exited: {self.procs[name].log()[-2000:]}")

    def pg_signal(
        self, sig: int, procs: list[psutil.Process] | None = None
    ) -> list[psutil.Process]:
        """Signal the postmaster and every backend (each backend is its own session: setsid)."""
        assert self.pg.popen is not None
        if procs is None:
            main = psutil.Process(self.pg.popen.pid)
            main.send_signal(sig)  # first, so that it forks no new backend meanwhile
            procs = [main, *main.children(recursive=True)]
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        return procs

    def pick_scheduler(self, leader_share: float) -> str:
        # Both draws always happen, so the random sequence (the rest of the plan) does not
        # depend on whether a leader was found at this moment.
        lead, other = self.rng.random() < leader_share, self.rng.choice(SCHEDULERS)
        leader = self.leader()
        return leader if leader and lead else other

    def sigterm(self, name: str, fault: Fault) -> None:
        proc = self.procs[name]
        sent = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=SIGTERM_EXIT + 20)
        took = time.monotonic() - sent
        fault.detail["exit_s"] = round(took, 2)
        if proc.alive() or took > SIGTERM_EXIT:
            state = "still running" if proc.alive() else f"exited after {took:.1f}s"
            self.failures.append(f"sigterm-exit: {name} {state} (bound {SIGTERM_EXIT:.0f}s)")
        proc.stop(timeout=0)  # and whatever is left of its group

    def apply(self, kind: str, short: bool) -> Fault:
        rng = self.rng
        down = rng.uniform(1.0, 3.0)
        if kind in ("sched-kill9", "sched-term", "leader-stop", "clock-jump"):
            target = self.pick_scheduler(1.0 if kind in ("sched-term", "leader-stop") else 0.8)
        elif kind in ("agent-kill9", "agent-term"):
            target = rng.choice(sorted(AGENTS))
        else:
            target = "redis" if kind == "redis-restart" else "postgres"
        stall = rng.uniform(10.0, 15.0 if short else 20.0)
        stop_for = LEASE_TTL + rng.uniform(2.0, 4.0)
        fault = Fault(kind, target, start=time.time())
        if kind == "sched-kill9":
            fault.detail["leader"] = self.leader() == target
            os.killpg(self.procs[target].pid, signal.SIGKILL)
            self.procs[target].stop(timeout=0)
            fault.end = time.time()
            time.sleep(down)
            self.start_scheduler(target)
        elif kind == "sched-term":
            self.sigterm(target, fault)
            fault.end = time.time()
            time.sleep(down)
            self.start_scheduler(target)
        elif kind == "agent-kill9":
            self.procs[target].popen.kill()  # the main process only: its jobs are the reaper's
            self.procs[target].popen.wait(timeout=10)
            time.sleep(down)
            old = self.procs[target]
            self.start_agent(target)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(old.pid, signal.SIGKILL)  # pool remnants a reaper should have ended
            fault.end = time.time()
        elif kind == "agent-term":
            self.sigterm(target, fault)
            time.sleep(down)
            self.start_agent(target)
            fault.end = time.time()
        elif kind == "leader-stop":
            pid = self.procs[target].pid
            os.killpg(pid, signal.SIGSTOP)
            time.sleep(stop_for)
            os.killpg(pid, signal.SIGCONT)
            fault.end = time.time()
        elif kind == "redis-restart":
            self.redis.restart(down_for=down)
            fault.end = time.time()
        elif kind == "pg-restart":
            self.pg.restart(down_for=down)
            fault.end = time.time()
        elif kind == "clock-jump":
            jump = rng.uniform(10.0, 20.0)
            fault.detail["leader"] = self.leader() == target
            fault.detail["jump_s"] = round(jump, 1)
            self.clock_file(target).write_text(f"+{jump:.1f}\n")
            time.sleep(rng.uniform(6.0, 10.0))
            self.clock_file(target).write_text("+0\n")
            fault.end = time.time()
        elif kind == "pg-stall":
            stopped = self.pg_signal(signal.SIGSTOP)
            fault.detail["processes"] = len(stopped)
            time.sleep(stall)
            self.pg_signal(signal.SIGCONT, stopped)
            fault.end = time.time()
        fault.detail.setdefault("length_s", round(fault.end - fault.start, 2))
        self.faults.append(fault)
        extra = " ".join(f"{k}={v}" for k, v in fault.detail.items())
        self.say(f"FAULT {kind} {target}: {extra}; leader now {self.leader()}")
        return fault

    def plan(self, seconds: float, short: bool) -> list[str]:
        """The fault kinds in order: short mode each kind once (shuffled), else at random."""
        if short:
            kinds = list(KINDS)
            self.rng.shuffle(kinds)
            return kinds
        return [self.rng.choice(KINDS) for _ in range(int(seconds / 10) + 1)]

    def run_nemesis(self, seconds: float, short: bool) -> None:
        until = time.monotonic() + seconds if not short else float("inf")
        for kind in self.plan(seconds, short):
            gap = self.rng.uniform(6.0, 10.0)
            self.sleep_checking(gap)
            if time.monotonic() > until:
                break
            self.apply(kind, short)
        if not short:
            self.sleep_checking(max(0.0, until - time.monotonic()))

    def sleep_checking(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
            self.check_alive()

    def drain(self) -> tuple[float, float]:
        """Disable the jobs (SQL: the API may be what is broken) and wait for quiet."""
        disabled_at = time.time()
        self.db.execute("UPDATE jobs_job SET disabled = true")
        t0 = time.monotonic()
        time.sleep(1.5)  # a tick that read the jobs as due before may still commit

        def left() -> int:
            return int(
                self.db.value(
                    "SELECT (SELECT count(*) FROM jobs_execution WHERE status IN "
                    "('queued', 'running')) + (SELECT count(*) FROM jobs_run WHERE NOT finished)"
                )
            )

        wait_draining(left, window=DRAIN, each=self.check_alive)
        return disabled_at, time.monotonic() - t0


# --- the check ---------------------------------------------------------------------------------


@dataclass
class Line:
    kind: str  # S or D
    job: str
    scheduled: str
    execution_id: int
    attempt: int
    at: float


def read_lines(effects: Path) -> tuple[list[Line], int]:
    lines: list[Line] = []
    bad = 0
    for path in sorted(effects.iterdir()):
        for raw in path.read_text(errors="replace").splitlines():
            parts = raw.split()
            try:
                kind, job, sched, eid, attempt, at = parts
                lines.append(Line(kind, job, sched, int(eid), int(attempt), float(at)))
            except ValueError:
                bad += 1
    return lines, bad


def _epoch(value: datetime) -> float:
    return value.timestamp()


def _key(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def figures(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values),
    }


def check(chaos: Chaos, disabled_at: float) -> dict[str, Any]:
    db = chaos.db
    jobs = {r["name"]: r for r in db.rows("SELECT * FROM jobs_job")}
    runs = db.rows(
        "SELECT r.id, r.scheduled_at, r.trigger, r.finished, j.name AS job "
        "FROM jobs_run r JOIN jobs_job j ON j.id = r.job_id"
    )
    execs = db.rows(
        "SELECT id, run_id, job_name, attempt, status, node_name, reason FROM jobs_execution"
    )
    lines, malformed = read_lines(chaos.effects)
    by_run: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in execs:
        by_run[e["run_id"]].append(e)
    exec_by_id = {e["id"]: e for e in execs}
    runs_by_fire: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        if r["scheduled_at"] is not None:
            runs_by_fire[(r["job"], _key(r["scheduled_at"]))].append(r)
    lines_by_fire: dict[tuple[str, str], list[Line]] = defaultdict(list)
    for line in lines:
        lines_by_fire[(line.job, line.scheduled)].append(line)

    lost: list[str] = []
    duplicated: list[str] = [f"{malformed} malformed side-effect line(s)"] if malformed else []
    late: list[str] = []
    early: list[str] = []
    retried_after_kill = 0
    lags: dict[str, list[float]] = defaultdict(list)
    expected = 0
    tail = 0
    lattice: set[tuple[str, str]] = set()
    for spec in JOBS:
        job = jobs[spec.name]
        step = timedelta(seconds=spec.every)
        t = job["anchor"] + step
        while _epoch(t) <= disabled_at + 2:
            key = (spec.name, _key(t))
            lattice.add(key)
            t_epoch = _epoch(t)
            in_tail = t_epoch > disabled_at - TAIL_SLACK
            fire_runs = runs_by_fire.get(key, [])
            fire_lines = lines_by_fire.get(key, [])
            starts = [x for x in fire_lines if x.kind == "S"]
            dones = [x for x in fire_lines if x.kind == "D"]
            windows = [f for f in chaos.faults if f.covers(t_epoch)]
            kinds = sorted({f.kind for f in windows}) or ["quiet"]
            label = f"{spec.name} {key[1]} [{','.join(kinds)}]"
            t += step
            if in_tail:
                tail += 1
                if len(fire_runs) > 1 or len(dones) > 1:
                    duplicated.append(f"{label}: {len(fire_runs)} runs, {len(dones)} ends")
                if not fire_runs:
                    continue
            else:
                expected += 1
            if len(fire_runs) > 1:
                duplicated.append(f"{label}: {len(fire_runs)} runs {[r['id'] for r in fire_runs]}")
                continue
            if not fire_runs:
                lost.append(f"{label}: no run")
                continue
            run = fire_runs[0]
            attempts = by_run.get(run["id"], [])
            ok = [e for e in attempts if e["status"] == "success"]
            if any(e["status"] in ("queued", "running") for e in attempts):
                continue  # stuck, counted below
            if not starts:
                detail = ", ".join(f"#{e['id']} {e['status']} {e['reason']!r}" for e in attempts)
                lost.append(f"{label}: run {run['id']} never started ({detail or 'no execution'})")
                continue
            if len(ok) > 1 or len(dones) > 1:
                duplicated.append(
                    f"{label}: run {run['id']}: {len(ok)} successes, {len(dones)} ends "
                    f"({[(x.execution_id, x.attempt) for x in dones]})"
                )
                continue
            if not ok:
                detail = ", ".join(f"#{e['id']} {e['status']} {e['reason']!r}" for e in attempts)
                lost.append(f"{label}: run {run['id']} has no successful execution ({detail})")
                continue
            started_ids = {x.execution_id for x in starts}
            if len(started_ids) > 1:
                # A retry is allowed only after an attempt that failed without ending.
                done_ids = {x.execution_id for x in dones}
                bad = [
                    i
                    for i in started_ids
                    if i != ok[0]["id"]
                    and (i in done_ids or exec_by_id.get(i, {}).get("status") != "failed")
                ]
                if bad:
                    duplicated.append(f"{label}: started by executions {sorted(started_ids)}")
                    continue
                retried_after_kill += 1
            if any(x.execution_id not in exec_by_id for x in starts):
                duplicated.append(f"{label}: a side effect of an unknown execution")
                continue
            first = min(x.at for x in starts)
            lag = first - t_epoch
            deadline = max([t_epoch + BASE_BOUND] + [f.deadline for f in windows])
            for k in kinds:
                lags[k].append(lag)
            lags["all"].append(lag)
            if lag < -EARLY_SLACK:
                early.append(f"{label}: started {-lag:.1f}s before its time ({', '.join(kinds)})")
            if first > deadline:
                late.append(
                    f"{label}: started {lag:.1f}s late, bound {deadline - t_epoch:.1f}s "
                    f"({', '.join(kinds)})"
                )
    for key, fire_runs in runs_by_fire.items():
        if key not in lattice:
            duplicated.append(f"{key[0]} {key[1]}: {len(fire_runs)} run(s) off the lattice")
    for key in lines_by_fire:
        if key not in lattice and key not in runs_by_fire:
            duplicated.append(f"{key[0]} {key[1]}: side effects off the lattice")
    stuck = [
        f"{e['job_name']} #{e['id']} attempt {e['attempt']} {e['status']} on {e['node_name']}"
        for e in execs
        if e["status"] in ("queued", "running")
    ]
    stuck += [f"run {r['id']} of {r['job']} unfinished" for r in runs if not r["finished"]]
    missed = sum(int(j["missed_count"]) for j in jobs.values())
    triggers = Counter(r["trigger"] for r in runs)
    misfires = []
    if missed:
        misfires.append(f"missed_count {missed} (no fault lasts MISFIRE_GRACE)")
    if triggers.get("catchup"):
        misfires.append(f"{triggers['catchup']} catch-up run(s) (no fault lasts MISFIRE_GRACE)")
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    categories = (("lost", lost), ("duplicated", duplicated), ("late", late), ("early", early))
    for category, items in categories:
        for item in items:
            m = re.search(r"\[([a-z0-9,-]+)\]", item)
            for k in m.group(1).split(",") if m else ["-"]:
                by_kind[k][category] += 1
    return {
        "failures_by_window": {k: dict(v) for k, v in sorted(by_kind.items())},
        "expected": expected,
        "tail": tail,
        "runs": len(runs),
        "runs_by_trigger": dict(triggers),
        "executions": len(execs),
        "executions_by_status": dict(Counter(e["status"] for e in execs)),
        "per_agent": dict(sorted(Counter(e["node_name"] for e in execs).items())),
        "side_effect_lines": len(lines),
        "retried_after_kill": retried_after_kill,
        "lags": {k: figures(v) for k, v in sorted(lags.items())},
        "lost": lost,
        "duplicated": duplicated,
        "stuck": stuck,
        "late": late,
        "early": early,
        "misfires": misfires,
    }


def _s(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}s"


def render(chaos: Chaos, acc: dict[str, Any], title: str) -> str:
    out = [title, "", "faults applied:", ""]
    out += ["| # | at (s) | fault | target | length | bound after its fire time | detail |"]
    out += ["|---|--------|-------|--------|--------|---------------------------|--------|"]
    t_first = chaos.faults[0].start if chaos.faults else 0.0
    for i, f in enumerate(chaos.faults, 1):
        a, b, _ = BOUNDS[f.kind]
        detail = ", ".join(f"{k}={v}" for k, v in f.detail.items() if k != "length_s")
        out.append(
            f"| {i} | {f.start - t_first:.1f} | {f.kind} | {f.target} | {f.end - f.start:.1f}s "
            f"| max(start+{a:.0f}s, end+{b:.0f}s) | {detail or '-'} |"
        )
    st = acc["executions_by_status"]
    rows = [
        ("jobs", f"{len(JOBS)} (@every 1s..5s, skip/run_once/run_all, 2 tagged to 2 agents)"),
        ("fires expected (+ in the last 3 s, either way)", f"{acc['expected']} (+{acc['tail']})"),
        (
            "runs: schedule / catch-up",
            f"{acc['runs_by_trigger'].get('schedule', 0)} / "
            f"{acc['runs_by_trigger'].get('catchup', 0)}",
        ),
        ("executions", f"{acc['executions']} {st}"),
        ("executions per agent", ", ".join(f"{k}: {v}" for k, v in acc["per_agent"].items())),
        ("side-effect lines", f"{acc['side_effect_lines']}"),
        ("re-run after a failed attempt (at least once)", f"{acc['retried_after_kill']}"),
        ("**LOST**", f"**{len(acc['lost'])}**"),
        ("**DUPLICATE**", f"**{len(acc['duplicated'])}**"),
        ("**STUCK**", f"**{len(acc['stuck'])}**"),
        ("**BOUND MISSED** (late)", f"**{len(acc['late'])}**"),
        ("**EARLY** (started before its time)", f"**{len(acc['early'])}**"),
        ("**misfires / catch-up**", f"**{len(acc['misfires'])}**"),
        ("**fault failures** (slow SIGTERM exit, crash)", f"**{len(chaos.failures)}**"),
    ]
    for kind, counts in acc["failures_by_window"].items():
        shown = ", ".join(f"{k} {v}" for k, v in counts.items())
        rows.append((f"failures in {kind} windows", shown))
    for kind, fig in acc["lags"].items():
        rows.append(
            (
                f"start lag {kind} (n={fig['n']}) p50 / p99 / max",
                f"{_s(fig['p50'])} / {_s(fig['p99'])} / {_s(fig['max'])}",
            )
        )
    width = max(len(a) for a, _ in rows)
    out += ["", f"| {'figure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    out += [f"| {a.ljust(width)} | {b} |" for a, b in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=parse_duration, default=None, help="e.g. 20m")
    parser.add_argument("--short", action="store_true", help="CI mode: each fault once, ~2.5 min")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep logs and side effects")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    short = args.short or args.duration is None
    seconds = args.duration if args.duration is not None else 0.0
    print(
        f"chaos: seed {seed} (replay: python -m bench.chaos --seed {seed}"
        f"{' --short' if short else f' --duration {seconds:.0f}s'})",
        flush=True,
    )

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix="dkchaos-"))
    try:
        chaos = Chaos(workdir, seed, verbose=not args.quiet)
    except FileNotFoundError as exc:
        print(f"chaos: missing {exc}", file=sys.stderr)
        return 2
    acc: dict[str, Any] = {}
    error = ""
    drain_s = 0.0
    started = time.monotonic()
    try:
        chaos.up()
        chaos.create_jobs()
        left_out = "" if LIBFAKETIME else " (clock-jump left out: libfaketime is not installed)"
        chaos.say(f"fault kinds: {', '.join(KINDS)}{left_out}")
        chaos.say(f"{len(JOBS)} jobs created; warming up 8 s")
        chaos.sleep_checking(8.0)
        if short:
            chaos.run_nemesis(0.0, short=True)
        else:
            chaos.run_nemesis(seconds, short=False)
        chaos.say("nemesis done; quiet tail of 15 s")
        chaos.sleep_checking(15.0)
        disabled_at, drain_s = chaos.drain()
        chaos.say(f"jobs disabled, drained in {drain_s:.1f}s; checking")
        acc = check(chaos, disabled_at)
    except (Exception, KeyboardInterrupt) as exc:
        error = f"{type(exc).__name__}: {exc}"
        import traceback

        traceback.print_exc()
    finally:
        chaos.stop_all()
    passed = bool(
        acc
        and not error
        and not any(acc[k] for k in ("lost", "duplicated", "stuck", "late", "early", "misfires"))
        and not chaos.failures
    )
    elapsed = time.monotonic() - started
    title = (
        f"dkronweb chaos, seed {seed}, {'short mode' if short else f'{seconds:.0f}s'} "
        f"({elapsed:.0f}s in all, {len(chaos.faults)} faults, drain {drain_s:.1f}s; "
        f"{os.cpu_count()} cores, 5-min load {os.getloadavg()[1]:.1f} at the end)"
    )
    if acc:
        print(render(chaos, acc, title))
    else:
        print(f"{title}: did not finish ({error})")
    print(f"\nverdict: {'PASS' if passed else 'FAIL'} (seed {seed})")
    for key in ("lost", "duplicated", "stuck", "late", "early", "misfires"):
        for item in acc.get(key, [])[:15]:
            print(f"  {key}: {item}")
        if len(acc.get(key, [])) > 15:
            print(f"  {key}: ... {len(acc[key]) - 15} more")
    for item in chaos.failures:
        print(f"  fault: {item}")
    if error:
        print(f"  error: {error}")
    result = {
        "seed": seed,
        "short": short,
        "seconds": seconds,
        "passed": passed,
        "error": error,
        "elapsed": elapsed,
        "kinds": KINDS,
        "faults": [vars(f) | {"deadline": f.deadline} for f in chaos.faults],
        "fault_failures": chaos.failures,
        "check": acc,
    }
    out = args.json or RESULTS / f"chaos-{'short' if short else 'long'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if passed and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"chaos: logs and side effects kept in {workdir}", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
