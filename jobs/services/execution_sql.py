"""One-statement claim and finish for PostgreSQL: the agent's hot path.

An execution's own cost on an agent is almost all database round trips (0.2-0.4 ms each on
the benchmark machine, where the ORM path took 11-14 of them per execution). Here a claim is
one `UPDATE ... RETURNING` and the usual finish (no retry, no kill request) is one statement
whose data-modifying CTEs close the execution, count the result on the job and settle the
run when this was its last active execution. The ORM path in `executions` stays the
reference: it handles SQLite, retries, kills and everything this statement leaves alone.

Both statements are prepared on the server (once per connection, `_cursor`): planning them took
more of the database's time than running them. A pooler that cannot keep prepared statements
(PgBouncer in transaction mode before 1.21) turns that off for the process on its first error.

All CTEs of a statement see the same snapshot, taken before any of its updates; that is why
the sibling checks below exclude the row being closed. Two executions of one run finishing
at the same moment both see the other as running and leave the run unsettled; the caller
then settles it with `run_settle` after commit, as the ORM path does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import DatabaseError, connection

from jobs.models import ACTIVE_STATUSES, Execution, ExecutionStatus, Job, Run

_ACTIVE = [str(s) for s in ACTIVE_STATUSES]
_EXEC_FIELDS = [f for f in Execution._meta.concrete_fields]
_RUN_FIELDS = [f for f in Run._meta.concrete_fields]


log = logging.getLogger("dkronweb.executions")

# SQLSTATEs of a prepared statement the server does not know or already has: a pooler that
# moved the session between connections.
_POOLER_ERRORS = frozenset({"26000", "42P05"})
_prepare = True  # per process; off after a pooler error
_ONLY_WHEN_ASKED = 2**31 - 1  # a threshold no other statement reaches


def available() -> bool:
    return connection.vendor == "postgresql"


class _PreparedCursor(psycopg.Cursor):
    """Server-side binding, each statement prepared on its connection (psycopg keeps them).

    Django turns psycopg's preparing off (`prepare_threshold` None, for poolers); it is on here
    only while this cursor's statement is sent, so every other query stays as Django sends it.
    """

    def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
        conn = self.connection
        saved = conn.prepare_threshold
        if saved is None:
            conn.prepare_threshold = _ONLY_WHEN_ASKED
        try:
            return super().execute(query, params, prepare=True, **kw)
        finally:
            conn.prepare_threshold = saved


@contextmanager
def _cursor() -> Iterator[Any]:
    """A cursor for the hot path's statements: a prepared one outside transactions.

    Inside a transaction (a finish with follow-ups) a failed statement would abort it, so there
    the statement is sent as Django sends any other.
    """
    if not _prepare or connection.in_atomic_block:
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.close_if_health_check_failed()  # as connection.cursor() does
    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw: Any = _PreparedCursor(connection.connection)
    wrapped = (
        connection.make_debug_cursor(raw)
        if connection.queries_logged
        else connection.make_cursor(raw)
    )
    with wrapped as cursor:
        yield cursor


def _fetchone(sql: str, params: Any) -> Any:
    global _prepare
    use_prepared = _prepare and not connection.in_atomic_block
    try:
        with _cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    except DatabaseError as exc:
        state = getattr(exc.__cause__, "sqlstate", None)
        if not use_prepared or state not in _POOLER_ERRORS:
            raise
        _prepare = False
        log.warning(
            "prepared statements are not kept by the database connection (a pooler?): "
            "the agent's claim and finish are sent unprepared from now on"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def claim(
    *, execution_id: int, node_name: str, queue: str, now: datetime, keyed: bool = False
) -> Execution | None:
    """queued -> running in one statement; returns the row with its run, or None.

    Never a held execution; one with a concurrency key only when `keyed` (the caller holds
    the key's lock: capacity.claim_keyed)."""
    e_cols = ", ".join(f'e."{f.column}"' for f in _EXEC_FIELDS)
    r_cols = ", ".join(f'r."{f.column}"' for f in _RUN_FIELDS)
    sql = (
        f'UPDATE "{Execution._meta.db_table}" e SET status = %s, node_name = %s, queue = %s, '
        f"started_at = %s, heartbeat_at = %s "
        f'FROM "{Run._meta.db_table}" r '
        # `(SELECT %s)`, not `%s` (issue 15): compared to a plain constant, the planner may
        # prove exec_active_idx usable and, with statistics taken when few rows were queued,
        # cost it as one row; the claim then read every queued row instead of one by key.
        # A value it sees only when the statement runs leaves the primary key as the path.
        f"WHERE e.id = %s AND e.status = (SELECT %s) AND r.id = e.run_id AND e.waiting = '' "
        + ("" if keyed else "AND e.concurrency_key = '' ")
        + f"RETURNING {e_cols}, {r_cols}"
    )
    params: list[Any] = [
        ExecutionStatus.RUNNING,
        node_name,
        queue,
        now,
        now,
        execution_id,
        ExecutionStatus.QUEUED,
    ]
    row = _fetchone(sql, params)
    if row is None:
        return None
    n = len(_EXEC_FIELDS)
    execution = Execution.from_db("default", [f.attname for f in _EXEC_FIELDS], row[:n])
    run_values = list(row[n:])
    for i, f in enumerate(_RUN_FIELDS):
        if f.name == "snapshot" and isinstance(run_values[i], str):
            run_values[i] = json.loads(run_values[i])
    execution.run = Run.from_db("default", [f.attname for f in _RUN_FIELDS], run_values)
    return execution


@dataclass(frozen=True)
class Finished:
    closed: bool  # False: the row was not running, or a kill was requested (use the ORM path)
    settled: bool  # the run's `finished` flag was set by this statement
    active_siblings: bool  # another execution of the run looked active (settle after commit)
    run_status: str
    slot_waiters: bool = False  # executions wait for an agent slot (capacity.place_waiting)


def finish(
    *,
    execution: Execution,
    status: str,
    output: str,
    truncated: bool,
    reason: str,
    retryable: bool,
    now: datetime,
) -> Finished:
    """Close a running execution as final, count it on the job, settle its run if last.

    `status = (SELECT %(running)s)` for the reason given in `claim`: with a plain constant
    the row could be looked up through exec_active_idx's 'running' range (every execution
    that ran since the last vacuum left a dead entry there) instead of by its key."""
    ex, run, job = Execution._meta.db_table, Run._meta.db_table, Job._meta.db_table
    success = status == ExecutionStatus.SUCCESS
    counter = (
        "success_count = j.success_count + 1, last_success = %(now)s"
        if success
        else "error_count = j.error_count + 1, last_error = %(now)s"
    )
    sql = f"""
WITH closed AS (
    UPDATE "{ex}" SET status = %(status)s, success = %(success)s, output = %(output)s,
        output_truncated = %(truncated)s, reason = %(reason)s, retryable = %(retryable)s,
        finished_at = %(now)s, started_at = COALESCE(started_at, %(now)s), final = true
    WHERE id = %(id)s AND status = (SELECT %(running)s) AND NOT kill_requested
    RETURNING id, run_id, job_id
), siblings AS (
    SELECT e.status, e.final FROM "{ex}" e, closed c WHERE e.run_id = c.run_id AND e.id <> c.id
), verdict AS (
    SELECT
        EXISTS (SELECT 1 FROM siblings WHERE status = ANY(%(active)s)) AS busy,
        (SELECT count(*) FROM siblings WHERE final AND status = %(ok)s)
            + (CASE WHEN %(success)s THEN 1 ELSE 0 END) AS ok,
        (SELECT count(*) FROM siblings WHERE final AND status <> %(skipped)s) + 1 AS total
), settled AS (
    UPDATE "{run}" r SET finished = true, status = CASE
            WHEN v.ok = v.total THEN 'success' WHEN v.ok = 0 THEN 'failed'
            ELSE 'partially_failed' END
    FROM closed c, verdict v
    WHERE r.id = c.run_id AND NOT r.finished AND NOT v.busy
    RETURNING r.status
), counted AS (
    UPDATE "{job}" j SET {counter}, status = CASE
            WHEN NOT EXISTS (SELECT 1 FROM settled) THEN j.status
            WHEN EXISTS (
                SELECT 1 FROM "{ex}" x
                WHERE x.job_id = j.id AND x.status = ANY(%(active)s) AND x.id <> c.id
            ) THEN 'running'
            ELSE (SELECT status FROM settled) END
    FROM closed c WHERE j.id = c.job_id
    RETURNING j.id
)
SELECT (SELECT count(*) FROM closed), (SELECT status FROM settled), (SELECT busy FROM verdict),
    (SELECT count(*) FROM counted),
    EXISTS (
        SELECT 1 FROM "{ex}" w
        WHERE w.waiting <> '' AND w.waiting = %(slot)s AND w.finished_at IS NULL
    )
"""
    params: dict[str, Any] = {
        "status": status,
        "success": success,
        "output": output,
        "truncated": truncated,
        "reason": reason[:255],
        "retryable": retryable,
        "now": now,
        "id": execution.pk,
        "running": ExecutionStatus.RUNNING,
        "active": _ACTIVE,
        "ok": ExecutionStatus.SUCCESS,
        "skipped": ExecutionStatus.SKIPPED,
        "slot": "slot",
    }
    closed, run_status, busy, _, waiters = _fetchone(sql, params)
    return Finished(
        closed=bool(closed),
        settled=run_status is not None,
        active_siblings=bool(busy),
        run_status=run_status or "",
        slot_waiters=bool(waiters),
    )
