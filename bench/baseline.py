"""The baseline, measured in the same run: stock django-celery-beat `DatabaseScheduler` with
PeriodicTasks, and raw Celery no-op tasks, on the same PostgreSQL, Redis and machine.

The stock scheduler has no seconds field, so "N tasks every minute" is N tasks due at the same
instant each minute (`* * * * *`). Its rows: fire rate (sends per second while they are due),
skew (no-op start minus the due instant), time until all sent and all run, time from a change
saved as the admin saves it until the changed task is sent, and the beat's memory. Import after
django.setup().
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)

from bench import baseline_app
from bench.context import Context
from bench.procs import Proc, venv_bin, wait_for, wait_idle
from bench.report import (
    INF,
    ROW_LABELS,
    fmt_num,
    fmt_seconds,
    fmt_triple,
    rate_between,
    spread,
)

LOAD_PER_TASK = 0.0006  # seconds the stock beat needs per task to load, with a margin


def worker_names(ctx: Context) -> list[str]:
    return [f"{ctx.infra.prefix}-w{i + 1}" for i in range(ctx.mode.agents)]


def _celery() -> list[str]:
    return [venv_bin("celery"), "-A", "bench.baseline_app"]


def spawn_workers(ctx: Context) -> None:
    for name in worker_names(ctx):
        args = _celery() + ["worker", "-Q", baseline_app.QUEUE, "-n", f"{name}@%h"]
        args += ["--pool", "prefork", "-c", str(ctx.mode.concurrency)]
        args += ["--without-mingle", "--without-gossip", "-l", "WARNING"]
        ctx.start(f"worker-{name}", args, DKBENCH_ROLE="baseline", DKRON_LOG_LEVEL="WARNING")


def start_beat(ctx: Context) -> Proc:
    args = _celery() + ["beat", "-S", "django_celery_beat.schedulers:DatabaseScheduler"]
    args += ["-l", "INFO", "-s", str(ctx.infra.data_dir / "celerybeat-schedule")]
    return ctx.start("beat", args, DKBENCH_ROLE="baseline", DKRON_LOG_LEVEL="INFO")


def kill_beat(ctx: Context) -> None:
    """SIGKILL: its measurement is over, and a clean stop writes back every entry it sent."""
    proc = ctx.procs.pop("beat", None)
    if proc is not None:
        proc.kill()


def delete_tasks(prefix: str) -> None:
    """One DELETE (a queryset delete sends a change signal per row)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {PeriodicTask._meta.db_table} WHERE name LIKE %s",
            [prefix + "%"],
        )


def stop_all(ctx: Context) -> None:
    ctx.stop("beat", *(f"worker-{n}" for n in worker_names(ctx)))


def _parse(lines: list[Any]) -> dict[int, float]:
    out: dict[int, float] = {}
    for line in lines:
        text = line.decode() if isinstance(line, bytes) else str(line)
        key, _, t = text.partition(" ")
        out.setdefault(int(key), float(t))  # the first time a key was seen
    return out


def starts(ctx: Context, phase: str) -> dict[int, float]:
    key = baseline_app.start_key(ctx.infra.prefix, phase)
    return _parse(ctx.infra.redis().lrange(key, 0, -1))


def sends(ctx: Context, phase: str) -> dict[int, float]:
    key = baseline_app.sent_key(ctx.infra.prefix, phase)
    return _parse(ctx.infra.redis().lrange(key, 0, -1))


def send_noops(ctx: Context, phase: str, n: int) -> None:
    task = baseline_app.noop
    with baseline_app.app.producer_or_acquire() as producer:  # type: ignore[attr-defined]
        for i in range(n):
            task.apply_async(args=(phase, i), queue=baseline_app.QUEUE, producer=producer)


def drop_queue(ctx: Context) -> None:
    """Drop messages not yet consumed (a phase is over) and let the workers go idle."""
    ctx.infra.redis().delete(baseline_app.QUEUE)
    time.sleep(0.5)


def prefill(ctx: Context) -> None:
    """Queue the end-to-end no-ops before any worker runs, so the workers start on a backlog
    (as dkronweb's agents do in the burst) and the rate is the workers', not the sender's."""
    t0 = time.time()
    send_noops(ctx, "e2e", ctx.mode.due_at_once)
    ctx.extra["baseline_prefill_seconds"] = time.time() - t0


def e2e(ctx: Context) -> None:
    """Raw Celery: N no-op tasks run by the same number of prefork processes as the agents;
    no-ops started per second between the 10th and 90th percentile start."""
    n = ctx.mode.due_at_once
    cap = max(4 * ctx.mode.baseline_cap, 20.0)
    with contextlib.suppress(TimeoutError):
        wait_for(
            lambda: len(starts(ctx, "e2e")) >= n,
            timeout=cap,
            interval=0.1,
            what="no-ops",
            procs=[p for name, p in ctx.procs.items() if name.startswith("worker-")],
        )
    done = starts(ctx, "e2e")
    rate = rate_between(list(done.values()))
    row = ctx.row("e2e_rate", ROW_LABELS["e2e_rate"])
    row.baseline = fmt_num(rate, "/s")
    row.raw["baseline"] = {
        "tasks": n,
        "ran": len(done),
        "seconds": max(done.values(), default=0.0) - min(done.values(), default=0.0),
        "per_s": rate,
    }
    ctx.say(f"raw Celery e2e: {rate:,.0f}/s ({len(done)}/{n})")
    drop_queue(ctx)


def _due_instant(ctx: Context, lead: float) -> tuple[datetime, timedelta]:
    """The instant all tasks fall due, and the last_run_at offset that makes them due then."""
    earliest = time.time() + lead
    if ctx.mode.baseline_schedule == "crontab":
        due = math.ceil(earliest / 60) * 60
        return datetime.fromtimestamp(due, UTC), timedelta(seconds=30)
    return datetime.fromtimestamp(math.ceil(earliest), UTC), timedelta(seconds=60)


def due_at_once(ctx: Context, n: int) -> None:
    """N PeriodicTasks due at the same instant: skew, sends per second, all sent, all run."""
    phase = f"due{n}"
    cap = ctx.mode.baseline_cap
    crontab = ctx.mode.baseline_schedule == "crontab"
    lead = 2.5 + n * LOAD_PER_TASK
    due, before = _due_instant(ctx, lead)
    kind: dict[str, Any]
    if crontab:
        cron, _ = CrontabSchedule.objects.get_or_create(
            minute="*", hour="*", day_of_week="*", day_of_month="*", month_of_year="*"
        )
        kind = {"crontab": cron}
    else:
        interval, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
        kind = {"interval": interval}
    PeriodicTask.objects.bulk_create(
        [
            PeriodicTask(
                name=f"{ctx.infra.prefix}-{phase}-{i}",
                task=baseline_app.TASK_NAME,
                args=json.dumps([phase, i]),
                last_run_at=due - before,
                **kind,
            )
            for i in range(n)
        ],
        batch_size=5000,
    )
    beat = start_beat(ctx)
    loaded = wait_idle(beat, timeout=max(due.timestamp() - time.time(), 0) + 30, cpu_below=0.2)
    late_load = time.time() > due.timestamp()
    if late_load:
        ctx.say(f"warning: the stock beat finished loading after the due instant ({loaded:.1f}s)")
    end = due.timestamp() + cap
    while time.time() < end and len(starts(ctx, phase)) < n:
        beat.check()
        time.sleep(0.25)
    time.sleep(0.3)  # the send log is flushed every 100 ms
    sent = sends(ctx, phase)
    ran = starts(ctx, phase)
    kill_beat(ctx)
    delete_tasks(f"{ctx.infra.prefix}-{phase}-")
    drop_queue(ctx)

    t0 = due.timestamp()
    skews = [(t - t0) if t - t0 <= cap else INF for t in ran.values()]
    skews += [INF] * (n - len(ran))
    s = spread(skews)
    sent_in_cap = [t for t in sent.values() if t - t0 <= cap]
    last_sent = max(sent_in_cap, default=t0)
    rate = len(sent_in_cap) / max(last_sent - t0, 1e-6) if sent_in_cap else 0.0
    row = ctx.row(f"skew_{n}", f"{ROW_LABELS['skew']} @ {n:,} jobs/min")
    row.baseline = fmt_triple(s, cap)
    how = "crontab * * * * *" if crontab else "60 s interval phased to one instant"
    within = sum(1 for v in skews if v != INF)
    row.note(f"stock: all {n:,} due at one instant ({how}), {within:,} ran within {cap:g}s")
    row.raw["baseline"] = {
        "tasks": n,
        "schedule": how,
        "load_seconds": loaded,
        "loaded_after_due": late_load,
        "sent_within_cap": len(sent_in_cap),
        "ran_within_cap": within,
        "skew": s,
    }
    ctx.say(f"stock skew @{n}: {row.baseline} (sent {len(sent_in_cap)}, ran {len(ran)})")
    if n != ctx.mode.due_at_once:
        return
    fr = ctx.row("fire_rate", ROW_LABELS["fire_rate"])
    fr.baseline = fmt_num(rate, "/s")
    fr.raw["baseline"] = {"tasks": n, "sent": len(sent_in_cap), "sends_per_s": rate}
    fr.note(f"stock: {n:,} PeriodicTasks due at one instant, sends/s within {cap:g}s")
    all_sent = (last_sent - t0) if len(sent_in_cap) >= n else INF
    all_ran = (max(ran.values()) - t0) if len(ran) >= n and max(ran.values()) - t0 <= cap else INF
    pub = ctx.row("burst_published", f"{ROW_LABELS['burst_published']} ({n:,} due at once)")
    fin = ctx.row("burst_finished", f"{ROW_LABELS['burst_finished']} ({n:,} due at once)")
    pub.baseline = fmt_seconds(all_sent, cap)
    fin.baseline = fmt_seconds(all_ran, cap)
    pub.raw["baseline"] = {"tasks": n, "seconds": all_sent, "sent": len(sent_in_cap)}
    fin.raw["baseline"] = {"tasks": n, "seconds": all_ran, "ran": len(ran)}


def _daily_crontabs(total: int) -> dict[tuple[int, int], CrontabSchedule]:
    wanted = {((i * 86400 // total) // 60 % 60, (i * 86400 // total) // 3600) for i in range(total)}
    CrontabSchedule.objects.bulk_create(
        [
            CrontabSchedule(
                minute=str(m), hour=str(h), day_of_week="*", day_of_month="*", month_of_year="*"
            )
            for m, h in sorted(wanted)
        ],
        batch_size=2000,
    )
    return {
        (int(c.minute), int(c.hour)): c
        for c in CrontabSchedule.objects.exclude(minute="*").exclude(hour="*")
        if c.minute.isdigit() and c.hour.isdigit()
    }


def change_and_memory(ctx: Context) -> None:
    """`total_jobs` daily PeriodicTasks: the beat's memory once loaded, and change latency."""
    total = ctx.mode.total_jobs
    phase = "chg"
    crons = _daily_crontabs(total)
    tasks = []
    for i in range(total):
        s = i * 86400 // total
        tasks.append(
            PeriodicTask(
                name=f"{ctx.infra.prefix}-day-{i:06d}",
                task=baseline_app.TASK_NAME,
                args=json.dumps([phase, i]),
                crontab=crons[(s // 60 % 60, s // 3600)],
            )
        )
    t0 = time.time()
    PeriodicTask.objects.bulk_create(tasks, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have it in production
    ctx.say(f"seeded {total:,} PeriodicTasks in {time.time() - t0:.1f}s")
    hour = datetime.now(UTC).hour
    near = {(hour + d) % 24 for d in range(-2, 3)} | {4}
    loadable = sum(1 for i in range(total) if (i * 86400 // total) // 3600 in near)

    beat = start_beat(ctx)
    cap = ctx.mode.baseline_load_cap
    load_s = wait_idle(beat, timeout=cap, cpu_below=0.2)
    loaded = load_s < cap
    rss = beat.rss()
    mem = ctx.row("scheduler_rss", f"{ROW_LABELS['scheduler_rss']} @ {total:,} jobs")
    mem.baseline = f"{rss / 2**20:.0f} MB" + ("" if loaded else f" (still loading at {cap:g}s)")
    mem.note(f"stock beat loaded ~{loadable:,} of {total:,} in {load_s:.1f}s (+-2h partial load)")
    mem.raw["baseline"] = {
        "tasks": total,
        "rss": rss,
        "load_seconds": load_s,
        "loaded": loaded,
        "loadable": loadable,
    }
    ctx.say(f"stock beat RSS {rss / 2**20:.0f} MB after {load_s:.1f}s loading")

    latencies: list[float] = []
    change_cap = ctx.mode.change_cap
    for k in range(ctx.mode.changes):
        time.sleep(ctx.rng.uniform(0.1, 1.0))
        task = PeriodicTask.objects.get(name=f"{ctx.infra.prefix}-day-{k:06d}")
        task.crontab = None
        task.clocked = ClockedSchedule.objects.create(clocked_time=datetime.now(UTC))
        task.one_off = True
        t_change = time.time()
        task.save()  # what the admin does; its signal marks the schedule changed

        def seen(k: int = k) -> float | None:
            return sends(ctx, phase).get(k)

        try:
            sent_at = wait_for(seen, timeout=change_cap, interval=0.02, what="the changed task")
            latencies.append(sent_at - t_change)
        except TimeoutError:
            latencies.append(INF)
            break  # the next change would wait just as long
        beat.check()
    kill_beat(ctx)
    drop_queue(ctx)
    lat = spread(latencies)
    row = ctx.row("change_latency", f"{ROW_LABELS['change_latency']} @ {total:,} jobs")
    row.baseline = " / ".join(fmt_seconds(lat[k], change_cap) for k in ("p50", "max"))
    row.raw["baseline"] = {"tasks": total, "latencies": latencies, **lat}
    ctx.say(f"stock change latency: {row.baseline}")


def run_all(ctx: Context) -> None:
    prefill(ctx)
    spawn_workers(ctx)
    e2e(ctx)
    for n in ctx.mode.skew_sizes:
        due_at_once(ctx, n)
    change_and_memory(ctx)
    stop_all(ctx)
