"""Metrics counted inside agents: executions, durations, fire skew, notification failures.

They are counted in process with prometheus_client, in its multi-process mode so that every
prefork child of an agent writes its own memory-mapped file in a directory private to the
agent instance. The agent's heartbeat thread (main process) merges those files and stores a
compact snapshot on the agent's row with the heartbeat (same UPDATE); `/metrics` on any web
process reads the snapshots back (web.metrics). Nothing here touches the database, so the
execution hot path gains no statement.

prometheus_client picks its value class (plain or memory-mapped) when `prometheus_client.values`
is imported, from PROMETHEUS_MULTIPROC_DIR. The agent may have imported it earlier, so
`setup()` sets the variable and swaps the value class itself; it must run in the agent's main
process before the pool forks (the worker bootstep's constructor does), and the metric objects
here are built lazily, after it.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Histogram, values
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict

log = logging.getLogger("dkronweb.metrics")

SNAPSHOT_VERSION = 1
DIR_PREFIX = "dkronweb-metrics-"
OWNER_FILE = "owner.pid"

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
SKEW_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class Family:
    """One agent-side metric: the same description serves the agent and the scrape."""

    name: str  # without the _total suffix of counters
    kind: str  # "counter" or "histogram"
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


EXECUTIONS = Family(
    "dkronweb_executions",
    "counter",
    "Executions finished on the agent, by job and status",
    ("job", "status"),
)
DURATION = Family(
    "dkronweb_execution_duration_seconds",
    "histogram",
    "Execution time on the agent (claim to result), by job",
    ("job",),
    DURATION_BUCKETS,
)
FIRE_SKEW = Family(
    "dkronweb_fire_skew_seconds",
    "histogram",
    "Start of a scheduled run's first attempt minus its scheduled time",
    (),
    SKEW_BUCKETS,
)
NOTIFICATION_FAILURES = Family(
    "dkronweb_notification_failures",
    "counter",
    "Notifications that could not be sent or published, by channel",
    ("channel",),
)
FAMILIES: tuple[Family, ...] = (EXECUTIONS, DURATION, FIRE_SKEW, NOTIFICATION_FAILURES)
BY_NAME = {f.name: f for f in FAMILIES}

_lock = threading.Lock()
_objects: dict[str, Any] | None = None
_dir: Path | None = None


def metrics_dir() -> Path | None:
    """The multi-process directory of this agent, or None when counting in this process only."""
    return _dir


def _build() -> dict[str, Any]:
    objects: dict[str, Any] = {}
    for family in FAMILIES:
        if family.kind == "counter":
            objects[family.name] = Counter(family.name, family.help, family.labels, registry=None)
        else:
            objects[family.name] = Histogram(
                family.name, family.help, family.labels, registry=None, buckets=family.buckets
            )
    return objects


def _metric(family: Family) -> Any:
    global _objects
    objects = _objects
    if objects is None:
        with _lock:
            if _objects is None:
                _objects = _build()
            objects = _objects
    return objects[family.name]


# --- set-up (agent main process, before the pool forks) ----------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune(base: Path, keep: Path) -> None:
    """Remove the directories of agent instances that are gone (killed without clean-up)."""
    for path in base.glob(f"{DIR_PREFIX}*"):
        if path == keep or not path.is_dir():
            continue
        try:
            pid = int((path / OWNER_FILE).read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and _pid_alive(pid):
            continue
        if not pid and time.time() - path.stat().st_mtime < 3600:
            continue  # being created by another agent right now
        shutil.rmtree(path, ignore_errors=True)


def setup(instance_id: str, *, base: str | Path | None = None) -> Path:
    """Count in multi-process mode in a fresh directory private to this agent instance."""
    global _objects, _dir
    root = Path(base or tempfile.gettempdir())
    path = root / f"{DIR_PREFIX}{instance_id}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    (path / OWNER_FILE).write_text(str(os.getpid()))
    with contextlib.suppress(OSError):
        _prune(root, path)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    with _lock:
        values.ValueClass = values.MultiProcessValue()  # read at each metric's creation
        _objects = None
        _dir = path
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not in a forked child that exits
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    log.info("agent metrics in %s", path)
    return path


# --- observing (prefork children or threads) ----------------------------------------------


def observe_execution(
    *,
    job: str,
    status: str,
    started_at: datetime | None,
    finished_at: datetime,
    scheduled_at: datetime | None = None,
    scheduled: bool = False,
) -> None:
    """Count one finished execution; never raises (a metric must not break a run)."""
    try:
        _metric(EXECUTIONS).labels(job, status).inc()
        if started_at is not None:
            _metric(DURATION).labels(job).observe(
                max(0.0, (finished_at - started_at).total_seconds())
            )
            if scheduled and scheduled_at is not None:
                _metric(FIRE_SKEW).observe(max(0.0, (started_at - scheduled_at).total_seconds()))
    except Exception:
        log.warning("could not count execution metrics", exc_info=True)


def count_notification_failure(channel: str) -> None:
    try:
        _metric(NOTIFICATION_FAILURES).labels(channel).inc()
    except Exception:
        log.warning("could not count a notification failure", exc_info=True)


# --- snapshot (agent main process, with each heartbeat) ----------------------------------


def _collect() -> Iterable[Metric]:
    """This process's own metrics (no multi-process directory)."""
    objects = _objects
    if objects is None:
        return []
    return [m for obj in objects.values() for m in obj.collect()]


def _bound(value: str) -> float:
    return float("inf") if value == "+Inf" else float(value)


def snapshot() -> dict[str, Any]:
    """A compact JSON-able summary of every agent-side metric of this agent.

    `{"v": 1, "f": {family: rows}}` where a counter row is `[*label_values, value]` and a
    histogram row is `[*label_values, sum, [cumulative bucket counts..., count]]` with the
    buckets of the family's definition (the last one is +Inf, i.e. the count).

    In multi-process mode the children's files are read directly (`_files_families`): the
    heartbeat takes a snapshot every few seconds, and prometheus_client's own merge builds a
    sample object per value, which took seconds of the agent's CPU per snapshot once it had
    seen some thousands of jobs (a histogram of 16 values per job).
    """
    path = _dir
    if path is not None:
        return {"v": SNAPSHOT_VERSION, "f": _files_families(path)}
    return {"v": SNAPSHOT_VERSION, "f": _metrics_families(_collect())}


def _metrics_families(metrics: Iterable[Metric]) -> dict[str, list[list[Any]]]:
    """The snapshot's families from prometheus_client's (merged) metrics."""
    families: dict[str, list[list[Any]]] = {}
    for metric in metrics:
        family = BY_NAME.get(metric.name)
        if family is None:
            continue
        if family.kind == "counter":
            rows = []
            for s in metric.samples:
                if s.name == f"{family.name}_total":
                    rows.append([*(s.labels.get(n, "") for n in family.labels), s.value])
            if rows:
                families[family.name] = sorted(rows, key=lambda r: r[:-1])
            continue
        bounds = [*family.buckets, float("inf")]
        series: dict[tuple[str, ...], list[Any]] = {}
        for s in metric.samples:
            key = tuple(s.labels.get(n, "") for n in family.labels)
            entry = series.setdefault(key, [0.0, [0.0] * len(bounds)])
            if s.name == f"{family.name}_sum":
                entry[0] = s.value
            elif s.name == f"{family.name}_bucket":
                le = _bound(s.labels.get("le", "+Inf"))
                if le in bounds:
                    entry[1][bounds.index(le)] = s.value
        rows = [[*key, entry[0], entry[1]] for key, entry in sorted(series.items())]
        if rows:
            families[family.name] = rows
    return families


# A value's key in a file -> (family, label values, bucket index or -1 for a counter's value
# or a histogram's sum), or None for a value the snapshot leaves out. Keys never change, so
# each is parsed once per process, not once per snapshot.
_Parsed = tuple[Family, tuple[str, ...], int] | None
_parsed_keys: dict[str, _Parsed] = {}


def _parse_key(key: str) -> _Parsed:
    try:
        metric_name, name, labels, _help = json.loads(key)
        family = BY_NAME.get(metric_name)
        if family is None:
            return None
        values = tuple(str(labels.get(n, "")) for n in family.labels)
        if family.kind == "counter":
            return (family, values, -1) if name == f"{family.name}_total" else None
        if name == f"{family.name}_sum":
            return family, values, -1
        if name == f"{family.name}_bucket":
            bounds = [*family.buckets, float("inf")]
            le = _bound(str(labels.get("le", "+Inf")))
            return (family, values, bounds.index(le)) if le in bounds else None
    except (ValueError, TypeError):
        pass
    return None


def _files_families(path: Path) -> dict[str, list[list[Any]]]:
    """The snapshot's families summed over the value files of every process of the agent.

    The same sums as prometheus_client's MultiProcessCollector (files in the same order,
    histogram buckets made cumulative), without its sample objects.
    """
    counters: dict[Family, dict[tuple[str, ...], float]] = {}
    histograms: dict[Family, dict[tuple[str, ...], list[Any]]] = {}
    parsed = _parsed_keys
    for name in glob.glob(os.path.join(str(path), "*.db")):
        if not os.path.basename(name).startswith(("counter_", "histogram_")):
            continue  # the agent counts no gauges or summaries
        try:
            values = MmapedDict.read_all_values_from_file(name)
        except FileNotFoundError:
            continue
        for key, value, _timestamp, _pos in values:
            if key in parsed:
                found = parsed[key]
            else:
                found = parsed[key] = _parse_key(key)
            if found is None:
                continue
            family, labels, bucket = found
            if family.kind == "counter":
                series = counters.setdefault(family, {})
                series[labels] = series.get(labels, 0.0) + value
                continue
            entry = histograms.setdefault(family, {}).get(labels)
            if entry is None:
                entry = histograms[family][labels] = [0.0, [0.0] * (len(family.buckets) + 1)]
            if bucket < 0:
                entry[0] += value
            else:
                entry[1][bucket] += value
    families: dict[str, list[list[Any]]] = {}
    for family in FAMILIES:
        if family in counters:
            families[family.name] = [
                [*labels, value] for labels, value in sorted(counters[family].items())
            ]
        elif family in histograms:
            rows = []
            for labels, (total, buckets) in sorted(histograms[family].items()):
                acc, cumulative = 0.0, []
                for count in buckets:
                    acc += count
                    cumulative.append(acc)
                rows.append([*labels, total, cumulative])
            families[family.name] = rows
    return families


def parse_snapshot(data: Any) -> dict[str, list[list[Any]]]:
    """The families of a stored snapshot; empty for anything unknown or malformed."""
    if not isinstance(data, dict) or data.get("v") != SNAPSHOT_VERSION:
        return {}
    families = data.get("f")
    return families if isinstance(families, dict) else {}
