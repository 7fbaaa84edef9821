"""Publishing runs to agents: queue names and the Celery message for one execution."""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction

from jobs import timeutil, tracing
from jobs.models import Execution

log = logging.getLogger("dkronweb.dispatch")

# Bumped when the task's arguments change, so agents of two releases can run side by side.
MESSAGE_VERSION = 1
# The agent's tasks, by name: the core publishes them without importing the agent role
# (agent/tasks.py registers these names; Celery's `current_app` is dkronweb.celery's app).
RUN_TASK = "dkronweb.run_execution"
NOTIFY_TASK = "dkronweb.notify_run"
# Broker commands buffered before a publish batch is flushed (kombu's default).
PUBLISH_BATCH = 1000


NODE_QUEUE_PREFIX = "dkron.node."


def node_queue(node_name: str) -> str:
    return f"{NODE_QUEUE_PREFIX}{node_name}"


def queue_node(queue: str) -> str:
    """The node a node queue is for ("" for any other queue): `node_queue`'s inverse."""
    return queue.removeprefix(NODE_QUEUE_PREFIX) if queue.startswith(NODE_QUEUE_PREFIX) else ""


def time_limits(snapshot: dict[str, Any]) -> tuple[float, float]:
    """Celery soft/hard limits: the job's timeout (or the default maximum) plus a grace."""
    soft = snapshot.get("timeout_seconds") or settings.DKRON["DEFAULT_MAX_RUNTIME"]
    return float(soft), float(soft) + settings.DKRON["HARD_LIMIT_GRACE"]


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else ""


def task_labels(execution: Execution) -> dict[str, Any]:
    """What Celery's tools show for the run task instead of `run_execution(execution_id)`.

    `shadow` is the name Flower, `celery events` and `inspect active` list the task under
    (`run <job> #<attempt> @ <scheduled time>`); `kwargsrepr` is the readable arguments. The
    message's real task name (`dkronweb.run_execution`, the `type` in `inspect`) and its
    arguments stay as they were, so agents of two releases still run each other's messages.
    """
    run = execution._state.fields_cache.get("run")  # never a query of its own
    trigger = str(run.trigger) if run is not None else ""
    scheduled = execution.scheduled_at or (run.scheduled_at if run is not None else None)
    # A run without a scheduled time (run now, a dependent job) shows when it was queued.
    when = _when(scheduled or execution.queued_at)
    shadow = f"run {execution.job_name} #{execution.attempt}" + (f" @ {when}" if when else "")
    if trigger and trigger != "schedule":
        shadow += f" ({trigger})"
    readable = {
        "execution_id": execution.pk,
        "job": execution.job_name,
        "scheduled_at": _when(scheduled) or None,
        "attempt": execution.attempt,
        "run_id": execution.run_id,
        "trigger": trigger or None,
        "v": MESSAGE_VERSION,
    }
    return {"shadow": shadow, "kwargsrepr": repr(readable)}


def publish(execution: Execution, *, countdown: float = 0.0) -> None:
    """Send the run task to the execution's queue (call after the row is committed)."""
    publish_many([execution], countdown=countdown)


def publish_many(executions: list[Execution], *, countdown: float = 0.0) -> None:
    """Send many run tasks over one broker connection, then mark them published in one UPDATE.

    `execution.run` must be loaded (the batch path sets it) for the time limits.

    The messages go out in kombu's publish batches (`Producer.batch`): on Redis, one
    pipeline round trip per PUBLISH_BATCH commands instead of one round trip, and one redis-py
    client object, per message (what the scheduler spent most of a fire on); transports
    without batches (AMQP, the in-process broker) publish each message at once, as before.
    A batch that fails to flush raises here, before the rows are marked published, so the
    sweep publishes them again.
    """
    if not executions:
        return
    app = current_app
    # Each message's traceparent header (None: tracing off); a batch that fails to flush
    # records no publish spans (the sweep's publish of the same rows will).
    spans = tracing.publishing()
    with (
        app.producer_or_acquire() as producer,  # type: ignore[attr-defined]
        producer.batch(max_size=PUBLISH_BATCH),
    ):
        for execution in executions:
            soft, hard = time_limits(execution.run.snapshot)
            app.send_task(
                RUN_TASK,
                kwargs={"execution_id": execution.pk, "v": MESSAGE_VERSION},
                queue=execution.queue,
                countdown=countdown,
                soft_time_limit=int(soft),
                time_limit=int(hard),
                producer=producer,
                headers=spans.header(execution),
                **task_labels(execution),
            )
    spans.end()
    Execution.objects.filter(pk__in=[e.pk for e in executions]).update(published_at=timeutil.now())


def publish_on_commit(executions: Execution | list[Execution], *, countdown: float = 0.0) -> None:
    """Publish once the rows are committed; a failure leaves them queued for the sweep."""
    batch = executions if isinstance(executions, list) else [executions]

    def send() -> None:
        try:
            publish_many(batch, countdown=countdown)
        except Exception:
            # The rows stay queued; the maintenance sweep republishes them.
            log.exception("publish failed for %d execution(s); the sweep will retry", len(batch))

    transaction.on_commit(send)
