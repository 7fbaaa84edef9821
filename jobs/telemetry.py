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
    path = _dir
    if path is not None:
        from prometheus_client.multiprocess import MultiProcessCollector

        return MultiProcessCollector(None, path=str(path)).collect()
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
    """
    families: dict[str, list[list[Any]]] = {}
    for metric in _collect():
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
    return {"v": SNAPSHOT_VERSION, "f": families}


def parse_snapshot(data: Any) -> dict[str, list[list[Any]]]:
    """The families of a stored snapshot; empty for anything unknown or malformed."""
    if not isinstance(data, dict) or data.get("v") != SNAPSHOT_VERSION:
        return {}
    families = data.get("f")
    return families if isinstance(families, dict) else {}
