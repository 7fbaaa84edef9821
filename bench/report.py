"""Percentiles, the result rows and the printed table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

INF = math.inf


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; `inf` entries (never happened within the cap) sort last."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
        "n": float(len(values)),
    }


def fmt_num(value: float | None, unit: str = "", cap: float | None = None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return f">{cap:g}{unit}" if cap is not None else "never"
    if digits == 0 and abs(value) >= 100:
        return f"{value:,.0f}{unit}"
    if abs(value) >= 10:
        return f"{value:,.1f}{unit}"
    return f"{value:.{max(digits, 2)}f}{unit}"


def fmt_seconds(value: float | None, cap: float | None = None) -> str:
    """Seconds, shown in ms below one second."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return f">{cap:g}s" if cap is not None else "never"
    if abs(value) < 1.0:
        return f"{value * 1000:.0f}ms" if abs(value) >= 0.01 else f"{value * 1000:.1f}ms"
    return f"{value:.2f}s" if value < 100 else f"{value:.0f}s"


def rate_between(times: Sequence[float], lo: float = 10, hi: float = 90) -> float:
    """Events per second between the lo-th and hi-th percentile of their times (a steady
    state: the ramp-up of the workers and the tail are left out)."""
    if len(times) < 10:
        span = max(times) - min(times) if times else 0.0
        return len(times) / span if span > 0 else math.nan
    ordered = sorted(times)
    a = ordered[int(len(ordered) * lo / 100)]
    b = ordered[int(len(ordered) * hi / 100) - 1]
    count = int(len(ordered) * hi / 100) - int(len(ordered) * lo / 100)
    return count / (b - a) if b > a else math.nan


def fmt_triple(s: dict[str, float] | None, cap: float | None = None) -> str:
    if not s:
        return "n/a"
    return " / ".join(fmt_seconds(s[k], cap) for k in ("p50", "p99", "max"))


def fmt_pair(s: dict[str, float] | None, cap: float | None = None) -> str:
    if not s:
        return "n/a"
    return " / ".join(fmt_seconds(s[k], cap) for k in ("p50", "p99"))


@dataclass
class Row:
    key: str
    label: str
    dkronweb: str = "n/a"
    baseline: str = "n/a"
    notes: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.notes = f"{self.notes}; {text}" if self.notes else text


# Row keys in print order; the smoke test checks that every one is printed.
ROW_LABELS = {
    "fire_rate": "fire rate, fires recorded+published/s",
    "skew": "fire skew p50 / p99 / max",
    "burst_published": "burst, all published",
    "burst_finished": "burst, all finished",
    "change_latency": "change latency p50 / max",
    "e2e_rate": "end-to-end executions/s",
    "api_list": "API GET /v1/jobs page p50 / p99",
    "api_get": "API GET /v1/jobs/<name> p50 / p99",
    "api_upsert": "API upsert p50 / p99",
    "scheduler_rss": "scheduler memory (RSS)",
}


def render(rows: list[Row], title: str) -> str:
    """A Markdown table (so it can be pasted into the README as printed)."""
    headers = ("figure", "dkronweb", "stock beat / raw Celery", "notes")
    table = [headers] + [(r.label, r.dkronweb, r.baseline, r.notes) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    out = [title, ""]
    for i, line in enumerate(table):
        out.append("| " + " | ".join(line[c].ljust(widths[c]) for c in range(4)) + " |")
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def to_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [_clean(asdict(r)) for r in rows]


def _clean(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings."""
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        if math.isnan(value):
            return None
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
