"""`python -m bench.million` at a tiny size: the large-table mode runs end to end and prints every
row (no figure is asserted; the figures live in docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import infra
from tests.harness import require

pytestmark = pytest.mark.e2e

ROWS = (
    "seed 3,000 jobs (COPY, then ANALYZE)",
    "scheduler memory (RSS) once up",
    "change latency p50 / max",
    "API GET /v1/jobs page p50 / p99",
    "API GET /v1/jobs/<name> p50 / p99",
    "API upsert p50 / p99",
    "top-of-the-hour burst: 300 due at one second, all published",
    "scheduler memory (RSS) after the phases",
)


def test_the_million_mode_runs_at_a_tiny_size() -> None:
    problem = infra.services_reachable()
    require(problem is None, f"bench.million needs PostgreSQL and Redis: {problem}")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.million",
            "--jobs",
            "3000",
            "--burst",
            "300",
            "--changes",
            "2",
            "--requests",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for label in ROWS:
        assert label in done.stdout, (label, done.stdout)
    assert "top of the hour: 300/300 published" in done.stderr
