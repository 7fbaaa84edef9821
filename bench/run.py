"""`python -m bench.run --mode micro|quick|full`: dkronweb beside stock django-celery-beat.

Starts its own PostgreSQL database (`dkbench_<pid>`), uses Redis database 15 with keys of its
own, starts dkronweb's web server, scheduler and agents, seeds jobs, measures, then does the
same for the baseline (stock `DatabaseScheduler` + raw Celery workers), cleans everything up
and prints one table with each dkronweb figure beside the baseline's, and beside the last
accepted full-mode figures (bench/results/accepted-full.json) as a ratio of ratios. The table
is also written as JSON to bench/results/<mode>.json (or --json). `--guard` exits 3 when a
guarded ratio fell far below the accepted one (bench/config.py GUARD_FLOORS).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import dbstats, infra
from bench.config import ACCEPTED, GUARD_FLOORS, GUARD_MODES, MODES
from bench.context import Context
from bench.procs import ROOT
from bench.report import ROW_LABELS, Row, guard, render, to_json

RESULTS = Path(__file__).resolve().parent / "results"


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def setup_django(ctx: Context) -> None:
    os.environ.update(ctx.infra.env(DKRON_LOG_LEVEL="WARNING"))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from web.api.auth import token_create

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-pass")
    ctx.extra["token"] = token_create(user=user, name="bench")[1]


def ordered_rows(ctx: Context) -> list[Row]:
    order = list(ROW_LABELS)

    def rank(row: Row) -> tuple[int, int]:
        base = row.key.split("_")[0] if row.key.startswith("skew_") else row.key
        size = int(row.key.split("_")[1]) if row.key.startswith("skew_") else 0
        return order.index(base), size

    return sorted(ctx.rows.values(), key=rank)


def measure_phases(db: dbstats.DbStats) -> None:
    """Commits and statements of the phases each side works alone in (bench/dbstats.py)."""
    from bench import baseline, dkron

    # (module, function, phase, idle window first, wait before, wait after): no wait before
    # the burst (what the agents left pending in the skew phase would need 10 s; it is under
    # a second of their work) nor before the stock phase (dkronweb's processes are gone, and
    # a backend flushes as it exits, as the killed stock beat's does after its phase).
    for module, name, phase, idle_first, before, after in (
        (dkron, "fire_rate", "fire_rate", True, dbstats.SETTLE, dbstats.SETTLE),
        (dkron, "burst", "burst", False, 0.0, dbstats.SETTLE_IDLE),
        (baseline, "due_at_once", "stock", False, 0.0, dbstats.SETTLE),
    ):
        fn = getattr(module, name, None)
        if fn is None:
            db.errors.append(f"{module.__name__}.{name} is gone: phase {phase} not measured")
            continue
        wrapped = db.wrap(phase, fn, idle_first, settle_after=after, settle_before=before)
        setattr(module, name, wrapped)
    if hasattr(dkron, "analyze"):
        dkron.analyze = db.wrap_apart(dkron.analyze)


def _raw(ctx: Context, key: str, side: str, field: str) -> int:
    row = ctx.rows.get(key)
    value = row.raw.get(side, {}).get(field) if row else None
    return int(value) if isinstance(value, int | float) else 0


def db_rows(ctx: Context, db: dbstats.DbStats) -> None:
    """The rows `commits per execution` and `statements per execution`."""
    fires = _raw(ctx, "fire_rate", "dkronweb", "published")
    executions = _raw(ctx, "burst_finished", "dkronweb", "finished")
    stock_sent = _raw(ctx, "fire_rate", "baseline", "sent")
    s = db.summary(fires, executions, stock_sent)
    ctx.extra["db_stats"] = s
    sched, agents, stock = s.get("scheduler"), s.get("agents"), s.get("stock_beat")
    if not (sched or agents or stock):
        return

    def pair(what: str) -> tuple[str, dict[str, Any]]:
        a = sched[what] if sched else None
        b = agents[what] if agents else None
        text = " / ".join("n/a" if v is None else f"{v:.2f}" for v in (a, b))
        raw: dict[str, Any] = {"scheduler": a, "agents": b}
        if a is not None and b is not None:
            raw["total_per_execution"] = a + b
        return text, raw

    def verbs(d: dict[str, Any] | None) -> str:
        by = (d or {}).get("statements_by_verb", {})
        return ", ".join(f"{k} {v:,}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:4])

    stock_text = "n/a"
    for key, what, stock_what in (
        ("db_commits", "commits_per_execution", "commits_per_send"),
        ("db_statements", "statements_per_execution", "statements_per_send"),
    ):
        row = ctx.row(key, ROW_LABELS[key])
        row.dkronweb, row.raw["dkronweb"] = pair(what)
        if stock:
            stock_text = f"stock beat {stock[stock_what]:.2f} per send"
            row.raw["baseline"] = {"stock_beat_per_send": stock[stock_what]}
        row.baseline = f"{stock_text}; raw Celery none"
    ctx.rows["db_commits"].note(
        f"pg_stat_database deltas: scheduler over the fire-rate phase ({fires:,} fires), agents "
        f"over the burst ({executions:,}) less the scheduler's share; the idle cluster's rate "
        "and the benchmark's own queries taken off"
    )
    ctx.rows["db_statements"].note(
        "counted in each process (a Django execute wrapper the benchmark loads); scheduler: "
        f"{verbs(sched)}; agents: {verbs(agents)}"
    )
    for err in s.get("errors", []):
        ctx.rows["db_commits"].note(f"error: {err}")


def load_accepted(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"bench: no accepted figures ({path}: {exc})", file=sys.stderr)
        return None
    return data


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for dist in ("celery", "django-celery-beat", "Django", "psycopg", "gunicorn"):
        with contextlib.suppress(Exception):
            out[dist] = version(dist)
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        out["commit"] = commit + ("+dirty" if dirty else "")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument("--only", choices=["dkronweb", "baseline"], default=None)
    parser.add_argument(
        "--baseline-schedule",
        choices=["crontab", "interval"],
        default=None,
        help="how the stock beat's tasks fall due at one instant (default: the mode's)",
    )
    parser.add_argument(
        "--accepted",
        default=str(ACCEPTED),
        help="the accepted result to print beside each figure ('none': no comparison)",
    )
    parser.add_argument(
        "--guard",
        action="store_true",
        help="exit 3 when a guarded ratio fell below its floor against the accepted result",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    mode = MODES[args.mode]
    if args.baseline_schedule:
        mode = dataclasses.replace(mode, baseline_schedule=args.baseline_schedule)

    problem = infra.services_reachable()
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    removed = infra.remove_leftovers()
    data_root = Path(tempfile.gettempdir())
    inf = infra.make(data_root)
    db = dbstats.DbStats(inf, dbstats.enable(inf))
    log_dir = inf.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(mode=mode, infra=inf, log_dir=log_dir, verbose=not args.quiet)
    ctx.extra["load_average_at_start"] = list(os.getloadavg())
    if removed:
        ctx.say(f"removed leftovers of earlier runs: {', '.join(removed)}")
    ctx.say(f"mode {mode.name}: database {inf.db_name}, Redis {inf.broker_url}, logs {log_dir}")
    started_at = datetime.now(UTC)
    ok = False
    error = ""
    try:
        infra.create_database(inf)
        setup_django(ctx)
        ctx.say("database migrated")
        from bench import baseline, dkron

        measure_phases(db)
        if args.only != "baseline":
            dkron.run_all(ctx)
            t0 = time.monotonic()
            dkron.stop(ctx)
            ctx.say(f"dkronweb processes stopped in {time.monotonic() - t0:.1f}s")
        if args.only != "dkronweb":
            baseline.run_all(ctx)
        ok = True
    except (Exception, KeyboardInterrupt) as exc:
        error = f"{type(exc).__name__}: {exc}"
        print(f"bench: failed: {error}", file=sys.stderr)
        import traceback

        traceback.print_exc()
    finally:
        ctx.finish(ok=ok, keep_logs=args.keep_logs)

    try:
        db_rows(ctx, db)
    except Exception as exc:  # a figure less, never the run lost
        print(f"bench: no commits/statements rows: {type(exc).__name__}: {exc}", file=sys.stderr)
    rows = ordered_rows(ctx)
    elapsed = time.monotonic() - ctx.started
    # Other work on the machine skews everything: the 5-minute load average at the end says
    # how busy it was during the run (the bench itself keeps about one core busy).
    ctx.extra["load_average_at_end"] = list(os.getloadavg())
    load0 = ctx.extra["load_average_at_start"][0]
    load5 = ctx.extra["load_average_at_end"][1]
    title = (
        f"dkronweb benchmark, {mode.name} mode ({elapsed:.0f}s; {os.cpu_count()} cores, load "
        f"{load0:.1f} at start, 5-min {load5:.1f} at end; {mode.agents} agent(s) x "
        f"{mode.concurrency} prefork; stock beat = django-celery-beat DatabaseScheduler)"
    )
    accepted = load_accepted(None if args.accepted == "none" else Path(args.accepted))
    print(render(rows, title, accepted))
    checked: dict[str, Any] = {}
    if accepted is not None:
        failures, notes = guard({"rows": to_json(rows)}, accepted, GUARD_FLOORS)
        print()
        print(f"Against {args.accepted} (ratio of ratios: each side against its own run's")
        print("baseline, so the machine's speed cancels out; >1 better):")
        if mode.name not in GUARD_MODES:
            notes = [f"not applied in {mode.name} mode (its sizes are too small for the ratios)"]
            notes += [f"would be: {line}" for line in failures]
            failures = []
        checked = {"failures": failures, "notes": notes, "floors": GUARD_FLOORS}
        for line in failures:
            print(f"  GUARD FAILED {line}")
        for line in notes:
            print(f"  guard: {line}")
    result: dict[str, Any] = {
        "mode": mode.name,
        "ok": ok,
        "error": error,
        "started_at": started_at.isoformat(),
        "seconds": elapsed,
        "cores": os.cpu_count(),
        "versions": _versions(),
        "sizes": {k: v for k, v in vars(mode).items()},
        "extra": {k: v for k, v in ctx.extra.items() if k not in ("token",)},
        "rows": to_json(rows),
        "compared_with": args.accepted if accepted is not None else None,
        "guard": checked,
    }
    out = args.json or RESULTS / f"{mode.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if not ok:
        return 1
    return 3 if args.guard and checked.get("failures") else 0


if __name__ == "__main__":
    sys.exit(main())
