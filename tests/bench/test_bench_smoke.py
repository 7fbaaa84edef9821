"""Smoke test of the benchmark, and the regression guard.

The quick mode runs end to end in CI and prints every row. The guard (bench/README.md, "The
guard") holds two size-independent ratios of that run against the accepted full-mode figures
(bench/results/accepted-full.json): end to end as a share of raw Celery, and the fire rate as a
multiple of the stock beat's, each measured against its own run's baseline so the machine's
speed cancels out. Its floors (bench/config.py GUARD_FLOORS) are loose enough for a loaded
2-core machine and tight enough to catch a 3x loss; no other figure is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.config import ACCEPTED, GUARD_FLOORS
from bench.report import guard
from tests.harness import ROOT, reachable, require

pytestmark = pytest.mark.e2e

ROW_PREFIXES = [
    "fire rate",
    "fire skew p50 / p99 / max",
    "burst, all published",
    "burst, all finished",
    "change latency",
    "end-to-end executions/s",
    "API GET /v1/jobs page",
    "API GET /v1/jobs/<name>",
    "API upsert",
    "scheduler memory",
    "commits per execution (scheduler / agents)",
    "statements per execution (scheduler / agents)",
]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Any]:
    """One quick-mode run for the module's tests."""
    require(reachable("127.0.0.1", 5432), "PostgreSQL at 127.0.0.1:5432 is needed")
    require(reachable("127.0.0.1", 6379), "Redis at 127.0.0.1:6379 is needed")
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DKRON_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--mode", "quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    return proc, json.loads(out.read_text())


def test_quick_mode_runs_and_prints_the_whole_table(
    quick: tuple[subprocess.CompletedProcess[str], Any],
) -> None:
    proc, result = quick
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    for prefix in ROW_PREFIXES:
        rows = [line for line in table if line.startswith(f"| {prefix}")]
        assert rows, f"no '{prefix}' row in:\n{proc.stdout}"
        # Both columns filled: a figure (or n/a where the stock side has no API).
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert cells[1] and cells[1] != "n/a", rows[0]
        assert cells[2], rows[0]
        # Beside the accepted figures.
        assert cells[3] and cells[4], rows[0]
    assert result["ok"] is True
    assert {r["key"] for r in result["rows"]} >= {"fire_rate", "e2e_rate", "scheduler_rss"}
    # Commits from pg_stat_database, statements from the processes, for each side.
    db = result["extra"]["db_stats"]
    for side in ("scheduler", "agents"):
        assert db[side]["statements_per_execution"] > 0, db[side]
        assert db[side]["commits_per_execution"] >= 0, db[side]
    assert "errors" not in db, db["errors"]


def test_no_large_loss_against_the_accepted_figures(
    quick: tuple[subprocess.CompletedProcess[str], Any],
) -> None:
    proc, result = quick
    accepted = json.loads(Path(ACCEPTED).read_text())
    failures, notes = guard(result, accepted, GUARD_FLOORS)
    assert not failures, "\n".join(failures + notes) + f"\n\n{proc.stdout}"
