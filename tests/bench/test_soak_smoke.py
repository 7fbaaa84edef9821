"""Smoke test of the soak: its micro mode (about 20 s of load, one agent killed midway) runs
end to end in the suite, and nothing is lost, duplicated or stuck.

No speed assertions: the latency figures are for people (SPEC 12), not a pass/fail threshold.
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


def test_micro_soak_loses_duplicates_and_leaves_nothing_stuck(tmp_path: Path) -> None:
    require(reachable("127.0.0.1", 5432), "PostgreSQL at 127.0.0.1:5432 is needed")
    require(reachable("127.0.0.1", 6379), "Redis at 127.0.0.1:6379 is needed")
    out = tmp_path / "soak-micro.json"
    # The soak makes its own database and uses its own Redis database: none of the suite's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DKRON_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--mode", "micro", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    print(proc.stdout)
    detail = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    assert out.exists(), detail
    result = json.loads(out.read_text())
    assert result["error"] == "", detail
    acc = result["accounting"]
    assert result["lost"] == 0, acc["lost"]
    assert result["duplicated"] == 0, acc["duplicated"]
    assert result["stuck"] == 0, acc["stuck"]
    assert result["api"]["errors"] == 0, result["api"]["error_samples"]
    # The soak did what it says: jobs fired, the API was used, the fault was injected.
    assert acc["runs_by_trigger"].get("schedule", 0) > 0
    assert acc["side_effect_lines"] > 0
    assert result["api"]["requests"] > 0
    assert result["fault"].get("node")
    assert proc.returncode == 0, detail
    assert "| **LOST**" in proc.stdout
