"""`python -m bench.history`: the same burst on an empty database and on one with history.

Issue 15, target 1: the fire, publish, claim and finish paths must cost the same with 10,000
or 10,000,000 execution rows in the database, and with 0 or 100,000 queued executions. This
runs one burst (B jobs due at one second, run by real agents) twice, side by side:

1. on an empty database;
2. after seeding, with SQL (not the ORM), N past executions (each with its run): `--per-job`
   of them on every job of the burst itself (a job's own history, below its history_limit),
   the rest on other, disabled jobs; and M queued executions of disabled jobs on the agents,
   committed as published (their messages "in flight"; the scheduler's republish delay is
   raised so the sweep leaves them queued), so they stay queued and are never run.

It prints a table: when the last fire was recorded, published and finished (seconds after
the due second), executions/s, the scheduler's and agents' CPU, and the median time of each
hot statement measured in this process (inside transactions that are rolled back).

It creates its own database (`dkbench_<pid>`, as bench.run does) and Redis keys, and drops
them at the end. Sizes: `--executions N` (default 3,000,000), `--queued M` (100,000),
`--burst B` (10,000), `--per-job K` (50).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from bench import infra
from bench.config import MODES
from bench.context import Context
from bench.procs import Proc, agent_args, python, wait_for
from bench.report import INF, fmt_num, fmt_seconds, rate_between
from bench.run import RESULTS, setup_django

DONE = ("success", "failed", "timeout", "killed", "skipped")
ECHO = {"executor": "echo", "executor_config": {"message": "bench"}}
# The seeded backlog is committed as published: the sweep must not republish it (it would
# run), so the scheduler's republish delay outlasts the benchmark.
ENV = {"DKRON_QUEUED_REPUBLISH_AFTER": "86400", "DKRON_LOG_LEVEL": "WARNING"}


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def utcnow() -> datetime:
    return datetime.now(UTC)


def ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def at_spec(t: datetime) -> str:
    """A cron spec (seconds first) that fires at `t` and then a year later."""
    return f"{t.second} {t.minute} {t.hour} {t.day} {t.month} *"


def tree_cpu(proc: Proc) -> float:
    """CPU seconds of a process and its children (an agent's prefork pool)."""
    total = proc.cpu_seconds()
    with contextlib.suppress(psutil.Error):
        for child in proc.ps.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                t = child.cpu_times()
                total += float(t.user + t.system)
    return total


# --- Processes ------------------------------------------------------------------------------


def agent_names(ctx: Context) -> list[str]:
    return [f"{ctx.infra.prefix}-a{i + 1}" for i in range(ctx.mode.agents)]


def start(ctx: Context) -> None:
    """A scheduler and the agents (no web server: nothing here uses the API)."""
    from jobs.models import Agent
    from jobs.services import lease as lease_services

    ctx.start("scheduler", [python(), "manage.py", "scheduler", "-l", "INFO"], **ENV)
    for name in agent_names(ctx):
        args = agent_args(name, pool="prefork", concurrency=ctx.mode.concurrency)
        ctx.start(f"agent-{name}", args, DKRON_NODE_NAME=name, **ENV)
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

    wait_for(agents_ready, timeout=90, interval=0.2, what="agents to register", procs=procs)
    wait_for(
        lambda: lease_services.lease_holder() is not None,
        timeout=60,
        interval=0.2,
        what="the scheduler to take the lease",
        procs=procs,
    )
    _retention_off()


def _retention_off() -> None:
    """The hourly retention task would trim the seeded history in the middle of a burst."""
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    from jobs.services.retention import PERIODIC_TASK_NAME

    wait_for(
        lambda: PeriodicTask.objects.filter(name=PERIODIC_TASK_NAME).exists(),
        timeout=30,
        what="the retention periodic task",
    )
    PeriodicTask.objects.filter(name=PERIODIC_TASK_NAME).update(enabled=False)
    PeriodicTasks.update_changed()


# --- Seeding --------------------------------------------------------------------------------


def make_jobs(prefix: str, n: int, *, history_limit: int | None = None) -> list[int]:
    """n disabled jobs, in bulk; their ids."""
    from jobs.models import Job

    ids: list[int] = []
    for i in range(0, n, 5000):
        chunk = [
            Job(name=f"{prefix}-{k}", disabled=True, history_limit=history_limit, **ECHO)
            for k in range(i, min(n, i + 5000))
        ]
        ids += [j.pk for j in Job.objects.bulk_create(chunk)]
    return ids


@contextlib.contextmanager
def _bulk_load(tables: list[str]) -> Iterator[Any]:
    """A session for loading millions of rows: the tables' secondary indexes dropped and
    rebuilt after (much faster than maintaining them row by row), foreign-key triggers off
    (the rows are made consistent by construction), asynchronous commit."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            [tables],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        try:
            yield cursor
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")
            for _, definition in indexes:
                cursor.execute(definition)
            cursor.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")
            cursor.execute("ANALYZE")


# (job id, how many past executions) -> runs and executions, finished, oldest a minute apart.
HISTORY_SQL = """
WITH plan AS (
    SELECT * FROM unnest(%(job_ids)s::bigint[], %(counts)s::int[]) AS p(job_id, n)
), made AS (
    INSERT INTO jobs_run (job_id, scheduled_at, trigger, created_at, snapshot, status, finished)
    SELECT p.job_id, %(t0)s - g * interval '1 minute', 'schedule',
        %(t0)s - g * interval '1 minute', '{}'::jsonb,
        CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'success' END, true
    FROM plan p, generate_series(1, p.n) g
    RETURNING id, job_id, scheduled_at, status
)
INSERT INTO jobs_execution (run_id, job_id, job_name, attempt, node_name, placement, queue,
    scheduled_at, queued_at, published_at, not_before, started_at, finished_at, heartbeat_at,
    status, success, output, output_truncated, reason, retryable, kill_requested, final)
SELECT m.id, m.job_id, j.name, 1, %(node)s, 'any', %(queue)s,
    m.scheduled_at, m.scheduled_at, m.scheduled_at, NULL, m.scheduled_at,
    m.scheduled_at + interval '1 second', m.scheduled_at, m.status, m.status = 'success',
    'bench' || chr(10), false, '', true, false, true
FROM made m JOIN jobs_job j ON j.id = m.job_id
"""

# (job id, how many) -> runs and queued executions on the agents in turn, committed as
# published a moment ago.
QUEUED_SQL = """
WITH plan AS (
    SELECT * FROM unnest(%(job_ids)s::bigint[], %(counts)s::int[]) AS p(job_id, n)
), made AS (
    INSERT INTO jobs_run (job_id, scheduled_at, trigger, created_at, snapshot, status, finished)
    SELECT p.job_id, %(t0)s - g * interval '1 second', 'schedule',
        %(t0)s - g * interval '1 second', %(snapshot)s::jsonb, '', false
    FROM plan p, generate_series(1, p.n) g
    RETURNING id, job_id, scheduled_at
)
INSERT INTO jobs_execution (run_id, job_id, job_name, attempt, node_name, placement, queue,
    scheduled_at, queued_at, published_at, not_before, started_at, finished_at, heartbeat_at,
    status, success, output, output_truncated, reason, retryable, kill_requested, final)
SELECT m.id, m.job_id, j.name, 1, n.name, 'any', 'dkron.node.' || n.name,
    m.scheduled_at, m.scheduled_at, %(t0)s, NULL, NULL, NULL, NULL,
    'queued', false, '', false, '', true, false, false
FROM made m JOIN jobs_job j ON j.id = m.job_id
CROSS JOIN LATERAL (
    SELECT (%(nodes)s::text[])[1 + (m.id %% array_length(%(nodes)s::text[], 1))] AS name
) n
"""


def _spread(total: int, jobs: int) -> list[int]:
    base, extra = divmod(total, max(jobs, 1))
    return [base + (1 if i < extra else 0) for i in range(jobs)]


def seed_history(
    ctx: Context, *, burst_ids: list[int], executions: int, per_job: int, queued: int
) -> dict[str, Any]:
    """Past executions on the burst's jobs and on other jobs, and a queued backlog (SQL)."""
    from jobs.models import Execution

    t0 = time.monotonic()
    now = utcnow()
    own = min(executions, per_job * len(burst_ids))
    rest = executions - own
    other_jobs = max(1, min(10_000, rest // 1000)) if rest else 0
    other_ids = make_jobs("past", other_jobs, history_limit=10_000_000) if other_jobs else []
    backlog_jobs = max(1, queued // 100) if queued else 0
    backlog_ids = make_jobs("backlog", backlog_jobs) if backlog_jobs else []
    snapshot = json.dumps({"executor": "echo", "executor_config": {}, "retries": 0})
    plans: list[tuple[list[int], list[int]]] = []
    if own:
        plans += _chunks(burst_ids, _spread(own, len(burst_ids)))
    if rest:
        plans += _chunks(other_ids, _spread(rest, other_jobs))
    node = agent_names(ctx)[0]
    with _bulk_load(["jobs_run", "jobs_execution"]) as cursor:
        for job_ids, counts in plans:
            params: dict[str, Any] = {
                "job_ids": job_ids,
                "counts": counts,
                "t0": now - timedelta(minutes=1),
            }
            params.update(node=node, queue=f"dkron.node.{node}")
            cursor.execute(HISTORY_SQL, params)
            ctx.say(f"  seeded {sum(counts):,} past executions")
    # The backlog comes after the statistics, as in production: 100,000 rows queued in a
    # table of millions do not make autovacuum analyze it again (10% of the rows must change).
    from django.db import connection

    with connection.cursor() as cursor:
        for job_ids, counts in _chunks(backlog_ids, _spread(queued, backlog_jobs)):
            backlog: dict[str, Any] = {"job_ids": job_ids, "counts": counts, "t0": now}
            backlog.update(snapshot=snapshot, nodes=agent_names(ctx))
            cursor.execute(QUEUED_SQL, backlog)
    seconds = time.monotonic() - t0
    total = Execution.objects.count()
    ctx.say(f"seeded: {total:,} executions ({queued:,} queued) in {seconds:.0f}s")
    return {"executions": total, "queued": queued, "seed_seconds": seconds}


def _chunks(
    ids: list[int], counts: list[int], rows: int = 500_000
) -> list[tuple[list[int], list[int]]]:
    """Split (ids, counts) into statements of about `rows` rows each."""
    out: list[tuple[list[int], list[int]]] = []
    cur_ids: list[int] = []
    cur_counts: list[int] = []
    size = 0
    for job_id, n in zip(ids, counts, strict=True):
        if not n:
            continue
        cur_ids.append(job_id)
        cur_counts.append(n)
        size += n
        if size >= rows:
            out.append((cur_ids, cur_counts))
            cur_ids, cur_counts, size = [], [], 0
    if cur_ids:
        out.append((cur_ids, cur_counts))
    return out


# --- The burst ------------------------------------------------------------------------------


def burst(ctx: Context, job_ids: list[int], *, cap: float) -> dict[str, Any]:
    """Make the jobs due at one second; wait until all their executions are finished."""
    from django.db.models import Max, Min

    from jobs.models import Execution, Job

    n = len(job_ids)
    due = datetime.fromtimestamp(math.ceil(time.time() + 2.0), UTC)
    Job.objects.filter(pk__in=job_ids).update(schedule=at_spec(due), next_run=due, disabled=False)
    lo, hi = min(job_ids), max(job_ids)
    # Polled twice a second: by primary key above the rows that existed before the burst, so
    # that the benchmark's own reads do not walk the seeded history.
    watermark = Execution.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    mine = Execution.objects.filter(pk__gt=watermark, job_id__gte=lo, job_id__lte=hi)
    agents = [p for name, p in ctx.procs.items() if name.startswith("agent-")]
    cpu0 = ctx.procs["scheduler"].cpu_seconds(), sum(tree_cpu(p) for p in agents)
    delay = due.timestamp() - time.time()
    if delay > 0:
        time.sleep(delay)
    with contextlib.suppress(TimeoutError):
        wait_for(
            lambda: mine.filter(status__in=DONE).count() >= n,
            timeout=cap,
            interval=0.5,
            what="the burst to finish",
            procs=list(ctx.procs.values()),
        )
    cpu1 = ctx.procs["scheduler"].cpu_seconds(), sum(tree_cpu(p) for p in agents)
    Job.objects.filter(pk__in=job_ids).update(disabled=True)
    t0 = due.timestamp()
    edges = mine.aggregate(
        recorded=Max("run__created_at"), published=Max("published_at"), first=Min("started_at")
    )
    finished = [
        t
        for f in mine.filter(status__in=DONE).values_list("finished_at", flat=True)
        if (t := ts(f)) is not None
    ]
    count = mine.count()
    unpublished = mine.filter(published_at__isnull=True).count()

    def after(value: datetime | None, complete: bool) -> float:
        return (ts(value) or 0.0) - t0 if complete and value is not None else INF

    result = {
        "jobs": n,
        "executions": count,
        "finished": len(finished),
        "recorded_s": after(edges["recorded"], count >= n),
        "published_s": after(edges["published"], count >= n and not unpublished),
        "finished_s": (max(finished) - t0) if len(finished) >= n else INF,
        "per_s": rate_between(finished),
        "scheduler_cpu_s": cpu1[0] - cpu0[0],
        "agents_cpu_s": cpu1[1] - cpu0[1],
    }
    ctx.say(
        f"burst of {n:,}: recorded {fmt_seconds(result['recorded_s'], cap)}, published "
        f"{fmt_seconds(result['published_s'], cap)}, finished "
        f"{fmt_seconds(result['finished_s'], cap)}, {result['per_s']:.0f}/s"
    )
    return result


# --- Statement timings ----------------------------------------------------------------------


class _Rollback(Exception):
    pass


def _timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median ms of `fn` inside a transaction rolled back each time (nothing is published:
    on-commit callbacks of a rolled-back transaction never run)."""
    from django.db import transaction

    times: list[float] = []
    for _ in range(repeat):
        try:
            with transaction.atomic():
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1000)
                raise _Rollback
        except _Rollback:
            pass
    return statistics.median(times)


def statement_timings(job_id: int, *, repeat: int = 15) -> dict[str, float]:
    """The hot statements, each timed alone: firing a batch, the agent's claim and finish
    (of a job with the seeded history), and what the scheduler asks on every tick."""
    from jobs.models import Execution, ExecutionStatus, Job, Run
    from jobs.services import agents, executions, maintenance, runs

    job = Job.objects.get(pk=job_id)
    batch = 100

    def fire() -> None:
        now = utcnow()
        Job.objects.filter(pk=job_id).update(disabled=False, next_run=now, schedule="@every 1h")
        extra = make_jobs(f"t{time.monotonic_ns()}", batch - 1)
        Job.objects.filter(pk__in=extra).update(disabled=False, next_run=now, schedule="@every 1h")
        t0 = time.perf_counter()
        runs.fire_due_jobs(now=now, limit=batch)
        fired.append((time.perf_counter() - t0) * 1000 / batch)

    def new_execution() -> Execution:
        run = Run.objects.create(job=job, snapshot=runs.snapshot_of(job), trigger="manual")
        node = agents.alive_nodes()[0].name
        return Execution.objects.create(
            run=run, job=job, job_name=job.name, node_name=node, queue=f"dkron.node.{node}"
        )

    def claim() -> None:
        execution = new_execution()
        t0 = time.perf_counter()
        executions.execution_claim(execution_id=execution.pk, node_name=execution.node_name)
        claimed.append((time.perf_counter() - t0) * 1000)

    def finish() -> None:
        execution = new_execution()
        row = executions.execution_claim(execution_id=execution.pk, node_name=execution.node_name)
        t0 = time.perf_counter()
        executions.execution_finish(
            execution_id=execution.pk, status=ExecutionStatus.SUCCESS, output="ok", claimed=row
        )
        finished.append((time.perf_counter() - t0) * 1000)

    fired: list[float] = []
    claimed: list[float] = []
    finished: list[float] = []
    out: dict[str, float] = {}
    _timed(fire, repeat)
    out[f"fire, per fire (batches of {batch})"] = statistics.median(fired)
    _timed(claim, repeat)
    out["claim"] = statistics.median(claimed)
    _timed(finish, repeat)
    out["finish"] = statistics.median(finished)
    out["alive nodes with their load"] = _timed(agents.alive_nodes, repeat)
    out["catch-up publish + next slot"] = _timed(
        lambda: (runs.publish_due_catchups(limit=20), runs.seconds_until_next_catchup()), repeat
    )
    out["next due job"] = _timed(runs.seconds_until_next_due, repeat)
    out["sweep"] = _timed(maintenance.sweep, max(3, repeat // 3))
    out["trim one job's history"] = _timed(lambda: executions.trim_history(job=job), repeat)
    return out


# --- Report ---------------------------------------------------------------------------------


def render(empty: dict[str, Any], seeded: dict[str, Any], cap: float) -> str:
    e, s = empty["burst"], seeded["burst"]
    rows: list[tuple[str, str, str]] = [
        (
            "executions in the database before the burst",
            f"{empty['executions']:,}",
            f"{seeded['executions']:,}",
        ),
        ("queued executions before the burst", f"{empty['queued']:,}", f"{seeded['queued']:,}"),
    ]
    for key, label in (
        ("recorded_s", "burst: last fire recorded"),
        ("published_s", "burst: all published"),
        ("finished_s", "burst: all finished"),
    ):
        rows.append((label, fmt_seconds(e[key], cap), fmt_seconds(s[key], cap)))
    rows.append(("end-to-end executions/s", fmt_num(e["per_s"], "/s"), fmt_num(s["per_s"], "/s")))
    for key, label in (("scheduler_cpu_s", "scheduler CPU"), ("agents_cpu_s", "agents' CPU")):
        rows.append((label, f"{e[key]:.1f}s", f"{s[key]:.1f}s"))
    for name, ms in empty["statements"].items():
        rows.append((f"statement: {name}", f"{ms:.2f}ms", f"{seeded['statements'][name]:.2f}ms"))
    headers = ("figure", "empty database", "with history and backlog")
    table = [headers, *rows]
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    out = []
    for i, line in enumerate(table):
        out.append("| " + " | ".join(line[c].ljust(widths[c]) for c in range(3)) + " |")
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__)
    parser.add_argument("--executions", type=int, default=3_000_000, help="past executions")
    parser.add_argument("--queued", type=int, default=100_000, help="queued backlog")
    parser.add_argument("--burst", type=int, default=10_000, help="jobs due at one second")
    parser.add_argument("--per-job", type=int, default=50, help="past executions per burst job")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    mode = dataclasses.replace(
        MODES["quick"], name="history", agents=args.agents, concurrency=args.concurrency
    )
    problem = infra.services_reachable()
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    infra.remove_leftovers()
    inf = infra.make(Path(tempfile.gettempdir()))
    log_dir = inf.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(mode=mode, infra=inf, log_dir=log_dir)
    ctx.say(f"database {inf.db_name}, Redis {inf.broker_url}, logs {log_dir}")
    os.environ.update(ENV)
    cap = max(120.0, args.burst / 20)
    ok = False
    results: dict[str, Any] = {}
    try:
        infra.create_database(inf)
        setup_django(ctx)
        start(ctx)
        ctx.say("scheduler and agents up")
        from jobs.models import Execution

        ids = make_jobs("empty", args.burst)
        empty: dict[str, Any] = {"executions": Execution.objects.count(), "queued": 0}
        empty["burst"] = burst(ctx, ids, cap=cap)
        empty["statements"] = statement_timings(ids[0])
        results["empty"] = empty
        ids = make_jobs("seeded", args.burst)
        seeded = seed_history(
            ctx,
            burst_ids=ids,
            executions=args.executions,
            per_job=args.per_job,
            queued=args.queued,
        )
        seeded["burst"] = burst(ctx, ids, cap=cap)
        seeded["statements"] = statement_timings(ids[0])
        results["seeded"] = seeded
        ok = True
    except (Exception, KeyboardInterrupt) as exc:
        print(f"bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        import traceback

        traceback.print_exc()
    finally:
        ctx.finish(ok=ok, keep_logs=args.keep_logs)
    if not ok:
        return 1
    print(
        f"\nbench.history: burst of {args.burst:,}, {args.agents} agent(s) x {args.concurrency} "
        f"prefork, {os.cpu_count()} cores ({time.monotonic() - ctx.started:.0f}s)\n"
    )
    print(render(results["empty"], results["seeded"], cap))
    out = args.json or RESULTS / "history.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
