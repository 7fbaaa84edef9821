"""`python -m bench.shards` (`make bench-shards`): firing with 1, 2 and 4 active schedulers.

Issue 15, target 7: schedulers active at once, each firing the jobs of its shards
(DKRON_SCHEDULER_SHARDS). Each round starts S schedulers (one with SHARDS=1, the default, as
the reference; then S = 1, 2, 4 over SHARDS=4), waits until the shards are dealt, and puts
`--burst` jobs due at one second, published to an agent that never consumes (bench.dkron's
Sink), so the figure is the schedulers' alone. It reports when the last fire was published,
fires per second, the schedulers' CPU per fire, PostgreSQL's CPU per fire (every `postgres`
process on this machine, read with psutil: the shared server), and how the fires split over
the schedulers.

On two cores the schedulers and PostgreSQL share the same CPUs, so more schedulers cannot
run faster here; the per-fire costs it measures feed the model in docs/benchmarks.md (where
one, two and eight schedulers saturate a PostgreSQL of a given size).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import infra
from bench.config import MODES
from bench.context import Context
from bench.procs import scheduler_args, wait_for
from bench.run import RESULTS, setup_django

ROUNDS = ((1, 1), (1, 4), (2, 4), (4, 4))  # (schedulers, shards)


def postgres_cpu() -> float:
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("postgres", "postmaster"):
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


def one_round(ctx: Context, schedulers: int, shards: int, burst: int) -> dict[str, Any]:
    from bench.dkron import Sink, at_spec, retire, seed
    from jobs.models import Execution, Lease

    names = [f"s{schedulers}x{shards}-{i}" for i in range(schedulers)]
    env = {"DKRON_SCHEDULER_SHARDS": str(shards), "DKRON_LOG_LEVEL": "INFO"}
    procs = [ctx.start(name, scheduler_args(name), **env) for name in names]

    def dealt() -> bool:
        rows = Lease.objects.filter(name__regex=r"^scheduler(/\d+)?$", expires_at__gt=_now())
        held = {r.name: r.holder for r in rows.exclude(holder="")}
        pids = {h.split(":")[1] for h in held.values()}
        return len(held) == shards and len(pids) == min(schedulers, shards)

    wait_for(dealt, timeout=90, interval=0.2, what="the shards to be dealt", procs=procs)
    time.sleep(2.0)  # the start-up work of every scheduler is over
    sink = Sink(ctx)
    due = datetime.fromtimestamp(math.ceil(time.time() + 2.0 + burst / 5000), UTC)
    lo, hi = seed(
        [(f"{names[0]}-j{i}", at_spec(due)) for i in range(burst)], tags={"bench": "sink"}
    )
    cpu0 = [p.cpu_seconds() for p in procs]
    pg0 = postgres_cpu()
    time.sleep(max(0.0, due.timestamp() - time.time()))
    published = Execution.objects.filter(job_id__gte=lo, job_id__lte=hi, published_at__isnull=False)
    with contextlib.suppress(TimeoutError):
        wait_for(
            lambda: published.count() >= burst,
            timeout=max(60.0, burst / 20),
            interval=0.25,
            what="the burst to be published",
            procs=procs,
        )
    pg = postgres_cpu() - pg0
    cpu = sum(p.cpu_seconds() - c for p, c in zip(procs, cpu0, strict=True))
    last = max(
        (r.timestamp() for r in published.values_list("published_at", flat=True) if r),
        default=due.timestamp(),
    )
    n = published.count()
    elapsed = max(last - due.timestamp(), 1e-6)
    split = Counter(
        int(j) % shards for j in published.values_list("job_id", flat=True)
    )  # fires per shard
    sink.leave(ctx)
    retire(lo, hi)
    ctx.stop(*names)
    result = {
        "schedulers": schedulers,
        "shards": shards,
        "jobs": burst,
        "published": n,
        "seconds_to_publish_all": elapsed if n >= burst else math.inf,
        "fires_per_s": n / elapsed,
        "scheduler_cpu_ms_per_fire": 1000 * cpu / max(n, 1),
        "postgres_cpu_ms_per_fire": 1000 * pg / max(n, 1),
        "fires_per_shard": dict(sorted(split.items())),
    }
    ctx.say(
        f"{schedulers} scheduler(s) over {shards} shard(s): {n}/{burst} in {elapsed:.2f}s "
        f"({n / elapsed:,.0f}/s), scheduler {result['scheduler_cpu_ms_per_fire']:.2f} ms/fire, "
        f"PostgreSQL {result['postgres_cpu_ms_per_fire']:.2f} ms/fire"
    )
    return result


def _now() -> datetime:
    return datetime.now(UTC)


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "| schedulers | shards | published | all published after | fires/s | "
        "scheduler CPU/fire | PostgreSQL CPU/fire |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['schedulers']} | {r['shards']} | {r['published']:,}/{r['jobs']:,} | "
            f"{r['seconds_to_publish_all']:.2f} s | {r['fires_per_s']:,.0f}/s | "
            f"{r['scheduler_cpu_ms_per_fire']:.2f} ms | {r['postgres_cpu_ms_per_fire']:.2f} ms |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shards", description=__doc__)
    parser.add_argument("--burst", type=int, default=10_000, help="jobs due at one second")
    parser.add_argument(
        "--rounds",
        default=",".join(f"{s}x{n}" for s, n in ROUNDS),
        help="schedulers x shards of each round, comma-separated",
    )
    parser.add_argument("--json", type=Path, default=None)
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
    ctx = Context(mode=MODES["quick"], infra=inf, log_dir=log_dir)
    results: list[dict[str, Any]] = []
    ok = False
    try:
        infra.create_database(inf)
        setup_django(ctx)
        for spec in args.rounds.split(","):
            schedulers, _, shards = spec.partition("x")
            results.append(one_round(ctx, int(schedulers), int(shards), args.burst))
        ok = True
    except (Exception, KeyboardInterrupt) as exc:
        print(f"bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        ctx.finish(ok=ok, keep_logs=args.keep_logs)
    if not ok:
        return 1
    print(
        f"\nbench.shards: a burst of {args.burst:,} due at one second, {os.cpu_count()} cores "
        f"({time.monotonic() - ctx.started:.0f}s)\n"
    )
    print(render(results))
    out = args.json or RESULTS / "shards.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
