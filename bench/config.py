"""Sizes and time caps of each benchmark mode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The last accepted full-mode result (the JSON `python -m bench.run --mode full` writes): every
# run prints its figures beside these.
ACCEPTED = Path(__file__).resolve().parent / "results" / "accepted-full.json"

# The regression guard (`--guard`; tests/bench/test_bench_smoke.py runs the quick mode with it):
# a measure fails when its score against the accepted full-mode run (>1 better) falls below its
# floor. Only measures that do not depend on the mode's sizes are guarded, so the quick mode can
# be held against the accepted full run: see bench/README.md ("The guard").
GUARD_FLOORS = {
    # end-to-end executions/s as a share of raw Celery's (a ratio of ratios)
    "e2e_rate": 0.4,
    # the scheduler's CPU time per fire (accepted / now): the fire path's cost
    "fire_cpu": 0.4,
}
# Micro mode's 60 fires are too few for either (fixed costs dominate).
GUARD_MODES = ("quick", "full")


@dataclass(frozen=True)
class Mode:
    name: str
    # Agents (and, for the baseline, plain Celery workers): count x prefork concurrency.
    agents: int
    concurrency: int
    web_workers: int
    # Jobs due every minute, spread over the seconds (one skew row each). The largest size is
    # also the number of jobs due at one instant for the fire-rate and burst rows, and the
    # number of PeriodicTasks due at one instant for the baseline's rows.
    skew_sizes: tuple[int, ...]
    skew_window: float  # seconds of fire times measured (60 covers every job once)
    # Seconds the stock beat is given to send and run the tasks due at one instant; what is
    # not started by then counts as "later than the cap" in the percentiles.
    baseline_cap: float
    # "crontab": PeriodicTasks on `* * * * *`, measured at a real minute boundary (waits for
    # it). "interval": a 60 s IntervalSchedule phased so that all fall due at an instant the
    # benchmark picks (same load, no wait for the minute).
    baseline_schedule: str
    total_jobs: int  # jobs (and baseline PeriodicTasks) for change latency, API and memory
    changes: int  # API changes timed
    change_cap: float  # seconds one change may take before it counts as "later than the cap"
    baseline_load_cap: float  # seconds the stock beat may take to load `total_jobs` tasks
    api_requests: int  # per request kind
    api_page: int

    @property
    def due_at_once(self) -> int:
        return max(self.skew_sizes)


MODES = {
    "micro": Mode(
        name="micro",
        agents=1,
        concurrency=2,
        web_workers=1,
        skew_sizes=(60,),
        skew_window=2.0,
        baseline_cap=4.0,
        baseline_schedule="interval",
        total_jobs=500,
        changes=1,
        change_cap=8.0,
        baseline_load_cap=8.0,
        api_requests=10,
        api_page=20,
    ),
    "quick": Mode(
        name="quick",
        agents=2,
        concurrency=2,
        web_workers=2,
        skew_sizes=(1000,),
        skew_window=12.0,
        baseline_cap=15.0,
        baseline_schedule="interval",
        total_jobs=10_000,
        changes=5,
        change_cap=20.0,
        baseline_load_cap=30.0,
        api_requests=100,
        api_page=50,
    ),
    "full": Mode(
        name="full",
        agents=2,
        concurrency=2,
        web_workers=2,
        skew_sizes=(1000, 10_000),
        skew_window=60.0,
        baseline_cap=60.0,
        baseline_schedule="crontab",
        total_jobs=100_000,
        changes=10,
        change_cap=120.0,
        baseline_load_cap=240.0,
        api_requests=300,
        api_page=50,
    ),
}
