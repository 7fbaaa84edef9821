"""The fault checker's short mode (bench/chaos.py, about 2.5 min) on every CI run: a real
cluster on private PostgreSQL and Redis, each fault kind once on a fixed seed, and nothing lost,
duplicated, stuck or late.

The seed is fixed (CHAOS_SEED, printed first by the checker) so that a failure replays with
`python -m bench.chaos --short --seed <it>`; DKRON_CHAOS_SEED overrides it for a local hunt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.services import postgres_bin_dir
from tests.harness import CI, ROOT, require

pytestmark = pytest.mark.e2e

CHAOS_SEED = 13


def test_short_chaos_run_loses_duplicates_nothing_and_keeps_its_bounds(tmp_path: Path) -> None:
    require(postgres_bin_dir() is not None, "PostgreSQL server binaries (initdb) are needed")
    require(shutil.which("redis-server") is not None, "redis-server is needed")
    seed = os.environ.get("DKRON_CHAOS_SEED", str(CHAOS_SEED))
    out = tmp_path / "chaos-short.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DKRON_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--short", "--seed", seed, "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(proc.stdout)
    detail = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}"
    assert proc.stdout.startswith(f"chaos: seed {seed} "), detail
    assert out.exists(), detail
    result = json.loads(out.read_text())
    assert result["error"] == "", detail
    # The nemesis did what it says: every fault kind, once (the clock jump needs libfaketime,
    # which .ci/run installs: on CI it must be there).
    kinds = sorted(f["kind"] for f in result["faults"])
    assert kinds == sorted(result["kinds"]), kinds
    assert len(kinds) == (9 if CI else len(result["kinds"])) >= 8, kinds
    check = result["check"]
    assert check["expected"] > 100, check["expected"]
    assert check["lost"] == [], detail
    assert check["duplicated"] == [], detail
    assert check["stuck"] == [], detail
    assert check["late"] == [], detail
    assert check["early"] == [], detail
    assert check["misfires"] == [], detail
    assert result["fault_failures"] == [], detail
    assert proc.returncode == 0, detail
