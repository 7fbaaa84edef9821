"""Smoke test of the benchmark: its quick mode runs end to end in CI and prints every row.

No speed assertions: the figures are for people (SPEC 12), not for a pass/fail threshold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
]


def test_quick_mode_runs_and_prints_the_whole_table(tmp_path: Path) -> None:
    require(reachable("127.0.0.1", 5432), "PostgreSQL at 127.0.0.1:5432 is needed")
    require(reachable("127.0.0.1", 6379), "Redis at 127.0.0.1:6379 is needed")
    out = tmp_path / "quick.json"
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
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    for prefix in ROW_PREFIXES:
        rows = [line for line in table if line.startswith(f"| {prefix}")]
        assert rows, f"no '{prefix}' row in:\n{proc.stdout}"
        # Both columns filled: a figure (or n/a where the stock side has no API).
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert cells[1] and cells[1] != "n/a", rows[0]
        assert cells[2], rows[0]
    result = json.loads(out.read_text())
    assert result["ok"] is True
    assert {r["key"] for r in result["rows"]} >= {"fire_rate", "e2e_rate", "scheduler_rss"}
