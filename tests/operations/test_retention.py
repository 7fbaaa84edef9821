"""Retention: the age limit and history_limit delete finished executions in batches, never
active ones, and the hourly periodic task is created once by the scheduler."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import PeriodicTask

from agent import tasks
from dkronweb.celery import app
from jobs import timeutil
from jobs.models import Execution, Job, Run
from jobs.services.retention import (
    PERIODIC_TASK_NAME,
    TASK_NAME,
    retention_apply,
    retention_schedule_ensure,
)
from scheduler.beat import JobScheduler
from tests.factories import job

pytestmark = pytest.mark.django_db
DAY = 86400.0


def execution(j: Job, status: str, *, age_days: float = 0, run: Run | None = None) -> Execution:
    """A row as the services leave it: closed rows have finished_at, active ones none."""
    finished = status not in ("queued", "running")
    when = timeutil.now() - timedelta(days=age_days)
    if run is None:
        run = Run.objects.create(job=j, snapshot={}, finished=finished, status=status)
    return Execution.objects.create(
        run=run,
        job=j,
        job_name=j.name,
        status=status,
        started_at=when if status != "queued" else None,
        finished_at=when if finished else None,
        final=finished,
    )


def delete_statements(captured: CaptureQueriesContext) -> int:
    return sum(1 for q in captured if q["sql"].startswith('DELETE FROM "jobs_execution"'))


@pytest.fixture
def conf(settings):
    settings.DKRON = {**settings.DKRON, "HISTORY_MAX_AGE": 30 * DAY, "HISTORY_LIMIT": 100}
    return settings.DKRON


def test_it_deletes_exactly_the_finished_executions_older_than_the_limit(conf):
    j = job("aged")
    old = [execution(j, s, age_days=45) for s in ("success", "failed", "killed", "skipped")]
    recent = [execution(j, "success", age_days=29), execution(j, "failed", age_days=1)]
    queued = execution(j, "queued")
    running = execution(j, "running")
    Execution.objects.filter(pk__in=[queued.pk, running.pk]).update(
        queued_at=timeutil.now() - timedelta(days=100)
    )

    report = retention_apply()

    assert report.expired == len(old) and report.complete
    kept = set(Execution.objects.values_list("pk", flat=True))
    assert kept == {e.pk for e in recent} | {queued.pk, running.pk}


def test_it_never_deletes_an_active_execution_even_with_an_old_finish_time(conf):
    j = job("reopened")
    row = execution(j, "running")
    Execution.objects.filter(pk=row.pk).update(finished_at=timeutil.now() - timedelta(days=99))

    assert retention_apply().expired == 0
    assert Execution.objects.filter(pk=row.pk).exists()


def test_runs_left_without_executions_go_and_the_others_stay(conf):
    j = job("runs")
    emptied = execution(j, "success", age_days=60).run
    shared = execution(j, "failed", age_days=60).run
    execution(j, "success", age_days=1, run=shared)  # a retry in the same run, still kept
    alive = execution(j, "running").run

    report = retention_apply()

    assert report.runs == 1
    assert not Run.objects.filter(pk=emptied.pk).exists()
    assert Run.objects.filter(pk__in=[shared.pk, alive.pk]).count() == 2


@pytest.mark.parametrize(("rows", "batch", "deletes"), [(7, 3, 3), (6, 3, 2), (2, 5000, 1)])
def test_it_deletes_in_batches_of_the_configured_size(settings, conf, rows, batch, deletes):
    settings.DKRON = {**conf, "RETENTION_BATCH": batch}
    j = job("batched")
    for _ in range(rows):
        execution(j, "success", age_days=40)
    execution(j, "success", age_days=2)

    with CaptureQueriesContext(connection) as captured:
        report = retention_apply()

    assert report.expired == rows
    assert delete_statements(captured) == deletes
    assert Execution.objects.count() == 1


def test_an_age_limit_of_zero_keeps_everything(settings, conf):
    settings.DKRON = {**conf, "HISTORY_MAX_AGE": 0}
    j = job("forever")
    execution(j, "success", age_days=3650)

    assert retention_apply().expired == 0
    assert Execution.objects.count() == 1


def test_a_spent_time_budget_stops_before_deleting_and_says_so(settings, conf):
    settings.DKRON = {**conf, "RETENTION_TIME_BUDGET": 0}
    j = job("budget")
    execution(j, "success", age_days=40)

    report = retention_apply()

    assert not report.complete and report.expired == 0
    assert Execution.objects.count() == 1


def test_it_applies_each_jobs_history_limit_to_jobs_over_it(settings, conf):
    settings.DKRON = {**conf, "RETENTION_BATCH": 2}
    over = job("over", history_limit=2)
    finished = [execution(over, "success", age_days=1) for _ in range(5)]
    running = execution(over, "running")
    within = job("within", history_limit=3)
    kept = [execution(within, "success", age_days=1) for _ in range(3)]
    default = job("default-limit")  # no history_limit: DKRON_HISTORY_LIMIT (100)
    many = [execution(default, "success", age_days=1) for _ in range(6)]

    report = retention_apply()

    # As trim_history: the newest `limit` rows (active ones included) stay.
    assert set(Execution.objects.filter(job=over).values_list("pk", flat=True)) == {
        finished[-1].pk,
        running.pk,
    }
    assert Execution.objects.filter(job=within).count() == len(kept)
    assert Execution.objects.filter(job=default).count() == len(many)
    assert report.trimmed == 4 and report.jobs_trimmed == 1
    assert Run.objects.filter(job=over).count() == 2


def test_the_celery_task_applies_retention(conf):
    j = job("task")
    execution(j, "success", age_days=40)

    tasks.retention.apply()

    assert not Execution.objects.exists()


def test_the_scheduler_registers_the_periodic_task_once(transactional_db, conf):
    # transactional_db: django-celery-beat closes connections it finds inside a transaction.
    for _ in range(2):
        scheduler = JobScheduler(app=app)
        assert PERIODIC_TASK_NAME in scheduler.schedule

    [task] = PeriodicTask.objects.filter(task=TASK_NAME)
    assert task.name == PERIODIC_TASK_NAME and task.enabled
    assert (task.crontab.minute, task.crontab.hour) == ("17", "*")


def test_an_operators_changes_to_the_periodic_task_are_kept(conf):
    task, created = retention_schedule_ensure()
    assert created
    task.enabled = False
    task.crontab.minute = "45"
    task.crontab.save()
    task.save()

    again, created = retention_schedule_ensure()

    assert not created and again.pk == task.pk
    again.refresh_from_db()
    assert not again.enabled and again.crontab.minute == "45"
    assert PeriodicTask.objects.filter(task=TASK_NAME).count() == 1
