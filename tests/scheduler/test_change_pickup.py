"""A change to one job among 20,000 is picked up by the next tick without reloading the rest."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import timeutil
from jobs.models import Agent, Job, Run
from jobs.services.runs import fire_due_jobs
from scheduler.beat import JobScheduler


def seed(count: int) -> None:
    later = timeutil.now() + timedelta(hours=1)
    Job.objects.bulk_create(
        [
            Job(
                name=f"bulk-{i}",
                schedule="0 0 * * * *",
                executor="shell",
                executor_config={"command": "true"},
                next_run=later,
            )
            for i in range(count)
        ],
        batch_size=5000,
    )


def tick_queries() -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        report = fire_due_jobs()
    return report.fired, [q["sql"] for q in ctx.captured_queries]


def test_an_update_to_one_of_20000_jobs_fires_at_the_next_tick_reading_only_due_rows(api):
    Agent.objects.create(
        name="a1", tags={"role": "dkron"}, last_heartbeat=timeutil.now() + timedelta(days=1)
    )
    seed(20_000)
    idle_fired, idle_sql = tick_queries()
    assert idle_fired == 0
    # Only the due-jobs query runs when nothing is due: no scan, no reload.
    assert len(idle_sql) <= 3, idle_sql

    body = {
        "name": "bulk-7",
        "schedule": "@every 1s",
        "executor": "shell",
        "executor_config": {"command": "true"},
    }
    assert api.put("/v1/jobs/bulk-7", body, format="json").status_code == 201
    job = Job.objects.get(name="bulk-7")
    assert job.next_run is not None and job.next_run <= timeutil.now() + timedelta(seconds=1)

    Job.objects.filter(pk=job.pk).update(next_run=timeutil.now())
    fired, sql = tick_queries()
    assert fired == 1
    assert Run.objects.get().job_id == job.pk
    due_query = next(q for q in sql if 'FROM "jobs_job"' in q and "next_run" in q)
    assert "LIMIT" in due_query and '"jobs_job"."next_run" <=' in due_query
    # The work of a tick follows the due jobs: the same statements with 20,000 idle jobs as
    # with none (reads of the due rows, the advance, the inserts, the publish bookkeeping).
    assert len(sql) <= 15, sql


def test_the_scheduler_tick_does_not_reload_periodic_tasks_when_a_job_changes(api, settings):
    seed(2_000)
    scheduler = JobScheduler(app=__import__("dkronweb").celery_app, lazy=True)
    with CaptureQueriesContext(connection) as ctx:
        scheduler.tick()
    job_rows = [q["sql"] for q in ctx.captured_queries if 'FROM "jobs_job"' in q["sql"]]
    assert all("LIMIT" in q for q in job_rows), job_rows
