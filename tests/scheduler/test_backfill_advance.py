"""The scheduler leader advances an open backfill on its ticks, never past max_concurrency,
and wakes sooner while one is open."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs import timeutil
from jobs.models import Backfill, Execution, Run
from jobs.services import backfill as bf
from jobs.services.executions import execution_claim, execution_finish
from scheduler.beat import CAPACITY_EVERY
from tests.factories import agent
from tests.scheduler.helpers import make_job, new_scheduler


def finish_queued() -> None:
    for execution in Execution.objects.filter(status="queued"):
        execution_claim(execution_id=execution.pk, node_name=execution.node_name)
        execution_finish(execution_id=execution.pk, status="success", output="")


def backfill_runs() -> int:
    return Run.objects.filter(trigger=Run.Trigger.BACKFILL).count()


@pytest.mark.django_db(transaction=True)
def test_the_leader_advances_a_backfill_within_max_concurrency(published):
    agent("node-1")
    job = make_job("hourly", schedule="0 0 * * * *")
    hour = timeutil.now().replace(minute=0, second=0, microsecond=0)
    start = hour - timedelta(hours=4, minutes=59)  # five top-of-the-hours, whatever the minute
    request = bf.clean_request(job=job, data={"from": start.isoformat(), "max_concurrency": 2})
    backfill = bf.backfill_start(job=job, request=request)
    assert backfill.total == 5
    scheduler = new_scheduler()

    interval = scheduler.tick()
    assert backfill_runs() == 2
    assert interval <= CAPACITY_EVERY  # an open backfill brings the next tick closer

    scheduler.last_capacity = scheduler.last_backfill = 0.0  # the next passes are due
    scheduler.tick()
    assert backfill_runs() == 2  # both active: no room
    for _ in range(3):
        finish_queued()
        scheduler.last_capacity = scheduler.last_backfill = 0.0
        scheduler.tick()
    backfill.refresh_from_db()
    assert (backfill.state, backfill.created, backfill.finished) == ("done", 5, 5)
    assert backfill_runs() == 5
    assert not scheduler.backfilling
    assert Backfill.objects.filter(state__in=bf.OPEN).count() == 0
