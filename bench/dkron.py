"""dkronweb's side: a real scheduler, agents and web server, driven through models and services.

Jobs are seeded with `bulk_create` and `compute_next_run` (never 100,000 API calls); all timings
come from the rows the processes write (Run.created_at, Execution.published_at, started_at,
finished_at) or, for the API, from the benchmark's own HTTP client. Import after django.setup().
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from django.db import close_old_connections, connection

from bench.context import Context
from bench.procs import Proc, agent_args, free_port, python, venv_bin, wait_for
from bench.report import (
    INF,
    ROW_LABELS,
    fmt_num,
    fmt_pair,
    fmt_seconds,
    fmt_triple,
    rate_between,
    spread,
)
from jobs.models import Agent, Execution, Job, Run
from jobs.services import agents as agent_services
from jobs.services import lease as lease_services
from jobs.timing import compute_next_run

ECHO = {"executor": "echo", "executor_config": {"message": "bench"}}
ACTIVE = ("queued", "running")
DONE = ("success", "failed", "timeout", "killed", "skipped")


def utcnow() -> datetime:
    return datetime.now(UTC)


def ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def at_spec(t: datetime) -> str:
    """A cron spec (seconds first) that fires at `t` and then a year later."""
    return f"{t.second} {t.minute} {t.hour} {t.day} {t.month} *"


def daily_spec(i: int, total: int) -> str:
    """Job i of `total` at its own time of day, spread evenly over the 86,400 seconds."""
    s = i * 86400 // max(total, 1)
    return f"{s % 60} {s // 60 % 60} {s // 3600} * * *"


# --- Processes ------------------------------------------------------------------------------


def agent_names(ctx: Context) -> list[str]:
    return [f"{ctx.infra.prefix}-a{i + 1}" for i in range(ctx.mode.agents)]


def start(ctx: Context) -> None:
    """Web server, scheduler and agents, started together and waited for."""
    port = free_port()
    ctx.extra["web_url"] = f"http://127.0.0.1:{port}"
    gunicorn = [venv_bin("gunicorn"), "dkronweb.wsgi", "-b", f"127.0.0.1:{port}"]
    gunicorn += ["-w", str(ctx.mode.web_workers), "--log-level", "warning"]
    ctx.start("web", gunicorn)
    ctx.start("scheduler", [python(), "manage.py", "scheduler", "-l", "INFO"])
    for name in agent_names(ctx):
        args = agent_args(name, pool="prefork", concurrency=ctx.mode.concurrency)
        ctx.start(f"agent-{name}", args, DKRON_NODE_NAME=name)
    procs = list(ctx.procs.values())

    def agents_ready() -> bool:
        alive = set(
            Agent.objects.filter(
                left=False, last_heartbeat__gte=utcnow() - timedelta(seconds=15)
            ).values_list("name", flat=True)
        )
        return all(
            n in alive and "ready" in ctx.procs[f"agent-{n}"].log() for n in agent_names(ctx)
        )

    def web_ready() -> bool:
        try:
            return (
                httpx.get(ctx.extra["web_url"] + "/health?scope=process", timeout=2).status_code
                == 200
            )
        except httpx.HTTPError:
            return False

    wait_for(agents_ready, timeout=60, interval=0.2, what="agents to register", procs=procs)
    wait_for(web_ready, timeout=60, interval=0.2, what="the web server", procs=procs)
    wait_for(
        lambda: lease_services.lease_holder() is not None,
        timeout=60,
        interval=0.2,
        what="the scheduler to take the lease",
        procs=procs,
    )
    ctx.extra["scheduler_rss_idle"] = ctx.procs["scheduler"].rss()


def stop(ctx: Context) -> None:
    """SIGKILL: the measurements are over and the database and keys are dropped anyway (a
    clean Celery shutdown takes seconds)."""
    for name in ["web", "scheduler", *(f"agent-{n}" for n in agent_names(ctx))]:
        proc = ctx.procs.pop(name, None)
        if proc is not None:
            proc.kill()


def check_alive(ctx: Context) -> None:
    for proc in ctx.procs.values():
        proc.check()


# --- Seeding and reading ---------------------------------------------------------------------


def seed(
    specs: list[tuple[str, str]], *, tags: dict[str, str] | None = None, batch: int = 5000
) -> tuple[int, int]:
    """Create jobs (name, schedule) with their next run computed; returns their id range."""
    now = utcnow()
    ids: list[int] = []
    for i in range(0, len(specs), batch):
        chunk = []
        for name, schedule in specs[i : i + batch]:
            job = Job(name=name, schedule=schedule, tags=dict(tags or {}), **ECHO)
            job.next_run = compute_next_run(job, after=now)
            chunk.append(job)
        ids += [j.pk for j in Job.objects.bulk_create(chunk)]
    analyze()
    return min(ids), max(ids)


def analyze() -> None:
    """Planner statistics after a bulk load, as autovacuum would have them in production
    (without them PostgreSQL plans the job list as a sort of the whole table)."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _jobs(lo: int, hi: int) -> dict[str, int]:
    """Filter kwargs for the executions of a phase's jobs (their ids are contiguous)."""
    return {"job_id__gte": lo, "job_id__lte": hi}


def retire(lo: int, hi: int) -> None:
    """Disable a phase's jobs and drop its work still queued (an agent then skips the message)."""
    Job.objects.filter(pk__range=(lo, hi)).update(disabled=True)
    Execution.objects.filter(**_jobs(lo, hi), status="queued").update(
        status="skipped", final=True, finished_at=utcnow(), reason="benchmark phase over"
    )


def wait_quiet(ctx: Context, timeout: float = 30.0) -> None:
    """Until no execution is queued or running (the agents are idle for the next phase)."""
    try:
        wait_for(
            lambda: not Execution.objects.filter(status__in=ACTIVE).exists(),
            timeout=timeout,
            interval=0.25,
            what="the agents to go idle",
        )
    except TimeoutError:
        ctx.say("warning: executions still active; going on")


def _executions(lo: int, hi: int, **filters: Any) -> list[dict[str, Any]]:
    fields = ("scheduled_at", "published_at", "started_at", "finished_at", "status")
    rows = Execution.objects.filter(**_jobs(lo, hi), **filters).values(*fields, "run__created_at")
    return [dict(row) for row in rows]


def _sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


# --- Phases ----------------------------------------------------------------------------------


class Sink:
    """A registered agent that never consumes: fires pile up in its queue, so the fire rate
    measures the scheduler alone (recording runs and publishing), not the agents."""

    def __init__(self, ctx: Context) -> None:
        self.name = f"{ctx.infra.prefix}-sink"
        self.instance_id = uuid.uuid4().hex
        self.stopped = threading.Event()
        agent_services.agent_register(
            name=self.name,
            instance_id=self.instance_id,
            tags={**agent_services.builtin_tags(), "bench": "sink"},
            address="127.0.0.1",
            concurrency=1,
        )
        self.thread = threading.Thread(target=self._beat, name="sink-heartbeat", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        try:
            while not self.stopped.wait(1.0):
                agent_services.agent_heartbeat(
                    name=self.name, instance_id=self.instance_id, running=0
                )
        finally:
            connection.close()

    def leave(self, ctx: Context) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        agent_services.agent_leave(name=self.name, instance_id=self.instance_id)
        ctx.infra.redis().delete(f"dkron.node.{self.name}")


def fire_rate(ctx: Context) -> None:
    """N jobs due at the same second, published to an agent that does not consume."""
    n = ctx.mode.due_at_once
    row = ctx.row("fire_rate", ROW_LABELS["fire_rate"])
    sink = Sink(ctx)
    due = datetime.fromtimestamp(math.ceil(time.time() + 1.0 + n / 5000), UTC)
    cpu0 = ctx.procs["scheduler"].cpu_seconds()
    lo, hi = seed([(f"fr-{i}", at_spec(due)) for i in range(n)], tags={"bench": "sink"})
    _sleep_until(due.timestamp())
    try:
        wait_for(
            lambda: (
                Execution.objects.filter(**_jobs(lo, hi), published_at__isnull=False).count() >= n
            ),
            timeout=max(30.0, n / 20),
            interval=0.25,
            what="the fire-rate jobs to be published",
            procs=[ctx.procs["scheduler"]],
        )
    except TimeoutError:
        pass
    finally:
        sink.leave(ctx)
    rows = _executions(lo, hi, published_at__isnull=False)
    cpu = ctx.procs["scheduler"].cpu_seconds() - cpu0
    last = max((ts(r["published_at"]) or 0.0 for r in rows), default=due.timestamp())
    elapsed = max(last - due.timestamp(), 1e-6)
    rate = len(rows) / elapsed
    recorded = [ts(r["run__created_at"]) or 0.0 for r in rows]
    row.dkronweb = fmt_num(rate, "/s")
    row.note(f"{n:,} jobs due at one second")
    row.raw["dkronweb"] = {
        "jobs": n,
        "published": len(rows),
        "seconds_to_publish_all": elapsed if len(rows) >= n else INF,
        "first_recorded_after_due": (min(recorded) - due.timestamp()) if recorded else None,
        "fires_per_s": rate,
        "scheduler_cpu_s": cpu,
        "scheduler_cpu_ms_per_fire": 1000 * cpu / max(len(rows), 1),
    }
    retire(lo, hi)
    ctx.say(f"dkronweb fire rate: {rate:,.0f}/s ({len(rows)}/{n} in {elapsed:.2f}s)")


def skew(ctx: Context, n: int) -> None:
    """N jobs every minute, each at its own second (`S * * * * *`), measured over a window."""
    window = ctx.mode.skew_window
    cap = ctx.mode.baseline_cap
    lo, hi = seed([(f"sk{n}-{i}", f"{i % 60} * * * * *") for i in range(n)])
    w0 = math.ceil(time.time()) + 1
    w1 = w0 + int(window)
    expected = sum(1 for i in range(n) for t in range(w0, w1) if i % 60 == t % 60)
    window_q: dict[str, Any] = {
        "scheduled_at__gte": datetime.fromtimestamp(w0, UTC),
        "scheduled_at__lt": datetime.fromtimestamp(w1, UTC),
    }
    _sleep_until(w1)

    def all_started() -> bool:
        return (
            Execution.objects.filter(**_jobs(lo, hi), started_at__isnull=False, **window_q).count()
            >= expected
        )

    with contextlib.suppress(TimeoutError):
        wait_for(all_started, timeout=cap, interval=0.25, what="the window's runs to start")
    check_alive(ctx)
    rows = _executions(lo, hi, **window_q)
    retire(lo, hi)
    skews: list[float] = []
    recorded: list[float] = []
    published: list[float] = []
    for r in rows:
        sched = ts(r["scheduled_at"]) or 0.0
        started = ts(r["started_at"])
        skews.append(started - sched if started is not None and started - sched <= cap else INF)
        recorded.append((ts(r["run__created_at"]) or 0.0) - sched)
        pub = ts(r["published_at"])
        published.append(pub - sched if pub is not None else INF)
    skews += [INF] * max(0, expected - len(rows))
    s = spread(skews)
    row = ctx.row(f"skew_{n}", f"{ROW_LABELS['skew']} @ {n:,} jobs/min")
    row.dkronweb = fmt_triple(s, cap)
    rec_s, pub_s = spread(recorded), spread(published)
    row.note(
        "dkronweb: spread over the seconds; fire recorded / published p50 "
        f"{fmt_seconds(rec_s['p50'])} / {fmt_seconds(pub_s['p50'])}"
    )
    row.raw["dkronweb"] = {
        "jobs": n,
        "window_s": window,
        "expected_fires": expected,
        "recorded_fires": len(rows),
        "started_within_cap": sum(1 for v in skews if v != INF),
        "skew": s,
        "recorded_lateness": rec_s,
        "published_lateness": pub_s,
    }
    ctx.say(f"dkronweb skew @{n}: {row.dkronweb} ({len(rows)}/{expected} fires)")
    wait_quiet(ctx)


def burst(ctx: Context) -> None:
    """N jobs due at the same second, run by the agents: until all published, all finished."""
    n = ctx.mode.due_at_once
    cap = max(4 * ctx.mode.baseline_cap, 20.0)
    due = datetime.fromtimestamp(math.ceil(time.time() + 1.0 + n / 5000), UTC)
    lo, hi = seed([(f"bu-{i}", at_spec(due)) for i in range(n)])
    _sleep_until(due.timestamp())
    with contextlib.suppress(TimeoutError):
        wait_for(
            lambda: Execution.objects.filter(**_jobs(lo, hi), status__in=DONE).count() >= n,
            timeout=cap,
            interval=0.25,
            what="the burst to finish",
        )
    check_alive(ctx)
    rows = _executions(lo, hi)
    t0 = due.timestamp()
    published = [ts(r["published_at"]) for r in rows]
    finished = [t for r in rows if r["status"] in DONE and (t := ts(r["finished_at"]))]
    all_pub = (max(p for p in published if p) - t0) if len(published) >= n else INF
    if all_pub != INF and any(p is None for p in published):
        all_pub = INF
    all_done = (max(finished) - t0) if len(finished) >= n else INF
    retire(lo, hi)
    pub = ctx.row("burst_published", f"{ROW_LABELS['burst_published']} ({n:,} due at once)")
    fin = ctx.row("burst_finished", f"{ROW_LABELS['burst_finished']} ({n:,} due at once)")
    pub.dkronweb = fmt_seconds(all_pub, cap)
    fin.dkronweb = fmt_seconds(all_done, cap)
    pub.raw["dkronweb"] = {"jobs": n, "seconds": all_pub, "published": len(published)}
    fin.raw["dkronweb"] = {
        "jobs": n,
        "seconds": all_done,
        "finished": len(finished),
        "succeeded": sum(1 for r in rows if r["status"] == "success"),
    }
    # End-to-end throughput with a backlog (the scheduler publishes faster than the agents
    # run): executions finished per second between the 10th and 90th percentile finish.
    rate = rate_between(finished)
    e2e = ctx.row("e2e_rate", ROW_LABELS["e2e_rate"])
    e2e.dkronweb = fmt_num(rate, "/s")
    e2e.note(
        f"{n:,} queued at once, steady state (10th-90th pct); echo executor vs no-op task, "
        f"{ctx.mode.agents}x{ctx.mode.concurrency} prefork both sides"
    )
    e2e.raw["dkronweb"] = {"runs": n, "finished": len(finished), "per_s": rate}
    ctx.say(
        f"dkronweb burst {n}: published {pub.dkronweb}, finished {fin.dkronweb}, "
        f"{rate:,.0f} executions/s"
    )
    wait_quiet(ctx)


def seed_total(ctx: Context) -> None:
    """Fill the table up to `total_jobs` with daily jobs spread over the day."""
    total = ctx.mode.total_jobs
    have = Job.objects.count()
    need = max(0, total - have)
    t0 = time.time()
    names = [f"day-{i:06d}" for i in range(need)]
    seed([(name, daily_spec(i, need)) for i, name in enumerate(names)])
    ctx.extra["day_jobs"] = need
    ctx.extra["seed_seconds"] = time.time() - t0
    ctx.say(f"seeded {need:,} daily jobs in {time.time() - t0:.1f}s ({Job.objects.count():,} jobs)")


def _client(ctx: Context) -> httpx.Client:
    return httpx.Client(
        base_url=ctx.extra["web_url"],
        headers={"Authorization": f"Bearer {ctx.extra['token']}"},
        timeout=60,
    )


def change_latency(ctx: Context) -> None:
    """Change a job's schedule through the API to fire now; time until the fire is recorded."""
    total = Job.objects.count()
    cap = ctx.mode.change_cap
    latencies: list[float] = []
    with _client(ctx) as client:
        for k in range(ctx.mode.changes):
            name = f"day-{k:06d}"
            time.sleep(ctx.rng.uniform(0.1, 1.0))  # sample every phase of the scheduler's tick
            at = utcnow().replace(microsecond=0)
            body = {"name": name, "schedule": f"@at {at.isoformat()}", **ECHO}
            t0 = time.time()
            response = client.post("/v1/jobs", json=body)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"upsert failed: {response.status_code} {response.text[:300]}")

            def fired(name: str = name, at: datetime = at) -> float | None:
                created = (
                    Run.objects.filter(job__name=name, scheduled_at=at)
                    .values_list("created_at", flat=True)
                    .first()
                )
                return ts(created)

            try:
                created = wait_for(fired, timeout=cap, interval=0.005, what="the changed job")
                latencies.append(created - t0)
            except TimeoutError:
                latencies.append(INF)
    s = spread(latencies)
    row = ctx.row("change_latency", f"{ROW_LABELS['change_latency']} @ {total:,} jobs")
    row.dkronweb = " / ".join(fmt_seconds(s[k], cap) for k in ("p50", "max"))
    row.note(f"{len(latencies)} changes; API upsert -> fire recorded (stock: admin save -> sent)")
    row.raw["dkronweb"] = {"jobs": total, "latencies": latencies, **s}
    ctx.say(f"dkronweb change latency: {row.dkronweb}")


def api_latency(ctx: Context) -> None:
    total = Job.objects.count()
    day_jobs = int(ctx.extra.get("day_jobs", 0))
    if day_jobs < 1:
        raise RuntimeError("api_latency needs seed_total first")
    m = ctx.mode.api_requests
    page = ctx.mode.api_page
    rng = ctx.rng
    timings: dict[str, list[float]] = {"list": [], "get": [], "upsert": []}
    errors: dict[str, int] = {"list": 0, "get": 0, "upsert": 0}

    def call(kind: str, method: str, url: str, **kw: Any) -> None:
        t0 = time.perf_counter()
        response = client.request(method, url, **kw)
        timings[kind].append(time.perf_counter() - t0)
        if response.status_code >= 300:
            errors[kind] += 1

    with _client(ctx) as client:
        for _ in range(3):  # warm both workers' connections and caches
            client.get("/v1/jobs?_start=0&_end=10")
            client.get("/v1/jobs/day-000000")
        for _ in range(m):
            start = rng.randrange(0, max(total - page, 1))
            call("list", "GET", f"/v1/jobs?_start={start}&_end={start + page}")
        for _ in range(m):
            call("get", "GET", f"/v1/jobs/day-{rng.randrange(day_jobs):06d}")
        for k in range(m):
            i = rng.randrange(ctx.mode.changes, day_jobs)  # not the jobs changed above
            body = {
                "name": f"day-{i:06d}",
                "schedule": daily_spec(i, day_jobs),
                "displayname": f"upsert {k}",
                **ECHO,
            }
            call("upsert", "POST", "/v1/jobs", json=body)
    for kind, key in (("list", "api_list"), ("get", "api_get"), ("upsert", "api_upsert")):
        s = spread(timings[kind])
        label = ROW_LABELS[key]
        if kind == "list":
            label += f" ({page} jobs)"
        row = ctx.row(key, f"{label} @ {total:,} jobs")
        row.dkronweb = fmt_pair(s)
        row.baseline = "n/a (no API)"
        row.note(
            f"{m} sequential requests, gunicorn -w {ctx.mode.web_workers}"
            + (", random offsets" if kind == "list" else "")
            + (f", {errors[kind]} errors" if errors[kind] else "")
        )
        row.raw["dkronweb"] = {"jobs": total, "errors": errors[kind], **s}
    ctx.say(
        "dkronweb API: "
        + ", ".join(f"{k} {fmt_pair(spread(v))}" for k, v in timings.items())
        + (f" errors {errors}" if any(errors.values()) else "")
    )


def memory(ctx: Context) -> None:
    total = Job.objects.count()
    proc: Proc = ctx.procs["scheduler"]
    rss = proc.rss()
    idle = int(ctx.extra.get("scheduler_rss_idle", 0))
    row = ctx.row("scheduler_rss", f"{ROW_LABELS['scheduler_rss']} @ {total:,} jobs")
    row.dkronweb = f"{rss / 2**20:.0f} MB"
    row.raw["dkronweb"] = {"jobs": total, "rss": rss, "rss_idle_at_start": idle}
    ctx.say(f"dkronweb scheduler RSS {rss / 2**20:.0f} MB (idle at start {idle / 2**20:.0f} MB)")


def run_all(ctx: Context) -> None:
    start(ctx)
    ctx.say("dkronweb: web, scheduler and agents up")
    fire_rate(ctx)
    for n in ctx.mode.skew_sizes:
        skew(ctx, n)
    burst(ctx)
    seed_total(ctx)
    close_old_connections()
    change_latency(ctx)
    api_latency(ctx)
    memory(ctx)
