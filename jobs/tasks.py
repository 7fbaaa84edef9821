"""Celery tasks: thin wrappers that call the runner and services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from jobs import dispatch, timeutil
from jobs.models import Execution


@shared_task(bind=True, name="dkronweb.run_execution", ignore_result=True)
def run_execution(self: Any, execution_id: int, v: int = dispatch.MESSAGE_VERSION) -> None:
    """Run one execution on this agent; a failed attempt comes back as a Celery retry."""
    from jobs import agent, runner

    retry = runner.run_execution(execution_id, node_name=agent.identity().name)
    if retry is None:
        return
    countdown = 0.0
    if retry.not_before is not None:
        countdown = max(0.0, (retry.not_before - timeutil.now()).total_seconds())
    Execution.objects.filter(pk=retry.pk).update(published_at=timeutil.now())
    raise self.retry(
        kwargs={"execution_id": retry.pk, "v": dispatch.MESSAGE_VERSION},
        countdown=countdown,
        queue=retry.queue,
        max_retries=None,
    )


@shared_task(name="dkronweb.notify_run", ignore_result=True)
def notify_run(run_id: int, v: int = dispatch.MESSAGE_VERSION) -> None:
    """Email and webhooks about a settled run; failures are logged there, never raised."""
    from jobs.services.notifications import notify_run as notify

    notify(run_id=run_id)


@shared_task(name="dkronweb.retention", ignore_result=True)
def retention() -> None:
    """Delete old and over-limit execution history (a django-celery-beat periodic task)."""
    from jobs.services.retention import retention_apply

    retention_apply()
