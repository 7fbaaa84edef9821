"""`python -m bench.soak --mode micro|short|full`: a soak run of a real cluster, with one fault.

What runs: its own PostgreSQL database (`dksoak_<pid>`, dropped at the end) and Redis database
10 (`DKSOAK_REDIS_URL`; only keys and queues named after the pid, `dks<pid>`, are used and
removed), a web server (gunicorn `dkronweb.wsgi`, 3 sync workers as in the Dockerfile), one
scheduler and two agents (prefork), all separate processes on the production settings
(`dkronweb.settings`) with shorter heartbeats (`DKRON_HEARTBEAT_INTERVAL=1`,
`DKRON_AGENT_DEAD_AFTER=6`, `DKRON_QUEUED_REPUBLISH_AFTER=10`) and
`DKRON_UNTAGGED_TARGET=one` (an untagged fire is one execution on one agent).

Sizes (MODES below): micro 6 jobs for 20 s of load (about 45 s in all), short 10 jobs for
120 s, full 16 jobs for 300 s.

1. N jobs are created through the API, each `@every 1s`, shell executor, `retries: 2`: every
   run sleeps 0.2 s, then appends one line `<job> <scheduled time> <execution id> <attempt>
   <time written>` to the job's own file (the side effect; run-now lines say `manual` for the
   scheduled time).
2. For the soak's length, threads use the HTTP API the whole time: `GET /v1/jobs` pages and
   `GET /v1/jobs/<name>/executions` pages (2 readers), upserts that change a job's display name,
   metadata and retries (1 writer), toggles off and on again (1 thread, its own jobs), and
   run-now (1 thread). Upserted and toggled jobs are disjoint sets.
3. Midway, the agent with the most running executions is killed (SIGKILL to its process group:
   the agent, its pool and the jobs it started) and a replacement with the same node name is
   started 2 s later.
4. At the end the API load stops, every soak job is disabled, and the cluster drains: the
   scheduler keeps running (its sweep closes what the dead agent left and republishes what it
   took with it) until no execution is queued or running, or nothing moves any more.

Then the runs and executions in the database are compared with the side-effect files.
Definitions (each counted per run, the group of executions of one fire or one run-now):

- fires expected: per job, every second of its `@every 1s` lattice from its first fire time to
  the moment the jobs were disabled. Runs recorded: the runs in the database.
- LOST: (a) a fire time on a job's lattice, before the job's final `next_run`, with no run
  recorded (a gap the scheduler stepped over; fires due while a job was toggled off are
  counted apart as "not run while disabled" and are not lost); (b) a run recorded (or a
  run-now the API accepted) that has no successful execution; (c) a successful run without
  its side-effect line. A run whose every attempt was closed as failed by the kill, with no
  retry left, is not lost: it is reported as "failed by the kill" (with `retries: 2` there
  should be none).
- DUPLICATED: a job's fire time (or a run-now's run) whose side effect appears more than once;
  except that when the extra line was written by an attempt the kill closed as failed (the
  agent died after the command's effect but before its result was recorded) and the retry
  wrote it again, the run is counted as "re-run after the kill" (the at-least-once of a retry
  after a crash, SPEC 13) and not as duplicated. That exception holds only for an effect
  written before the SIGKILL or within 0.1 s of it: one written later means the job process
  outlived its agent, which the shell executor must prevent, so it counts as duplicated. A
  line of an unknown execution, whose time is not its run's, or malformed, counts too.
- STUCK: an execution still `queued` or `running` at the end of the drain, which waits as long
  as the number of active executions keeps falling (a backlog), and ends when it has not
  fallen for the drain window (60 s micro, 90 s short, 120 s full; at most 15 minutes).
- closed by the kill: executions of the killed agent closed as failed (`agent <name> died` by
  the scheduler's sweep or, with `; its job processes were killed`, by the agent's reaper, or
  `agent <name> restarted` by the replacement); re-run after the
  kill: their runs that then succeeded on a retry.
- API: every request the threads made; errors are 5xx answers and transport errors (the web
  server is never faulted); 4xx answers are counted apart. Latency p50/p99 per kind.
- executions per agent: how the work spread over the agents (reported, not judged).
- behind at stop: fire times on the lattice before the disable instant that the scheduler had
  not reached yet (not lost: the job was disabled first). A job more than 30 s behind counts
  as stalled.

The exit status is 0 only when lost, duplicated, stuck, API errors and stalled jobs are all 0.
The table goes to stdout (Markdown), progress to stderr, and the figures as JSON to
bench/results/soak-<mode>.json (or --json).
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
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil
import psycopg
import redis

from bench import infra
from bench.procs import (
    Proc,
    agent_args,
    free_port,
    python,
    stop_together,
    venv_bin,
    wait_draining,
    wait_for,
)
from bench.report import percentile

RESULTS = Path(__file__).resolve().parent / "results"
REDIS_URL = os.environ.get("DKSOAK_REDIS_URL", "redis://127.0.0.1:6379/10")
DB_PATTERN = re.compile(r"^dksoak_(\d+)$")
KEY_PATTERN = re.compile(r"dks(\d+)")
ACTIVE = ("queued", "running")
SLEEP = 0.2  # seconds each run sleeps before its side effect (the kill finds runs in flight)
STALLED_AFTER = 30.0
DRAIN_CAP = 900.0  # seconds: the drain stops here even while the backlog still shrinks
SETTLE = 3.0  # seconds: longer than a scheduler tick (TICK_MAX) plus its commit
OUTLIVED = 0.1  # seconds after the SIGKILL: a job's effect written later outlived its agent
SETTINGS = {
    "DKRON_HEARTBEAT_INTERVAL": "1",
    "DKRON_AGENT_DEAD_AFTER": "6",
    "DKRON_QUEUED_REPUBLISH_AFTER": "10",
    "DKRON_UNTAGGED_TARGET": "one",
}


@dataclass(frozen=True)
class Mode:
    name: str
    seconds: float  # of API load and fires, the kill at the middle
    jobs: int
    drain: float  # seconds the drain waits without progress before what is left is stuck
    concurrency: int  # prefork children per agent
    web_workers: int


MODES = {
    "micro": Mode("micro", seconds=20.0, jobs=6, drain=60.0, concurrency=3, web_workers=3),
    "short": Mode("short", seconds=120.0, jobs=10, drain=90.0, concurrency=3, web_workers=3),
    "full": Mode("full", seconds=300.0, jobs=16, drain=120.0, concurrency=4, web_workers=3),
}


class SoakInfra(infra.Infra):
    """The benchmark's infrastructure (its own database), with the soak's settings."""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{**SETTINGS, **extra})


def make_infra(data_root: Path) -> SoakInfra:
    pid = str(os.getpid())
    data_dir = data_root / f"dksoak-{pid}"
    data_dir.mkdir(parents=True, exist_ok=True)
    return SoakInfra(
        run_id=pid,
        db_name=f"dksoak_{pid}",
        prefix=f"dks{pid}",
        data_dir=data_dir,
        redis_url=REDIS_URL,
    )


def remove_leftovers() -> list[str]:
    """Drop the databases and Redis keys of earlier soak runs whose process is gone."""

    def dead(text: str) -> bool:
        m = KEY_PATTERN.search(text)
        return bool(m and int(m.group(1)) != os.getpid() and not psutil.pid_exists(int(m.group(1))))

    removed: list[str] = []
    with psycopg.connect(infra.PG_ADMIN_URL, autocommit=True) as conn:
        for (name,) in conn.execute("SELECT datname FROM pg_database").fetchall():
            m = DB_PATTERN.match(name)
            if m and dead(f"dks{m.group(1)}"):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                removed.append(name)
    client = redis.Redis.from_url(REDIS_URL)
    stale = [k for k in client.scan_iter(match="*dks*", count=1000) if dead(infra._text(k))]
    if stale:
        client.delete(*stale)
        removed.append(f"{len(stale)} redis key(s)")
    if infra._binding_members(client, dead):
        removed.append("kombu bindings")
    return removed


def services_reachable() -> str | None:
    problem = infra.services_reachable()
    if problem:
        return problem
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at {REDIS_URL}: {exc}"
    return None


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- The run ---------------------------------------------------------------------------------


@dataclass
class Soak:
    mode: Mode
    infra: SoakInfra
    log_dir: Path
    effects: Path
    verbose: bool = True
    started: float = field(default_factory=time.monotonic)
    procs: dict[str, Proc] = field(default_factory=dict)
    token: str = ""
    web_url: str = ""
    jobs: list[str] = field(default_factory=list)
    toggled: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    # What the API threads did.
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    manual_groups: list[int] = field(default_factory=list)
    disabled_windows: dict[str, list[tuple[datetime, datetime]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    stop_load: threading.Event = field(default_factory=threading.Event)
    kill: dict[str, Any] = field(default_factory=dict)
    load_started: float = 0.0

    def say(self, message: str) -> None:
        if self.verbose:
            elapsed = time.monotonic() - self.started
            print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def start(self, name: str, args: list[str], **env: str) -> Proc:
        proc = Proc(name, args, self.infra.env(**env), self.log_dir)
        self.procs[name] = proc
        return proc

    def stop_all(self) -> None:
        stop_together(reversed(self.procs.values()))
        self.procs.clear()

    def agent_names(self) -> list[str]:
        return [f"{self.infra.prefix}-a1", f"{self.infra.prefix}-a2"]

    def job_body(self, name: str, rev: int = 0) -> dict[str, Any]:
        line = (
            '"$DKRON_JOB_NAME ${DKRON_SCHEDULED_AT:-manual} $DKRON_EXECUTION_ID $DKRON_ATTEMPT '
            '$(date +%s.%N)"'
        )
        command = f"sleep {SLEEP}; echo {line} >> {self.effects}/$DKRON_JOB_NAME"
        return {
            "name": name,
            "displayname": f"{name} rev {rev}",
            "schedule": "@every 1s",
            "executor": "shell",
            "executor_config": {"command": command, "shell": "true"},
            "retries": 2 + rev % 2,
            "retry_backoff": 0.5,
            "history_limit": 1_000_000,
            "metadata": {"soak": "yes", "rev": str(rev)},
        }


def setup_django(soak: Soak) -> None:
    os.environ.update(soak.infra.env(DKRON_LOG_LEVEL="WARNING"))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from web.api.auth import token_create

    user = get_user_model().objects.create_superuser("soak", "soak@example.com", "soak-pass")
    soak.token = token_create(user=user, name="soak")[1]


def start_agent(soak: Soak, node: str, proc_name: str) -> Proc:
    args = agent_args(node, pool="prefork", concurrency=soak.mode.concurrency)
    return soak.start(proc_name, args, DKRON_NODE_NAME=node)


def wait_agent(soak: Soak, node: str, proc: Proc, *, after: datetime | None = None) -> None:
    from jobs.models import Agent

    def ready() -> bool:
        row = Agent.objects.filter(name=node, left=False).first()
        return bool(
            row
            and row.last_heartbeat
            and row.last_heartbeat > utcnow() - timedelta(seconds=10)
            and (after is None or (row.started_at is not None and row.started_at >= after))
            and "ready" in proc.log()
        )

    wait_for(ready, timeout=90, interval=0.2, what=f"agent {node} to register", procs=[proc])


def start_cluster(soak: Soak) -> None:
    from jobs.services import lease as lease_services

    port = free_port()
    soak.web_url = f"http://127.0.0.1:{port}"
    gunicorn = [venv_bin("gunicorn"), "dkronweb.wsgi", "-b", f"127.0.0.1:{port}"]
    # As the Dockerfile runs it: sync workers, which close each connection after its answer
    # (gthread's keep-alive would race idle client connections: resets that are no bug).
    gunicorn += ["-w", str(soak.mode.web_workers), "--log-level", "warning"]
    soak.start("web", gunicorn)
    soak.start("scheduler", [python(), "manage.py", "scheduler", "-l", "INFO"])
    agents = {n: start_agent(soak, n, f"agent-{n}") for n in soak.agent_names()}
    for node, proc in agents.items():
        wait_agent(soak, node, proc)

    def web_ready() -> bool:
        try:
            return httpx.get(soak.web_url + "/health?scope=process", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    procs = list(soak.procs.values())
    wait_for(web_ready, timeout=90, interval=0.2, what="the web server", procs=procs)
    wait_for(
        lambda: lease_services.lease_holder() is not None,
        timeout=90,
        interval=0.2,
        what="the scheduler to take the lease",
        procs=procs,
    )


class Api:
    """One thread's HTTP client: records every request's status and latency."""

    def __init__(self, soak: Soak) -> None:
        self.soak = soak
        self.client = httpx.Client(
            base_url=soak.web_url,
            headers={"Authorization": f"Bearer {soak.token}"},
            timeout=60.0,
        )

    def call(self, kind: str, method: str, url: str, **kw: Any) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            response = self.client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            with self.soak.lock:
                self.soak.statuses["transport error"] += 1
                self.soak.errors.append(f"{kind} {method} {url}: {type(exc).__name__}: {exc}")
            return None
        elapsed = time.perf_counter() - t0
        with self.soak.lock:
            self.soak.latencies[kind].append(elapsed)
            self.soak.statuses[str(response.status_code)] += 1
            if response.status_code >= 400:
                text = response.text[:300]
                self.soak.errors.append(f"{kind} {method} {url}: {response.status_code} {text}")
        return response

    def close(self) -> None:
        self.client.close()


def _loop(soak: Soak, name: str, body: Any) -> threading.Thread:
    def run() -> None:
        api = Api(soak)
        rng = random.Random(name)
        try:
            while not soak.stop_load.is_set():
                body(api, rng)
        except Exception as exc:  # a bug in the load itself: reported, and fails the run
            with soak.lock:
                soak.errors.append(f"load thread {name} crashed: {type(exc).__name__}: {exc}")
                soak.statuses["load thread crashed"] += 1
        finally:
            api.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def start_load(soak: Soak) -> list[threading.Thread]:
    plain = [j for j in soak.jobs if j not in soak.toggled]
    wait = soak.stop_load.wait

    def reader(api: Api, rng: random.Random) -> None:
        start = rng.randrange(0, max(1, len(soak.jobs) - 5))
        api.call("GET /v1/jobs", "GET", "/v1/jobs", params={"_start": start, "_end": start + 50})
        name = rng.choice(soak.jobs)
        api.call(
            "GET /v1/jobs/<name>/executions",
            "GET",
            f"/v1/jobs/{name}/executions",
            params={"_start": 0, "_end": 20},
        )
        wait(0.1)

    revs: Counter[str] = Counter()

    def writer(api: Api, rng: random.Random) -> None:
        name = rng.choice(soak.edited)
        revs[name] += 1
        api.call("upsert POST /v1/jobs", "POST", "/v1/jobs", json=soak.job_body(name, revs[name]))
        wait(0.5)

    def toggler(api: Api, rng: random.Random) -> None:
        name = rng.choice(soak.toggled)
        t0 = utcnow()
        off = api.call("POST /v1/jobs/<name>/toggle", "POST", f"/v1/jobs/{name}/toggle")
        time.sleep(rng.uniform(1.0, 3.0))
        on = api.call("POST /v1/jobs/<name>/toggle", "POST", f"/v1/jobs/{name}/toggle")
        soak.disabled_windows[name].append((t0, utcnow()))
        if off is None or on is None or off.status_code != 200 or on.status_code != 200:
            # Leave the job enabled whatever happened (the stop disables every job anyway).
            from jobs.models import Job

            Job.objects.filter(name=name).update(disabled=False)
        wait(rng.uniform(1.0, 3.0))

    def runner(api: Api, rng: random.Random) -> None:
        name = rng.choice(plain)
        r = api.call("POST /v1/jobs/<name>/run", "POST", f"/v1/jobs/{name}/run")
        if r is not None and r.status_code == 202:
            with soak.lock:
                soak.manual_groups.append(int(r.headers["X-Run-Group"]))
        wait(1.0)

    threads = [_loop(soak, f"reader-{i}", reader) for i in range(2)]
    threads += [_loop(soak, "writer", writer), _loop(soak, "runner", runner)]
    if soak.toggled:
        threads.append(_loop(soak, "toggler", toggler))
    return threads


def inject_fault(soak: Soak) -> None:
    """SIGKILL the agent with the most running executions; start a replacement 2 s later."""
    from django.db.models import Count

    from jobs.models import Execution

    names = soak.agent_names()

    def busiest() -> str | None:
        rows = (
            Execution.objects.filter(status="running", node_name__in=names)
            .values("node_name")
            .annotate(n=Count("id"))
            .order_by("-n", "node_name")
        )
        first = rows.first()
        return str(first["node_name"]) if first else None

    deadline = time.monotonic() + 10
    node = busiest()
    while node is None and time.monotonic() < deadline:
        time.sleep(0.05)
        node = busiest()
    node = node or names[-1]
    proc_name = next(k for k in reversed(list(soak.procs)) if k.startswith(f"agent-{node}"))
    proc = soak.procs.pop(proc_name)
    running = list(
        Execution.objects.filter(status="running", node_name=node).values_list("pk", flat=True)
    )
    killed_at = utcnow()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the agent, its pool and its job processes at once
    sent = utcnow()
    proc.kill()  # reap it and close its log
    soak.kill.update(
        node=node,
        at=killed_at.isoformat(),
        sent=sent.isoformat(),
        at_s=time.monotonic() - soak.load_started,
        running_at_kill=running,
    )
    soak.say(f"fault: kill -9 agent {node} ({len(running)} execution(s) running on it)")
    time.sleep(2.0)
    replacement_at = utcnow()
    new = start_agent(soak, node, f"agent-{node}-replacement")
    wait_agent(soak, node, new, after=replacement_at - timedelta(seconds=1))
    soak.kill["replacement_ready_s"] = (utcnow() - killed_at).total_seconds()
    soak.say(f"fault: replacement agent {node} ready {soak.kill['replacement_ready_s']:.1f}s after")


def create_jobs(soak: Soak) -> None:
    n = soak.mode.jobs
    soak.jobs = [f"soak-{i:03d}" for i in range(n)]
    k = max(1, n // 5)
    soak.toggled = soak.jobs[:k]
    soak.edited = soak.jobs[k : 2 * k + 1]
    api = Api(soak)
    try:
        for name in soak.jobs:
            r = api.call("upsert POST /v1/jobs", "POST", "/v1/jobs", json=soak.job_body(name))
            if r is None or r.status_code != 201:
                raise RuntimeError(f"creating {name}: {r.status_code if r else 'no answer'}")
    finally:
        api.close()


def drain(soak: Soak) -> tuple[datetime, float]:
    """Disable every soak job and wait until nothing is queued or running.

    Returns when the jobs were disabled and the seconds waited."""
    from jobs.models import Execution, Job, Run

    disabled_at = utcnow()
    Job.objects.filter(name__in=soak.jobs).update(disabled=True)
    t0 = time.monotonic()
    active = Counter(
        Execution.objects.filter(job_name__in=soak.jobs, status__in=ACTIVE).values_list(
            "status", flat=True
        )
    )
    soak.say(f"jobs disabled; draining {dict(active) or 'nothing'}")

    def left() -> int:
        return (
            Execution.objects.filter(job_name__in=soak.jobs, status__in=ACTIVE).count()
            + Run.objects.filter(job__name__in=soak.jobs, finished=False).count()
        )

    # A backlog is not stuck: wait while it shrinks, until it has not for the drain window.
    # A tick that read the jobs before they were disabled may still commit its fires after
    # `left()` first reads 0, so an empty count is believed only after it holds for a tick.
    while not wait_draining(left, window=soak.mode.drain, cap=DRAIN_CAP):
        time.sleep(SETTLE)
        if not left() or time.monotonic() - t0 > DRAIN_CAP:
            break
    return disabled_at, time.monotonic() - t0


# --- Accounting ------------------------------------------------------------------------------


@dataclass
class Line:
    job: str
    scheduled: str  # RFC 3339 or "manual"
    execution_id: int
    attempt: int
    written: float  # when the line was written (epoch seconds)


def read_effects(effects: Path) -> tuple[list[Line], int]:
    lines: list[Line] = []
    malformed = 0
    for path in sorted(effects.iterdir()):
        for raw in path.read_text(errors="replace").splitlines():
            parts = raw.split()
            try:
                job, scheduled, execution_id, attempt, written = parts
                lines.append(Line(job, scheduled, int(execution_id), int(attempt), float(written)))
            except ValueError:
                malformed += 1
    return lines, malformed


def _parse(text: str) -> datetime | None:
    if text == "manual":
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def account(soak: Soak, disabled_at: datetime) -> dict[str, Any]:
    from jobs.models import Execution, Job, Run

    jobs = {j.pk: j for j in Job.objects.filter(name__in=soak.jobs)}
    runs = {r.pk: r for r in Run.objects.filter(job_id__in=jobs)}
    execs = list(Execution.objects.filter(job_id__in=jobs).order_by("run_id", "attempt", "pk"))
    by_run: dict[int, list[Any]] = defaultdict(list)
    for e in execs:
        by_run[e.run_id].append(e)
    node = soak.kill.get("node", "")
    # Whoever closes them first: the scheduler's sweep ("died"), the replacement agent
    # ("restarted") or the dead agent's reaper ("died; its job processes were killed").
    kill_reasons = (f"agent {node} died", f"agent {node} restarted")
    closed_by_kill = {
        e.pk for e in execs if e.status == "failed" and e.reason.startswith(kill_reasons)
    }
    lines, malformed = read_effects(soak.effects)
    exec_by_id = {e.pk: e for e in execs}
    lines_by_run: dict[int, list[Line]] = defaultdict(list)
    unexplained: list[str] = []
    for line in lines:
        owner = exec_by_id.get(line.execution_id)
        if owner is None or owner.job_name != line.job or owner.attempt != line.attempt:
            unexplained.append(f"{line} (no such execution)")
            continue
        run = runs[owner.run_id]
        if _parse(line.scheduled) != run.scheduled_at:
            unexplained.append(f"{line} (run {run.pk} is for {run.scheduled_at})")
            continue
        lines_by_run[owner.run_id].append(line)

    unexplained += [f"malformed side-effect line #{i + 1}" for i in range(malformed)]
    kill_from = datetime.fromisoformat(soak.kill["at"]).timestamp() if soak.kill else 0.0
    kill_to = datetime.fromisoformat(soak.kill["sent"]).timestamp() if soak.kill else 0.0
    kill_effects = [line for line in lines if line.execution_id in closed_by_kill]
    lost: list[str] = []
    duplicated: list[str] = list(unexplained)
    rerun_after_kill: list[int] = []
    failed_by_kill: list[int] = []
    statuses: Counter[str] = Counter(e.status for e in execs)
    triggers: Counter[str] = Counter(r.trigger for r in runs.values())
    for run_id, run in runs.items():
        attempts = by_run.get(run_id, [])
        if any(e.status in ACTIVE for e in attempts):
            continue  # counted as stuck
        ok = [e for e in attempts if e.status == "success"]
        effects = lines_by_run.get(run_id, [])
        killed = [e for e in attempts if e.pk in closed_by_kill]
        label = f"{jobs[run.job_id].name} run {run_id} ({run.scheduled_at or 'manual'})"
        if not ok:
            if killed and all(e.pk in closed_by_kill for e in attempts):
                failed_by_kill.append(run_id)
                continue
            detail = ", ".join(f"#{e.pk} {e.status} {e.reason!r}" for e in attempts) or "none"
            lost.append(f"{label}: no successful execution (executions: {detail})")
            continue
        if not any(line.execution_id == ok[0].pk for line in effects):
            lost.append(f"{label}: succeeded (#{ok[0].pk}) but left no side effect")
            continue
        ids = Counter(line.execution_id for line in effects)
        extra = [line for line in effects if line.execution_id != ok[0].pk]
        unexplained_extra = any(
            line.execution_id not in closed_by_kill or line.written > kill_to + OUTLIVED
            for line in extra
        )
        if len(ok) > 1 or max(ids.values()) > 1 or unexplained_extra:
            duplicated.append(f"{label}: {len(effects)} side effects {dict(ids)}")
        elif killed:
            rerun_after_kill.append(run_id)

    # Lattice gaps: fire times the scheduler stepped over.
    sched_times: dict[int, set[datetime]] = defaultdict(set)
    for run in runs.values():
        if run.scheduled_at is not None:
            sched_times[run.job_id].add(run.scheduled_at)
    expected = 0
    behind = 0
    not_run_disabled = 0
    stalled: list[str] = []
    step = timedelta(seconds=1)
    for job in jobs.values():
        assert job.anchor is not None
        t = job.anchor + step
        end = job.next_run or disabled_at
        windows = soak.disabled_windows.get(job.name, [])
        while t <= disabled_at or t < end:
            if t <= disabled_at:
                expected += 1
            if t >= end:
                behind += 1  # the scheduler had not reached it when the job was disabled
            elif t not in sched_times[job.pk]:
                if any(a - step <= t <= b + step for a, b in windows):
                    not_run_disabled += 1
                else:
                    lost.append(f"{job.name} {t.isoformat()}: fire time never run (gap)")
            t += step
        if (disabled_at - end).total_seconds() > STALLED_AFTER:
            stalled.append(f"{job.name}: next_run {end.isoformat()} at the stop")

    # Run-now requests the API accepted must be runs.
    for group in soak.manual_groups:
        if group not in runs:
            lost.append(f"run-now group {group}: accepted by the API but not recorded")

    stuck = [
        f"{e.job_name} #{e.pk} attempt {e.attempt} {e.status} on {e.node_name}"
        for e in execs
        if e.status in ACTIVE
    ]
    unfinished_runs = sum(1 for r in runs.values() if not r.finished)
    return {
        "jobs": len(jobs),
        "fires_expected": expected,
        "runs": len(runs),
        "runs_by_trigger": dict(triggers),
        "executions": len(execs),
        "executions_by_status": dict(statuses),
        "side_effect_lines": len(lines),
        "malformed_lines": malformed,
        "behind_at_stop": behind,
        "not_run_while_disabled": not_run_disabled,
        "missed_count": sum(j.missed_count for j in jobs.values()),
        "closed_by_kill": len(closed_by_kill),
        "per_agent": dict(sorted(Counter(e.node_name for e in execs).items())),
        # Attempts the kill closed whose command had already written its effect (its result
        # was not yet recorded), and any written more than OUTLIVED s after the SIGKILL was
        # sent (the job process outlived its agent; SIGKILL and the parent-death signal that
        # follows it take a few ms, during which a job may still write).
        "kill_effects_before": sum(1 for line in kill_effects if line.written < kill_from),
        "kill_effects_during": sum(
            1 for line in kill_effects if kill_from <= line.written <= kill_to + OUTLIVED
        ),
        "kill_effects_after": sum(1 for line in kill_effects if line.written > kill_to + OUTLIVED),
        "rerun_after_kill": len(rerun_after_kill),
        "failed_by_kill": len(failed_by_kill),
        "lost": lost,
        "duplicated": duplicated,
        "stuck": stuck,
        "unfinished_runs": unfinished_runs,
        "stalled": stalled,
    }


# --- Report ----------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "n/a" if value != value else f"{value * 1000:.0f}ms"


def api_summary(soak: Soak) -> dict[str, Any]:
    all_lat = [x for values in soak.latencies.values() for x in values]
    requests = sum(soak.statuses.values())
    errors = sum(
        n
        for k, n in soak.statuses.items()
        if not k.isdigit() or int(k) >= 500  # 5xx, transport errors, crashed load threads
    )
    client_errors = sum(n for k, n in soak.statuses.items() if k.isdigit() and 400 <= int(k) < 500)
    kinds = {
        kind: {"n": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99)}
        for kind, v in sorted(soak.latencies.items())
    }
    return {
        "requests": requests,
        "errors": errors,
        "client_errors": client_errors,
        "statuses": dict(soak.statuses),
        "p50": percentile(all_lat, 50),
        "p99": percentile(all_lat, 99),
        "kinds": kinds,
        "error_samples": soak.errors[:20],
    }


def render(soak: Soak, acc: dict[str, Any], api: dict[str, Any], extra: dict[str, Any]) -> str:
    trig = acc["runs_by_trigger"]
    st = acc["executions_by_status"]
    kill = soak.kill
    rows: list[tuple[str, str]] = [
        (
            "jobs (`@every 1s`, shell, retries 2)",
            f"{acc['jobs']}, {soak.mode.seconds:.0f}s of load",
        ),
        (
            "fires expected (lattice, to the stop)",
            f"{acc['fires_expected']:,} (behind at stop: {acc['behind_at_stop']})",
        ),
        (
            "runs recorded: scheduled / catch-up / run-now",
            f"{trig.get('schedule', 0):,} / {trig.get('catchup', 0):,} / {trig.get('manual', 0):,}",
        ),
        (
            "executions: success / failed / other",
            f"{st.get('success', 0):,} / {st.get('failed', 0):,} / "
            f"{sum(n for k, n in st.items() if k not in ('success', 'failed')):,}",
        ),
        ("side-effect lines", f"{acc['side_effect_lines']:,}"),
        ("not run while toggled off", f"{acc['not_run_while_disabled']}"),
        (
            "fault: kill -9 agent",
            f"{kill.get('node', '-')} {kill.get('at_s', 0):.0f}s into the load, "
            f"{len(kill.get('running_at_kill', []))} running; replacement ready after "
            f"{kill.get('replacement_ready_s', 0):.1f}s",
        ),
        (
            "closed as failed by the kill / re-run OK / failed (no retry left)",
            f"{acc['closed_by_kill']} / {acc['rerun_after_kill']} / {acc['failed_by_kill']}",
        ),
        (
            "  their effect written before the kill / during it / after (outlived)",
            f"{acc['kill_effects_before']} / {acc['kill_effects_during']} / "
            f"{acc['kill_effects_after']}",
        ),
        ("drain", f"{extra['drain_s']:.1f}s (no-progress window {soak.mode.drain:.0f}s)"),
        ("executions per agent", ", ".join(f"{k}: {v:,}" for k, v in acc["per_agent"].items())),
        ("**LOST**", f"**{len(acc['lost'])}**"),
        ("**DUPLICATED**", f"**{len(acc['duplicated'])}**"),
        ("**STUCK** (queued/running after the drain)", f"**{len(acc['stuck'])}**"),
        ("stalled jobs (> 30 s behind at stop)", f"{len(acc['stalled'])}"),
        (
            "API requests / **errors** (5xx, transport) / 4xx",
            f"{api['requests']:,} / **{api['errors']}** / {api['client_errors']}",
        ),
        ("API latency p50 / p99 (all)", f"{_ms(api['p50'])} / {_ms(api['p99'])}"),
    ]
    for kind, k in api["kinds"].items():
        rows.append((f"  {kind} ({k['n']:,})", f"{_ms(k['p50'])} / {_ms(k['p99'])}"))
    width = max(len(a) for a, _ in rows)
    out = [
        extra["title"],
        "",
        f"| {'figure'.ljust(width)} | value |",
        f"|{'-' * (width + 2)}|-------|",
    ]
    out += [f"| {a.ljust(width)} | {b} |" for a, b in rows]
    out.append("")
    out.append(f"verdict: {'PASS' if extra['passed'] else 'FAIL'}")
    for key in ("lost", "duplicated", "stuck", "stalled"):
        for item in acc[key][:10]:
            out.append(f"  {key}: {item}")
    for item in api["error_samples"][:10]:
        out.append(f"  api: {item}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", choices=sorted(MODES), default="short")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    mode = MODES[args.mode]

    problem = services_reachable()
    if problem:
        print(f"soak: {problem}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    removed = remove_leftovers()
    inf = make_infra(Path(tempfile.gettempdir()))
    log_dir = inf.data_dir / "logs"
    effects = inf.data_dir / "effects"
    log_dir.mkdir(parents=True, exist_ok=True)
    effects.mkdir(parents=True, exist_ok=True)
    soak = Soak(mode=mode, infra=inf, log_dir=log_dir, effects=effects, verbose=not args.quiet)
    if removed:
        soak.say(f"removed leftovers of earlier runs: {', '.join(removed)}")
    soak.say(f"mode {mode.name}: database {inf.db_name}, Redis {REDIS_URL}, logs {log_dir}")
    load0 = os.getloadavg()[0]
    acc: dict[str, Any] = {}
    api: dict[str, Any] = {}
    extra: dict[str, Any] = {"drain_s": 0.0}
    error = ""
    try:
        infra.create_database(inf)
        setup_django(soak)
        start_cluster(soak)
        soak.say("cluster up: web, scheduler, 2 agents")
        create_jobs(soak)
        soak.say(f"{mode.jobs} jobs created; soak for {mode.seconds:.0f}s")
        soak.load_started = load_started = time.monotonic()
        threads = start_load(soak)
        fault_at = load_started + mode.seconds / 2
        time.sleep(max(0.0, fault_at - time.monotonic()))
        inject_fault(soak)
        while time.monotonic() < load_started + mode.seconds:
            time.sleep(0.5)
            for name in ("web", "scheduler"):
                soak.procs[name].check()
        soak.stop_load.set()
        for thread in threads:
            thread.join(timeout=90)
        disabled_at, extra["drain_s"] = drain(soak)
        soak.say(f"drained in {extra['drain_s']:.1f}s; counting")
        acc = account(soak, disabled_at)
    except (Exception, KeyboardInterrupt) as exc:
        error = f"{type(exc).__name__}: {exc}"
        print(f"soak: failed: {error}", file=sys.stderr)
        import traceback

        traceback.print_exc()
    finally:
        soak.stop_load.set()
        soak.stop_all()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with contextlib.suppress(Exception):
            infra.cleanup(inf)

    api = api_summary(soak)
    passed = bool(
        acc
        and not error
        and not acc["lost"]
        and not acc["duplicated"]
        and not acc["stuck"]
        and not acc["stalled"]
        and api["errors"] == 0
    )
    elapsed = time.monotonic() - soak.started
    extra["passed"] = passed
    extra["title"] = (
        f"dkronweb soak, {mode.name} mode ({mode.seconds:.0f}s of load, {elapsed:.0f}s in all; "
        f"{os.cpu_count()} cores, load {load0:.1f} at start, 5-min {os.getloadavg()[1]:.1f} at "
        f"end; 2 agents x {mode.concurrency} prefork, gunicorn {mode.web_workers} sync workers)"
    )
    if acc:
        print(render(soak, acc, api, extra))
    else:
        print(f"dkronweb soak, {mode.name} mode: did not finish ({error})")
    result = {
        "mode": mode.name,
        "passed": passed,
        "error": error,
        "seconds": elapsed,
        "sizes": vars(mode),
        "fault": soak.kill,
        "drain_s": extra["drain_s"],
        "accounting": acc,
        "lost": len(acc.get("lost", [])) if acc else None,
        "duplicated": len(acc.get("duplicated", [])) if acc else None,
        "stuck": len(acc.get("stuck", [])) if acc else None,
        "api": api,
    }
    out = args.json or RESULTS / f"soak-{mode.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if passed and not args.keep_logs:
        shutil.rmtree(inf.data_dir, ignore_errors=True)
    else:
        print(f"soak: logs and side-effect files kept in {inf.data_dir}", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
