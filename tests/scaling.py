"""Checks that work grows linearly with its input, without wall-clock budgets.

A shared, loaded 2-core machine makes "under N ms" flaky, but the ratio between two sizes of
the same input is stable: tripling the input triples linear work and multiplies quadratic work
by nine. `assert_linear` compares the best of a few runs at both sizes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SLACK = 0.05  # seconds: timer noise and interpreter hiccups on inputs that take milliseconds


def _best(work: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def assert_linear(
    make: Callable[[int], Callable[[], object]],
    *,
    small: int = 500_000,
    factor: int = 3,
    repeats: int = 3,
) -> None:
    """`make(size)` returns the work for an input of `size`; tripling it may cost at most 6x.

    Linear work costs about 3x; quadratic about 9x (so a 25 s defect fails, never passes).
    """
    small_work, big_work = make(small), make(small * factor)
    small_time = _best(small_work, repeats)
    big_time = _best(big_work, 1 if small_time > 1 else repeats)
    limit = 2 * factor * small_time + SLACK
    assert big_time <= limit, (
        f"{small * factor} took {big_time:.3f}s, {small} took {small_time:.3f}s: "
        f"more than linear (limit {limit:.3f}s)"
    )
