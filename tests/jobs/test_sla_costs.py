"""Issue 17: the SLA check costs the same whatever the history and the backlog.

As tests/jobs/test_history_costs.py: every statement the check sends is run under EXPLAIN
ANALYZE on PostgreSQL, sequential scans off and planner statistics from before the data came
(as in production after a burst), and the rows each plan node reads must stay far below the
history (HISTORY failed runs of the watched job), the backlog (BACKLOG queued executions of a
job without rules) and the jobs without rules.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from jobs import timeutil
from jobs.models import Alert, Execution, Job, Run
from jobs.services import sla
from tests.factories import agent, job
from tests.harness import require
from tests.jobs.test_history_costs import BACKLOG, HISTORY, assert_bounded, explained, on_postgres

pytestmark = pytest.mark.postgresql

PLAIN_JOBS = 2000


@pytest.fixture
def watched(db):
    require(on_postgres(), "plans are PostgreSQL's (the SQLite pass leaves these tests out)")
    sla.reset()
    agent("n1")
    rules = {
        "start_within": "1s",
        "max_duration": "1m",
        "success_within": "1h",
        "consecutive_failures": 3,
    }
    watched = job("watched", sla=rules)
    other = job("backlog")
    Job.objects.bulk_create(
        Job(name=f"plain-{i}", schedule="@manually", executor="shell") for i in range(PLAIN_JOBS)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_execution, jobs_run, jobs_job, jobs_alert")
    now = timeutil.now()
    then = now - timedelta(hours=2)
    past = Run.objects.bulk_create(
        Run(job=watched, scheduled_at=then - timedelta(minutes=i), finished=True, status="failed")
        for i in range(HISTORY)
    )
    Execution.objects.bulk_create(
        Execution(
            run=r,
            job=watched,
            job_name=watched.name,
            node_name="n1",
            status="failed",
            final=True,
            started_at=r.scheduled_at,
            finished_at=r.scheduled_at,
        )
        for r in past
    )
    queued = Run.objects.bulk_create(
        Run(job=other, scheduled_at=then - timedelta(seconds=i)) for i in range(BACKLOG)
    )
    Execution.objects.bulk_create(
        Execution(run=r, job=other, job_name=other.name, node_name="n1", scheduled_at=then)
        for r in queued
    )
    for i, (status, started) in enumerate((("queued", None), ("running", then))):
        run = Run.objects.create(job=watched, scheduled_at=then + timedelta(seconds=i + 1))
        Execution.objects.create(
            run=run,
            job=watched,
            job_name=watched.name,
            node_name="n1",
            status=status,
            scheduled_at=run.scheduled_at,
            started_at=started,
        )
    Execution.objects.update(queued_at=then)  # auto_now_add set it to now
    Job.objects.filter(pk=watched.pk).update(last_error=then, created_at=then)
    yield watched
    sla.reset()


def test_the_check_reads_none_of_the_history_the_backlog_or_the_jobs_without_rules(watched):
    with explained() as seen:
        report = sla.check(deliver=lambda *_: None)
    assert report.opened == 4  # late, overdue, no_success, failing
    assert_bounded(seen)
    # `failing` read the job's newest runs by the job's index, not by a walk of the primary key
    # backwards through the other job's runs (what stale statistics chose once).
    [runs] = [node for sql, node, _ in seen if 'FROM "jobs_run"' in sql]
    assert "run_job_idx" in runs, runs
    with explained() as seen:  # the next check: the alerts are open, nothing new
        report = sla.check(deliver=lambda *_: None)
    assert (report.opened, report.resolved) == (0, 0)
    assert_bounded(seen)
    assert sorted(Alert.objects.values_list("kind", flat=True)) == [
        "failing",
        "late",
        "no_success",
        "overdue",
    ]
