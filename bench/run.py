"""`python -m bench.run --mode micro|quick|full`: dkronweb beside stock django-celery-beat.

Starts its own PostgreSQL database (`dkbench_<pid>`), uses Redis database 15 with keys of its
own, starts dkronweb's web server, scheduler and agents, seeds jobs, measures, then does the
same for the baseline (stock `DatabaseScheduler` + raw Celery workers), cleans everything up
and prints one table with each dkronweb figure beside the baseline's. The table is also
written as JSON to bench/results/<mode>.json (or --json).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import infra
from bench.config import MODES
from bench.context import Context
from bench.procs import ROOT
from bench.report import ROW_LABELS, Row, render, to_json

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
        ctx.stop_all()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with contextlib.suppress(Exception):
            infra.cleanup(inf)
        if ok and not args.keep_logs:
            shutil.rmtree(inf.data_dir, ignore_errors=True)
        elif not ok:
            print(f"bench: logs kept in {log_dir}", file=sys.stderr)

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
    print(render(rows, title))
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
    }
    out = args.json or RESULTS / f"{mode.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
