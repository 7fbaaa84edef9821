"""Celery tasks: thin wrappers that call the runner and services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from agent import runner
from jobs import dispatch, node, timeutil, tracing
from jobs.models import Execution, ExecutionStatus
from jobs.services.notifications import notify_run as notify
from jobs.services.retention import retention_apply

# Ends of an execution that Celery's tools (Flower, `celery events`) must show as FAILURE.
FAILED_STATUSES = (ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, ExecutionStatus.KILLED)


class ExecutionFailed(Exception):
    """The execution ended failed, timed out or killed, and no retry follows.

    Raised after the runner has recorded everything, only so that the Celery task ends in
    FAILURE (a `task-failed` event) rather than SUCCESS. Listed in the task's `throws`: the
    worker logs one line for it, not a traceback, and nothing retries it.
    """

    def __init__(self, execution_id: int, job: str, status: str, reason: str = "") -> None:
        self.execution_id, self.job, self.status, self.reason = execution_id, job, status, reason
        text = f"execution {execution_id} of job {job!r} ended {status}"
        super().__init__(f"{text}: {reason}" if reason else text)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for prefork pools
        return (type(self), (self.execution_id, self.job, self.status, self.reason))


@shared_task(bind=True, name=dispatch.RUN_TASK, ignore_result=True, throws=(ExecutionFailed,))
def run_execution(self: Any, execution_id: int, v: int = dispatch.MESSAGE_VERSION) -> None:
    """Run one execution on this agent; a failed attempt comes back as a Celery retry."""
    node_name = node.identity().name
    # A message's own headers are the request's `headers` (a worker's and `apply`'s alike).
    header = (self.request.headers or {}).get("traceparent") if tracing.ENABLED else None
    outcome = runner.run(execution_id, node_name=node_name, traceparent=header)
    retry = outcome.retry
    if retry is None:
        if not outcome.status:  # recorded nothing here: ask the row (rare)
            _raise_if_failed(execution_id, node_name)
        elif outcome.status in FAILED_STATUSES:  # as recorded, without reading it back
            raise ExecutionFailed(execution_id, outcome.job, outcome.status, outcome.reason)
        return
    countdown = 0.0
    if retry.not_before is not None:
        countdown = max(0.0, (retry.not_before - timeutil.now()).total_seconds())
    Execution.objects.filter(pk=retry.pk).update(published_at=timeutil.now())
    spans = tracing.publishing()  # the retry's own traceparent, not this message's
    headers = spans.header(retry)
    retried = self.retry(
        kwargs={"execution_id": retry.pk, "v": dispatch.MESSAGE_VERSION},
        countdown=countdown,
        queue=retry.queue,
        max_retries=None,
        throw=False,  # sent; raised below once its publish span is recorded
        **({"headers": headers} if headers else {}),
        **dispatch.task_labels(retry),
    )
    spans.end()
    raise retried


def _raise_if_failed(execution_id: int, node_name: str) -> None:
    """ExecutionFailed when this agent ran the execution and it ended badly.

    A delivery that found the execution taken by another delivery, killed while queued or
    deleted ran nothing here: it stays SUCCESS (there is nothing for it to report).
    """
    row = (
        Execution.objects.filter(pk=execution_id, node_name=node_name, finished_at__isnull=False)
        .values("job_name", "status", "reason")
        .first()
    )
    if row is not None and row["status"] in FAILED_STATUSES:
        raise ExecutionFailed(execution_id, row["job_name"], row["status"], row["reason"])


@shared_task(name=dispatch.NOTIFY_TASK, ignore_result=True)
def notify_run(run_id: int, v: int = dispatch.MESSAGE_VERSION) -> None:
    """Email and webhooks about a settled run; failures are logged there, never raised."""
    notify(run_id=run_id)


@shared_task(name="dkronweb.retention", ignore_result=True)
def retention() -> None:
    """Delete old and over-limit execution history (a django-celery-beat periodic task)."""
    retention_apply()
