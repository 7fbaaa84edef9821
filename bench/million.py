"""`python -m bench.million [--jobs N] [--burst B]`: dkronweb with a million jobs on one PostgreSQL.

Issue 15's large-table mode, apart from `bench.run` because it has no stock side worth running
(the stock beat takes minutes to load 100,000 tasks, see docs/benchmarks.md) and because its
seeding alone outlasts a quick run. One run, in its own database (`dkbench_<pid>`, dropped at the
end) and Redis keys, like `bench.run`:

1. N daily jobs, each at its own second of the day, written with PostgreSQL's COPY (rows built
   from the model's own defaults and `get_db_prep_save`, `next_run` computed as the scheduler
   would), then ANALYZE;
2. the production roles (gunicorn, a scheduler, agents) started on that table: the scheduler's
   RSS once it is up and after the phases below;
3. change latency (API upsert to fire recorded), and list / get / upsert latencies, as
   `bench.run` measures them (`bench.dkron`);
4. a top-of-the-hour burst: B more jobs due at one second, targeted at a registered agent that
   does not consume (as `bench.run`'s fire-rate row), so the figure is the scheduler's: until
   every fire is recorded and published, and each publish's lag after its fire's start;
5. the same burst with `--jitter` seconds (default 60) of jitter on each job (issue 16), which
   spreads the fires over that window.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import infra
from bench.config import MODES
from bench.context import Context
from bench.report import INF, fmt_num, fmt_seconds, render

SINK_TAGS = {"bench": "sink"}


def _template_values(connection: Any, fields: list[Any]) -> dict[str, Any]:
    """Every column of a default job as the database stores it (the echo executor's config)."""
    from bench.dkron import ECHO
    from jobs.models import Job

    now = datetime.now(UTC)
    job = Job(name="template", schedule="0 0 0 * * *", **ECHO)
    job.created_at = job.updated_at = now
    return {str(f.column): f.get_db_prep_save(getattr(job, f.attname), connection) for f in fields}


def _next_daily(second_of_day: int, now: datetime) -> datetime:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    at = midnight + timedelta(seconds=second_of_day)
    return at if at > now else at + timedelta(days=1)


def copy_jobs(
    rows: list[tuple[str, str, datetime]],
    *,
    tags: dict[str, str] | None = None,
    jitter: float = 0.0,
) -> None:
    """COPY jobs (name, schedule, next fire) into the job table, every other column a default;
    with `jitter`, each job's next fire starts at its offset as the services store it."""
    from django.db import connection

    from jobs import timing
    from jobs.models import Job

    fields = [f for f in Job._meta.concrete_fields if f.column != "id"]
    values = _template_values(connection, fields)
    if tags:
        tags_field = Job._meta.get_field("tags")
        values["tags"] = tags_field.get_db_prep_save(dict(tags), connection)
    values["jitter"] = jitter
    columns = [str(f.column) for f in fields]
    template = [values[c] for c in columns]
    i_name, i_schedule, i_next, i_scheduled = (
        columns.index("name"),
        columns.index("schedule"),
        columns.index("next_run"),
        columns.index("next_scheduled"),
    )
    quoted = ", ".join(f'"{c}"' for c in columns)
    sql = f'COPY "{Job._meta.db_table}" ({quoted}) FROM STDIN'
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        for name, schedule, scheduled in rows:
            row = list(template)
            start: datetime | None = scheduled
            key: datetime | None = None
            if jitter:
                start, key = timing.next_fields(Job(name=name, jitter=jitter), scheduled)
            row[i_name], row[i_schedule], row[i_next], row[i_scheduled] = (
                name,
                schedule,
                start,
                key,
            )
            copy.write_row(row)


def seed_daily(ctx: Context, n: int) -> None:
    """N daily jobs named `day-000000`... (the names `bench.dkron`'s phases use)."""
    from bench.dkron import analyze

    now = datetime.now(UTC)
    t0 = time.monotonic()
    batch = 100_000
    for lo in range(0, n, batch):
        rows = []
        for i in range(lo, min(n, lo + batch)):
            s = i * 86400 // n
            spec = f"{s % 60} {s // 60 % 60} {s // 3600} * * *"
            rows.append((f"day-{i:06d}", spec, _next_daily(s, now)))
        copy_jobs(rows)
    copied = time.monotonic() - t0
    analyze()
    ctx.extra["day_jobs"] = n
    ctx.extra["seed_seconds"] = time.monotonic() - t0
    row = ctx.row("seed", f"seed {n:,} jobs (COPY, then ANALYZE)")
    row.dkronweb = fmt_seconds(ctx.extra["seed_seconds"])
    row.note(f"COPY {copied:.1f}s, {n / max(copied, 1e-6):,.0f} rows/s")
    row.raw["dkronweb"] = {"jobs": n, "seconds": ctx.extra["seed_seconds"], "copy_seconds": copied}
    ctx.say(f"seeded {n:,} jobs in {ctx.extra['seed_seconds']:.1f}s (COPY {copied:.1f}s)")


def top_of_hour(ctx: Context, n: int, *, jitter: float = 0.0) -> None:
    """N more jobs due at one second, published to an agent that does not consume.

    With `jitter` (issue 16) the same burst with each job's fires spread over that window:
    besides the time until all are published, the lag of each publish after its own fire's
    start (scheduled time + offset), which is what a job waiting for its start sees."""
    from bench.dkron import Sink, analyze, retire, ts
    from bench.procs import wait_for
    from jobs import timing
    from jobs.models import Execution, Job

    sink = Sink(ctx)
    prefix = f"top{int(jitter)}-"
    due = datetime.fromtimestamp(math.ceil(time.time() + 5.0 + n / 20_000), UTC)
    spec = f"{due.second} {due.minute} {due.hour} * * *"
    copy_jobs([(f"{prefix}{i:06d}", spec, due) for i in range(n)], tags=SINK_TAGS, jitter=jitter)
    analyze()
    ids = Job.objects.filter(name__startswith=prefix).values_list("id", flat=True)
    lo, hi = min(ids), max(ids)
    cpu0 = ctx.procs["scheduler"].cpu_seconds()
    cap = max(120.0, n / 200) + jitter
    try:
        wait_for(
            lambda: (
                Execution.objects.filter(
                    job_id__gte=lo, job_id__lte=hi, published_at__isnull=False
                ).count()
                >= n
            ),
            timeout=cap,
            interval=1.0,
            what="the top-of-the-hour fires to be published",
            procs=[ctx.procs["scheduler"]],
        )
    except TimeoutError:
        pass
    finally:
        sink.leave(ctx)
    rows = list(
        Execution.objects.filter(
            job_id__gte=lo, job_id__lte=hi, published_at__isnull=False
        ).values_list("job_name", "published_at")
    )
    published = [p for _, p in rows]
    cpu = ctx.procs["scheduler"].cpu_seconds() - cpu0
    last = max((ts(p) or 0.0 for p in published), default=due.timestamp())
    elapsed = last - due.timestamp() if len(published) >= n else INF
    rate = len(published) / max(last - due.timestamp(), 1e-6)
    lags = sorted(
        (p - timing.fire_start(Job(name=name, jitter=jitter), due)).total_seconds()
        for name, p in rows
        if p is not None
    )
    p50, p99 = (_quantile(lags, q) for q in (0.5, 0.99))
    key = "top_of_hour" if not jitter else f"top_of_hour_jitter_{int(jitter)}"
    spread = f" with jitter {jitter:g}s" if jitter else ""
    row = ctx.row(key, f"top-of-the-hour burst: {n:,} due at one second{spread}, all published")
    row.dkronweb = fmt_seconds(elapsed, cap)
    row.note(
        f"publish lag after each fire's start p50 {fmt_seconds(p50)} / p99 {fmt_seconds(p99)};"
        f" {fmt_num(rate, '/s')}, scheduler CPU {1000 * cpu / max(len(published), 1):.2f} ms/fire"
    )
    row.raw["dkronweb"] = {
        "jobs": n,
        "jitter": jitter,
        "published": len(published),
        "seconds": elapsed,
        "fires_per_s": rate,
        "scheduler_cpu_s": cpu,
        "lag_p50": p50,
        "lag_p99": p99,
    }
    retire(lo, hi)
    ctx.say(f"top of the hour: {len(published):,}/{n:,} published in {row.dkronweb}")


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return INF
    return values[min(len(values) - 1, int(q * len(values)))]


def scheduler_memory(ctx: Context, key: str, when: str) -> None:
    from jobs.models import Job

    rss = ctx.procs["scheduler"].rss()
    row = ctx.row(key, f"scheduler memory (RSS) {when} @ {Job.objects.count():,} jobs")
    row.dkronweb = f"{rss / 2**20:.0f} MB"
    row.raw["dkronweb"] = {"rss": rss}
    ctx.say(f"scheduler RSS {when}: {rss / 2**20:.0f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.million", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=10, help="API changes timed")
    parser.add_argument("--requests", type=int, default=300, help="API requests per kind")
    parser.add_argument(
        "--jitter",
        type=float,
        default=60.0,
        help="seconds: the burst again with this jitter window (issue 16); 0 to skip it",
    )
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    problem = infra.services_reachable()
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 2
    infra.remove_leftovers()
    inf = infra.make(Path(tempfile.gettempdir()))
    log_dir = inf.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    mode = dataclasses.replace(
        MODES["full"],
        name="million",
        total_jobs=args.jobs,
        skew_sizes=(args.burst,),
        changes=args.changes,
        api_requests=args.requests,
    )
    ctx = Context(mode=mode, infra=inf, log_dir=log_dir)
    ok = False
    try:
        infra.create_database(inf)
        from bench.run import setup_django

        setup_django(ctx)
        from django.db import close_old_connections

        from bench import dkron

        seed_daily(ctx, args.jobs)
        dkron.start(ctx)
        scheduler_memory(ctx, "rss_start", "once up")
        close_old_connections()
        dkron.change_latency(ctx)
        dkron.api_latency(ctx)
        top_of_hour(ctx, args.burst)
        if args.jitter > 0:
            top_of_hour(ctx, args.burst, jitter=args.jitter)
        scheduler_memory(ctx, "rss_end", "after the phases")
        ok = True
    finally:
        ctx.finish(ok=ok, keep_logs=args.keep_logs)
    elapsed = time.monotonic() - ctx.started
    print(
        render(
            list(ctx.rows.values()),
            f"dkronweb with {args.jobs:,} jobs ({elapsed:.0f}s; {os.cpu_count()} cores; "
            f"{mode.agents} agent(s) x {mode.concurrency} prefork, gunicorn -w {mode.web_workers})",
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
