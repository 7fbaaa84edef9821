"""Runs ended by Celery's own revoke or terminate are recorded as killed, at once.

`celery -A dkronweb control terminate SIGTERM <id>` (or `revoke --terminate`) signals the pool
child running the task: the child dies without recording anything, and the execution stayed
`running` until the sweep closed it as "agent died" while the agent was alive. `revoke <id>` of
a run that has not started makes the worker drop its message, and the row stayed `queued`.

Celery sends `task_revoked` in the worker's main process for both. For `dkronweb.run_execution`
(keyed on the task type, not on a displayed name) this handler kills what is left of the run's
processes (the job's grandchildren outlive the pool child) and records the execution killed,
not retried, with the reason.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from django.db import close_old_connections, connection

from agent.runner import with_db_retry
from executors import shell
from jobs import dispatch
from jobs.models import Execution, ExecutionStatus
from jobs.node import identity
from jobs.services.executions import execution_finish, execution_kill

log = logging.getLogger("dkronweb.agent")

TASK = dispatch.RUN_TASK


def _task_type(sender: Any, request: Any) -> str:
    for value in (getattr(request, "task", None), getattr(sender, "name", None)):
        if isinstance(value, str) and value:
            return value
    return ""


def _execution_id(request: Any) -> int | None:
    kwargs = getattr(request, "kwargs", None) or {}
    args = getattr(request, "args", None) or ()
    value = kwargs.get("execution_id", args[0] if args else None)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def revoke_reason(*, terminated: bool, signum: Any, expired: bool) -> str:
    if terminated:
        try:
            name = signal.Signals(int(signum)).name
        except (TypeError, ValueError):
            name = str(signum or "SIGTERM")
        return f"terminated by Celery (celery control terminate / revoke --terminate, {name})"
    if expired:
        return "expired in Celery before it started"
    return "revoked by Celery (celery control revoke) before it started"


def on_task_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: bool = False,
    signum: Any = None,
    expired: bool = False,
    **_: Any,
) -> None:
    if _task_type(sender, request) != TASK:
        return
    execution_id = _execution_id(request)
    if execution_id is None:
        return
    try:
        record_revoked(
            execution_id,
            reason=revoke_reason(terminated=bool(terminated), signum=signum, expired=expired),
        )
    except Exception:
        log.exception("could not record Celery's revoke of execution %s", execution_id)


def record_revoked(execution_id: int, *, reason: str) -> str:
    """Kill the run's processes and close the execution as killed; returns its status."""
    killed = shell.kill_agent_processes(identity().instance_id, str(execution_id))
    if not connection.in_atomic_block:
        close_old_connections()  # the consumer thread's connection may be stale

    def record() -> str:
        execution = Execution.objects.filter(pk=execution_id).first()
        if execution is None:
            return ""
        if execution.status == ExecutionStatus.QUEUED:
            execution_kill(execution=execution, reason=reason)
        elif execution.status == ExecutionStatus.RUNNING:
            line = reason + (f"; killed {len(killed)} job process(es)" if killed else "")
            text = execution.output or ""
            if text and not text.endswith("\n"):
                text += "\n"
            execution_finish(
                execution_id=execution_id,
                status=ExecutionStatus.KILLED,
                output=f"{text}{line}\n",
                reason=reason,
                retryable=False,
            )
        return str(execution.status)

    was = with_db_retry(record, what="recording a Celery revoke", deadline=30.0)
    log.warning("execution %s (%s): %s", execution_id, was or "gone", reason)
    return was
