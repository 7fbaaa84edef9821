"""Commits and statements per execution, for the scheduler and the agents separately.

Commits come from PostgreSQL's own statistics: `pg_stat_database.xact_commit + xact_rollback`
of the benchmark's database, read from another database (so the reading adds nothing) after
`pg_stat_clear_snapshot()`, and after SETTLE seconds: since PostgreSQL 15 a backend flushes its
counters at most once a second (when it goes idle), so a reading taken at once would miss the
last second. pg_stat_database is per database, not per role, so each side is measured in a
phase where it does the work:

- scheduler: the fire-rate phase (N fires recorded and published to a registered agent that
  does not consume; the agents are idle);
- agents: the burst (N fires run by the agents), less the scheduler's share (its commits per
  fire from the fire-rate phase, times N).

In both, what the rest of the cluster commits anyway (heartbeats, the scheduler's idle ticks)
is taken off at its rate in an idle window measured first, and so is the benchmark's own
polling (one transaction per statement it sends, counted in-process).

Statements are counted in each process by a Django execute wrapper that the benchmark loads
into its children only (`bench/stmthook/sitecustomize.py`, through PYTHONPATH; production code
has no hook), per role (scheduler, agent, web, the stock beat, the benchmark itself), so the
statements need no subtraction between roles; each role's idle rate is taken off likewise.
The stock beat is measured the same way in its largest due-at-once phase (commits and
statements per task sent, its start-up and loading included); raw Celery's no-op workers
touch no database.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.infra import PG_ADMIN_URL, Infra

# PostgreSQL 15 flushes a backend's counters when a transaction ends at least 1 s after its
# last flush; a backend that then goes idle keeps what is pending for up to 10 s
# (PGSTAT_MIN_INTERVAL, PGSTAT_IDLE_INTERVAL in pgstat.c). The scheduler's connections work
# several times a second, so 1.2 s after a phase has all of theirs; the agents' pool children
# go idle after the burst, so the burst's reading waits SETTLE_IDLE.
SETTLE = 1.2
SETTLE_IDLE = 10.5
IDLE_WINDOW = 2.0  # seconds of the idle cluster, for the background rates
HOOK_DIR = Path(__file__).resolve().parent / "stmthook"
TUPLES = ("tup_inserted", "tup_updated", "tup_deleted", "tup_fetched", "tup_returned")


@dataclass
class Snapshot:
    t: float
    commits: int
    rollbacks: int
    tuples: dict[str, int]
    statements: dict[str, int]  # by role
    verbs: dict[str, dict[str, int]]  # role -> first keyword -> statements
    connections: dict[str, int]  # by role: connections opened (one transaction each)


@dataclass
class Phase:
    """The difference of two snapshots."""

    name: str
    seconds: float
    commits: int
    rollbacks: int
    tuples: dict[str, int]
    statements: dict[str, int]
    verbs: dict[str, dict[str, int]]
    connections: dict[str, int]
    # The benchmark's own database-wide ANALYZEs in the phase (after a bulk load): PostgreSQL
    # runs one transaction per table, catalogs included, so they are measured apart and left
    # out: the transactions, and the benchmark's statements among them.
    excluded_commits: int = 0
    excluded_bench_statements: int = 0

    @property
    def xacts(self) -> int:
        return self.commits + self.rollbacks


def read_statements(
    stmt_dir: Path,
) -> tuple[dict[str, int], dict[str, dict[str, int]], dict[str, int]]:
    """Statements, statements by first keyword and connections opened, by role."""
    totals: Counter[str] = Counter()
    connections: Counter[str] = Counter()
    verbs: dict[str, Counter[str]] = {}
    for path in stmt_dir.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced: the next reading has it
        role = str(data.get("role", "other"))
        totals[role] += int(data.get("statements", 0))
        connections[role] += int(data.get("connections", 0))
        verbs.setdefault(role, Counter()).update(
            {str(k): int(v) for k, v in data.get("by_verb", {}).items()}
        )
    return dict(totals), {role: dict(c) for role, c in verbs.items()}, dict(connections)


def pg_counters(db_name: str) -> tuple[int, int, dict[str, int]]:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, " + ", ".join(TUPLES) + " "
            "FROM pg_stat_database WHERE datname = %s",
            [db_name],
        ).fetchone()
    if row is None:
        return 0, 0, dict.fromkeys(TUPLES, 0)
    return int(row[0]), int(row[1]), {k: int(v) for k, v in zip(TUPLES, row[2:], strict=True)}


def _minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) - b.get(k, 0) for k in sorted(set(a) | set(b))}


@dataclass
class DbStats:
    infra: Infra
    stmt_dir: Path
    phases: dict[str, Phase] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # (when, transactions, the benchmark's statements) of each ANALYZE measured apart
    excluded: list[tuple[float, int, int]] = field(default_factory=list)

    def snapshot(self, settle: float = SETTLE) -> Snapshot:
        # The benchmark's own connection, idle meanwhile, would keep its counters for up to
        # 10 s: flushed now, so its transactions are in the reading as its statements are.
        _force_flush()
        time.sleep(settle)
        commits, rollbacks, tuples = pg_counters(self.infra.db_name)
        statements, verbs, connections = read_statements(self.stmt_dir)
        return Snapshot(
            time.monotonic(), commits, rollbacks, tuples, statements, verbs, connections
        )

    def record(self, name: str, a: Snapshot, b: Snapshot) -> Phase:
        verbs = {
            role: _minus(b.verbs.get(role, {}), a.verbs.get(role, {}))
            for role in sorted(set(a.verbs) | set(b.verbs))
        }
        inside = [e for e in self.excluded if a.t <= e[0] <= b.t]
        phase = Phase(
            excluded_commits=sum(e[1] for e in inside),
            excluded_bench_statements=sum(e[2] for e in inside),
            name=name,
            seconds=b.t - a.t,
            commits=b.commits - a.commits,
            rollbacks=b.rollbacks - a.rollbacks,
            tuples=_minus(b.tuples, a.tuples),
            statements=_minus(b.statements, a.statements),
            connections=_minus(b.connections, a.connections),
            verbs={r: {k: v for k, v in d.items() if v} for r, d in verbs.items()},
        )
        self.phases[name] = phase
        return phase

    def wrap(
        self,
        name: str,
        fn: Callable[..., Any],
        idle_first: bool = False,
        settle_after: float = SETTLE,
        settle_before: float = SETTLE,
    ) -> Callable[..., Any]:
        """`fn` measured as phase `name` (an idle window first, if asked, and not yet taken).
        A phase called with arguments is measured only for the mode's largest size."""

        @functools.wraps(fn)
        def measured(ctx: Any, *args: Any, **kwargs: Any) -> Any:
            if args and args[0] != ctx.mode.due_at_once:
                return fn(ctx, *args, **kwargs)
            try:
                a = self.snapshot(settle_before)
                if idle_first and "idle" not in self.phases:
                    time.sleep(IDLE_WINDOW)
                    b = self.snapshot()
                    self.record("idle", a, b)
                    a = b
            except Exception as exc:  # the statistics must never stop the benchmark
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                return fn(ctx, *args, **kwargs)
            result = fn(ctx, *args, **kwargs)
            try:
                self.record(name, a, self.snapshot(settle_after))
            except Exception as exc:
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return result

        return measured

    def wrap_apart(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` (the benchmark's ANALYZE) measured on its own, to be left out of its phase:
        the benchmark's connection flushes its counters right before and after
        (`pg_stat_force_next_flush()`), so the reading needs no wait."""
        from bench.stmthook import sitecustomize

        flush = _force_flush

        @functools.wraps(fn)
        def apart(*args: Any, **kwargs: Any) -> Any:
            try:
                flush()
                c0, r0, _ = pg_counters(self.infra.db_name)
                s0 = sitecustomize.total()
            except Exception as exc:
                self.errors.append(f"analyze: {type(exc).__name__}: {exc}")
                return fn(*args, **kwargs)
            result = fn(*args, **kwargs)
            try:
                flush()
                c1, r1, _ = pg_counters(self.infra.db_name)
                s1 = sitecustomize.total()
                self.excluded.append((time.monotonic(), c1 + r1 - c0 - r0, s1 - s0))
            except Exception as exc:
                self.errors.append(f"analyze: {type(exc).__name__}: {exc}")
            return result

        return apart

    # --- What the phases say -----------------------------------------------------------------

    def _background(self, phase: Phase, role: str | None) -> float:
        """What the idle cluster does in as long as `phase` took: commits (role None) or one
        role's statements."""
        idle = self.phases.get("idle")
        if idle is None or idle.seconds <= 0:
            return 0.0
        count = idle.xacts if role is None else idle.statements.get(role, 0)
        return max(count, 0) * phase.seconds / idle.seconds

    def net_statements(self, phase: Phase, role: str) -> float:
        return max(phase.statements.get(role, 0) - self._background(phase, role), 0.0)

    def net_commits(self, phase: Phase) -> float:
        """The phase's transactions less the idle cluster's and the benchmark's own."""
        bench = phase.statements.get("bench", 0) - phase.excluded_bench_statements
        bench += phase.connections.get("bench", 0)
        own = phase.xacts - phase.excluded_commits
        return max(own - self._background(phase, None) - bench, 0.0)

    def summary(self, fires: int, executions: int, stock_sent: int) -> dict[str, Any]:
        """Per execution: the scheduler's (fire-rate phase), the agents' (burst, less the
        scheduler's share), the stock beat's (per task sent). Missing phases are left out."""
        out: dict[str, Any] = {"phases": {n: asdict(p) for n, p in self.phases.items()}}
        if self.errors:
            out["errors"] = list(self.errors)
        fr = self.phases.get("fire_rate")
        bu = self.phases.get("burst")
        st = self.phases.get("stock")
        sched_commits: float | None = None
        if fr is not None and fires > 0:
            sched_commits = self.net_commits(fr) / fires
            out["scheduler"] = {
                "fires": fires,
                "commits_per_execution": sched_commits,
                "statements_per_execution": self.net_statements(fr, "scheduler") / fires,
                "statements_by_verb": fr.verbs.get("scheduler", {}),
                "connections_opened": fr.connections.get("scheduler", 0),
            }
        if bu is not None and executions > 0:
            scheduler_share = (sched_commits or 0.0) * executions
            agents = max(self.net_commits(bu) - scheduler_share, 0.0)
            out["agents"] = {
                "executions": executions,
                "commits_per_execution": agents / executions,
                "statements_per_execution": self.net_statements(bu, "agent") / executions,
                "statements_by_verb": bu.verbs.get("agent", {}),
                "connections_opened": bu.connections.get("agent", 0),
                "scheduler_statements_per_execution": self.net_statements(bu, "scheduler")
                / executions,
                "scheduler_share_of_commits": scheduler_share,
            }
        if st is not None and stock_sent > 0:
            out["stock_beat"] = {
                "sent": stock_sent,
                # Nothing else touches the database then: the workers' no-ops write to Redis.
                "commits_per_send": max(
                    st.xacts - st.statements.get("bench", 0) - st.connections.get("bench", 0), 0
                )
                / stock_sent,
                "statements_per_send": st.statements.get("stock-beat", 0) / stock_sent,
                "statements_by_verb": st.verbs.get("stock-beat", {}),
                "connections_opened": st.connections.get("stock-beat", 0),
            }
        return out


def _force_flush() -> None:
    """`pg_stat_force_next_flush()` on this process's connection: its counters are flushed
    when that statement's transaction ends."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")


def enable(infra: Infra) -> Path:
    """Count statements in this process and (through the environment) in its children."""
    stmt_dir = infra.data_dir / "statements"
    stmt_dir.mkdir(parents=True, exist_ok=True)
    infra.stmt_dir = stmt_dir
    from bench.stmthook import sitecustomize

    sitecustomize.install(str(stmt_dir), role="bench")
    return stmt_dir
