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
    "db_commits": "commits per execution (scheduler / agents)",
    "db_statements": "statements per execution (scheduler / agents)",
}


def render(
    rows: list[Row],
    title: str,
    accepted: dict[str, Any] | None = None,
) -> str:
    """A Markdown table (so it can be pasted into the README as printed); with the accepted
    result (bench/results/accepted-full.json), two more columns: the accepted figure, and
    this run's against it (`compare`)."""
    headers: tuple[str, ...] = ("figure", "dkronweb", "stock beat / raw Celery", "notes")
    table: list[tuple[str, ...]] = [(r.label, r.dkronweb, r.baseline, r.notes) for r in rows]
    if accepted is not None:
        meta = accepted.get("accepted_as")
        when = meta.get("date") if isinstance(meta, dict) else None
        when = when or str(accepted.get("started_at", ""))[:10]
        headers = headers[:3] + (f"accepted ({when})", "now / accepted (>1 better)", "notes")
        found = compare(to_json(rows), accepted.get("rows", []))
        table = [
            (*line[:3], *(found[r.key].cells() if r.key in found else ("-", "-")), line[3])
            for r, line in zip(rows, table, strict=True)
        ]
    table = [headers, *table]
    cols = len(headers)
    widths = [max(len(line[i]) for line in table) for i in range(cols)]
    out = [title, ""]
    for i, line in enumerate(table):
        out.append("| " + " | ".join(line[c].ljust(widths[c]) for c in range(cols)) + " |")
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


# --- Against the accepted figures ---------------------------------------------------------


def _num(value: Any) -> float | None:
    """A raw JSON number (`"inf"` for never within the cap), or None."""
    if value == "inf":
        return INF
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def _dig(raw: dict[str, Any], *path: str) -> float | None:
    node: Any = raw
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return _num(node)


@dataclass(frozen=True)
class Measure:
    """The quantity of a row that is compared across runs.

    relative: dkronweb's figure divided by its own run's baseline (raw Celery or the stock
    beat), so the machine's speed cancels out; otherwise the absolute figure (rows without a
    baseline, or whose baseline never finished within its cap).
    """

    value: float
    relative: bool
    higher_better: bool
    text: str
    size: int | None = None
    absolute: float = math.nan  # dkronweb's own figure (the value when not relative)
    absolute_text: str = ""
    per_unit: bool = False  # a cost per fire or execution: comparable across sizes


# Per row key: the dkronweb and the baseline figure (paths into `raw`), which way is better,
# and how the quantity reads.
_SPEC: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None, bool, str, str]] = {
    "fire_rate": (("fires_per_s",), ("sends_per_s",), True, "rate", ""),
    "skew": (("skew", "p99"), ("skew", "p99"), False, "seconds", "p99"),
    "burst_published": (("seconds",), ("seconds",), False, "seconds", "time"),
    "burst_finished": (("seconds",), ("seconds",), False, "seconds", "time"),
    "change_latency": (("p50",), ("p50",), False, "seconds", "p50"),
    "e2e_rate": (("per_s",), ("per_s",), True, "rate", ""),
    "api_list": (("p50",), None, False, "seconds", "p50"),
    "api_get": (("p50",), None, False, "seconds", "p50"),
    "api_upsert": (("p50",), None, False, "seconds", "p50"),
    # Memory does not depend on the machine's speed, and the stock beat's figure on the hour
    # of day (it loads only tasks due within 2 hours): compared absolute.
    "scheduler_rss": (("rss",), None, False, "bytes", ""),
    "db_commits": (("total_per_execution",), None, False, "count", "in all"),
    "db_statements": (("total_per_execution",), None, False, "count", "in all"),
}


def _fmt(value: float, kind: str) -> str:
    if kind == "seconds":
        return fmt_seconds(value)
    if kind == "rate":
        return fmt_num(value, "/s")
    if kind == "bytes":
        return f"{value / 2**20:.0f} MB"
    return f"{value:.2f}"


def measure(row: dict[str, Any]) -> Measure | None:
    key = str(row.get("key", ""))
    spec = _SPEC.get(key.split("_")[0] if key.startswith("skew_") else key)
    if spec is None:
        return None
    dk_path, base_path, higher, kind, what = spec
    raw = row.get("raw") or {}
    dk = _dig(raw, "dkronweb", *dk_path)
    if dk is None:
        return None
    size_value = _dig(raw, "dkronweb", "jobs") or _dig(raw, "dkronweb", "runs")
    size = int(size_value) if size_value is not None and math.isfinite(size_value) else None
    base = _dig(raw, "baseline", *base_path) if base_path else None
    own = " ".join(filter(None, [_fmt(dk, kind), "" if what == "time" else what]))
    if base is not None and math.isfinite(base) and base > 0 and math.isfinite(dk):
        ratio = dk / base
        if key == "e2e_rate":
            text = f"{ratio:.1%} of raw Celery"
        elif higher:
            text = f"{ratio:.1f}x the stock beat"
        else:
            text = f"{ratio:.1%} of the stock beat's {what}"
        return Measure(ratio, True, higher, text, size, dk, own)
    return Measure(dk, False, higher, own, size, dk, own)


@dataclass(frozen=True)
class Comparison:
    now: Measure
    accepted: Measure | None

    @property
    def sizes_differ(self) -> bool:
        acc = self.accepted
        if self.now.per_unit:
            return False
        return bool(acc and acc.size and self.now.size and acc.size != self.now.size)

    @property
    def fallback(self) -> bool:
        """One side has its baseline and the other not (a stock side that did not finish
        within its cap): dkronweb's own figures are compared instead, at equal sizes."""
        return bool(self.accepted and self.accepted.relative != self.now.relative)

    @property
    def score(self) -> float | None:
        """This run's quantity against the accepted one, >1 better, 1 the same; None when
        they cannot be compared (absolute figures at different sizes)."""
        acc = self.accepted
        if acc is None:
            return None
        relative = self.now.relative and not self.fallback
        if not relative and self.sizes_differ:
            return None
        a, b = (self.now.value, acc.value) if relative else (self.now.absolute, acc.absolute)
        if not self.now.higher_better:
            a, b = b, a
        if math.isnan(a) or math.isnan(b):
            return None
        if math.isinf(b):
            return 0.0 if not math.isinf(a) else None
        if b <= 0:
            return None if a <= 0 else INF
        return a / b

    def cells(self) -> tuple[str, str]:
        acc = self.accepted
        if acc is None:
            return "none accepted yet", "-"
        at = f" @ {acc.size:,}" if self.sizes_differ else ""
        acc_text, now_text = acc.text, self.now.text
        if self.fallback:
            acc_text, now_text = acc.absolute_text, self.now.absolute_text
        score = self.score
        if score is None:
            why = f"absolute, sizes differ: {self.now.size:,} here" if self.sizes_differ else "n/a"
            return acc_text + at, f"{now_text} now: not compared ({why})"
        how = "ratio of ratios" if self.now.relative and not self.fallback else "absolute"
        if self.fallback:
            how += ", one run's stock side hit its cap"
        if self.sizes_differ:
            how += f", {self.now.size:,} here"
        return acc_text + at, f"{now_text} now: {fmt_num(score, digits=2)} ({how})"


def derived(row: dict[str, Any]) -> dict[str, Measure]:
    """Per-unit costs read from a row's raw numbers, guarded beside the ratios: the
    scheduler's CPU time per fire (CPU time, not wall time: a neighbour's load hardly moves
    it, and per fire it does not depend on how many fire)."""
    out: dict[str, Measure] = {}
    if row.get("key") == "fire_rate":
        cpu = _dig(row.get("raw") or {}, "dkronweb", "scheduler_cpu_ms_per_fire")
        if cpu is not None and math.isfinite(cpu) and cpu > 0:
            text = f"{cpu:.2f} ms scheduler CPU per fire"
            out["fire_cpu"] = Measure(cpu, False, False, text, None, cpu, text, per_unit=True)
    return out


def compare(rows: list[dict[str, Any]], accepted: list[dict[str, Any]]) -> dict[str, Comparison]:
    """Each row's measure beside the accepted row of the same key (skew rows carry their
    size in the key, so they are compared like with like), and the derived per-unit costs."""
    by_key = {str(r.get("key")): r for r in accepted}
    out: dict[str, Comparison] = {}
    for row in rows:
        acc_row = by_key.get(str(row.get("key")))
        now = measure(row)
        if now is not None:
            out[str(row["key"])] = Comparison(now, measure(acc_row) if acc_row else None)
        acc_derived = derived(acc_row) if acc_row else {}
        for name, m in derived(row).items():
            out[name] = Comparison(m, acc_derived.get(name))
    return out


def guard(
    result: dict[str, Any], accepted: dict[str, Any], floors: dict[str, float]
) -> tuple[list[str], list[str]]:
    """The regression guard: (failures, notes). A measure in `floors` fails when its score
    against the accepted run (>1 better: a ratio of ratios, or a per-unit cost) is below the
    floor. A measure that cannot be compared because this run's baseline is missing is noted,
    not failed (the guard checks dkronweb, not the baseline); a missing dkronweb figure fails."""
    failures: list[str] = []
    notes: list[str] = []
    found = compare(result.get("rows", []), accepted.get("rows", []))
    for key, floor in floors.items():
        c = found.get(key)
        if c is None:
            failures.append(f"{key}: no figure in this run")
            continue
        if c.accepted is None:
            notes.append(f"{key}: no accepted figure to compare with")
            continue
        if c.fallback or c.score is None:
            notes.append(f"{key}: not checked, this run's figure is {c.now.text}")
            continue
        line = (
            f"{key}: {c.now.text} against accepted {c.accepted.text} = {c.score:.2f} "
            f"(floor {floor:.2f})"
        )
        (failures if c.score < floor else notes).append(line)
    return failures, notes


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
