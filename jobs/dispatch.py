"""Publishing runs to agents: queue names and the Celery message for one execution."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from jobs import timeutil
from jobs.models import Execution

log = logging.getLogger("dkronweb.dispatch")

# Bumped when the task's arguments change, so agents of two releases can run side by side.
MESSAGE_VERSION = 1


def node_queue(node_name: str) -> str:
    return f"dkron.node.{node_name}"


def time_limits(snapshot: dict[str, Any]) -> tuple[float, float]:
    """Celery soft/hard limits: the job's timeout (or the default maximum) plus a grace."""
    soft = snapshot.get("timeout_seconds") or settings.DKRON["DEFAULT_MAX_RUNTIME"]
    return float(soft), float(soft) + settings.DKRON["HARD_LIMIT_GRACE"]


def publish(execution: Execution, *, countdown: float = 0.0) -> None:
    """Send the run task to the execution's queue (call after the row is committed)."""
    from jobs.tasks import run_execution

    soft, hard = time_limits(execution.run.snapshot)
    run_execution.apply_async(
        kwargs={"execution_id": execution.pk, "v": MESSAGE_VERSION},
        queue=execution.queue,
        countdown=countdown,
        soft_time_limit=int(soft),
        time_limit=int(hard),
    )
    Execution.objects.filter(pk=execution.pk).update(published_at=timeutil.now())


def publish_on_commit(execution: Execution, *, countdown: float = 0.0) -> None:
    def send() -> None:
        try:
            publish(execution, countdown=countdown)
        except Exception:
            # The row stays queued; the maintenance sweep republishes it.
            log.exception("publish failed for execution %s; it will be republished", execution.pk)

    transaction.on_commit(send)
