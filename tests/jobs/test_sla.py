"""The SLA check (jobs.services.sla): each rule opens one alert and resolves it once; two
checks at once open nothing twice; jobs without rules cost nothing.

The check takes `now`, so the tests move the check's clock forward instead of sleeping. The
notifications are recorded by the `deliver` hook (tests/notifications sends them to a real
webhook receiver); here the point is how many, and which.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.errors import InvalidJob
from jobs.models import Alert, Execution, Job
from jobs.services import counters, sla
from jobs.services.executions import execution_claim, execution_finish
from jobs.services.jobs import job_delete, job_toggle, job_upsert
from jobs.services.runs import run_now
from tests.factories import agent, job

pytestmark = pytest.mark.django_db(transaction=True)


class Sent(list[tuple[str, str]]):
    """The notifications the check sent after commit: (alert kind, event)."""

    def __call__(self, alert_id: int, event: str) -> None:
        self.append((Alert.objects.get(pk=alert_id).kind, event))


@pytest.fixture(autouse=True)
def fresh_check():
    sla.reset()
    yield
    sla.reset()


def at(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


def claim(execution: Execution) -> Execution:
    got = execution_claim(execution_id=execution.pk, node_name=execution.node_name)
    assert got is not None
    return got


def finish(execution: Execution, status: str) -> None:
    execution_finish(execution_id=execution.pk, status=status, output="")


def one_run(j: Job) -> Execution:
    run = run_now(job=j)
    [execution] = Execution.objects.filter(run=run)
    return execution


def test_a_late_run_alerts_once_and_recovers_once_when_it_starts():
    agent("n1")
    execution = one_run(job("nightly", sla={"start_within": "2s"}))
    sent = Sent()
    assert sla.check(now=at(1), deliver=sent).opened == 0
    assert sla.check(now=at(5), deliver=sent).opened == 1
    assert sla.check(now=at(6), deliver=sent).opened == 0  # still late: nothing new
    [alert] = Alert.objects.all()
    assert (alert.kind, alert.state, alert.subject) == ("late", "open", f"run {execution.run_id}")
    assert alert.detail["start_within"] == "2s"
    claim(execution)
    assert sla.check(now=at(7), deliver=sent).resolved == 1
    assert sla.check(now=at(8), deliver=sent).resolved == 0
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at is not None
    assert sent == [("late", "late"), ("late", "recovered")]
    assert counters.counter_values()["alerts:late"] == 1


def test_a_run_that_starts_in_time_is_never_late():
    agent("n1")
    claim(one_run(job("quick", sla={"start_within": "1m"})))
    sent = Sent()
    sla.check(now=at(120), deliver=sent)
    assert sent == [] and not Alert.objects.exists()


def test_an_overdue_execution_alerts_once_and_recovers_when_it_ends():
    agent("n1")
    execution = claim(one_run(job("long", sla={"max_duration": "1m"})))
    sent = Sent()
    assert sla.check(now=at(30), deliver=sent).opened == 0
    assert sla.check(now=at(61), deliver=sent).opened == 1
    assert sla.check(now=at(62), deliver=sent).opened == 0
    assert Alert.objects.get().subject == f"execution {execution.pk}"
    finish(execution, "success")
    assert sla.check(now=at(63), deliver=sent).resolved == 1
    assert sent == [("overdue", "overdue"), ("overdue", "recovered")]


def test_kill_after_requests_one_kill_through_the_kill_service():
    agent("n1")
    execution = claim(one_run(job("stuck", sla={"max_duration": "1m", "kill_after": "2m"})))
    sent = Sent()
    assert sla.check(now=at(90), deliver=sent).killed == 0
    assert sla.check(now=at(121), deliver=sent).killed == 1
    assert sla.check(now=at(122), deliver=sent).killed == 0  # asked once
    execution.refresh_from_db()
    assert execution.kill_requested
    assert "kill_after" in execution.reason
    assert sent == [("overdue", "overdue")]


def test_no_success_alerts_a_job_that_stops_succeeding_and_recovers_on_its_next_success():
    agent("n1")
    j = job("heartbeat", sla={"success_within": "1h"})
    sent = Sent()
    assert sla.check(now=at(60), deliver=sent).opened == 0
    assert sla.check(now=at(3601), deliver=sent).opened == 1
    assert sla.check(now=at(3602), deliver=sent).opened == 0
    finish(claim(one_run(j)), "success")
    assert sla.check(now=at(10), deliver=sent).resolved == 1
    assert sla.check(now=at(11), deliver=sent).opened == 0
    assert sent == [("no_success", "no_success"), ("no_success", "recovered")]


def test_a_disabled_job_opens_no_no_success_alert():
    j = job("paused-heartbeat", sla={"success_within": "1h"})
    job_toggle(job=j)
    sla.check(now=at(7200), deliver=Sent())
    assert not Alert.objects.exists()


def test_failing_alerts_after_n_failed_runs_in_a_row_and_recovers_on_a_success():
    agent("n1")
    j = job("flaky", sla={"consecutive_failures": 2})
    sent = Sent()
    finish(claim(one_run(j)), "failed")
    assert sla.check(now=at(1), deliver=sent).opened == 0  # one failure of two
    finish(claim(one_run(j)), "failed")
    assert sla.check(now=at(2), deliver=sent).opened == 1
    finish(claim(one_run(j)), "failed")
    assert sla.check(now=at(3), deliver=sent).opened == 0  # open already
    finish(claim(one_run(j)), "success")
    assert sla.check(now=at(4), deliver=sent).resolved == 1
    assert sent == [("failing", "failing"), ("failing", "recovered")]


def test_a_success_between_failures_breaks_the_row():
    agent("n1")
    j = job("mostly-fine", sla={"consecutive_failures": 2})
    sent = Sent()
    for status in ("failed", "success", "failed"):
        finish(claim(one_run(j)), status)
        sla.check(now=at(1), deliver=sent)
    assert sent == []


def test_removing_the_rule_resolves_its_open_alert():
    agent("n1")
    one_run(job("relaxed", sla={"start_within": "2s"}))
    sent = Sent()
    sla.check(now=at(5), deliver=sent)
    job("relaxed", sla={})
    assert not Job.objects.get(name="relaxed").has_sla
    sla.check(now=at(6), deliver=sent)
    assert sent == [("late", "late"), ("late", "recovered")]
    assert "removed" in Alert.objects.get().detail["resolution"]


def test_a_deleted_job_takes_its_alerts_with_it():
    agent("n1")
    j = job("gone", sla={"start_within": "2s"})
    one_run(j)
    sla.check(now=at(5), deliver=Sent())
    assert Alert.objects.filter(state="open").count() == 1
    job_delete(job=j)
    assert not Alert.objects.exists()
    sla.check(now=at(6), deliver=Sent())


def test_the_database_refuses_a_second_open_alert_for_the_same_breach():
    j = job("twice", sla={"success_within": "1h"})
    fields = {"job": j, "job_name": j.name, "kind": "no_success", "opened_at": timezone.now()}
    Alert.objects.create(**fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(**fields)
    Alert.objects.create(**fields, state="resolved")  # history may hold any number


@pytest.mark.postgresql
def test_two_checks_at_once_open_one_alert_and_send_one_notification():
    agent("n1")
    for i in range(20):
        one_run(job(f"race-{i}", sla={"start_within": "1s"}))
    sent = Sent()
    lock = threading.Lock()
    barrier = threading.Barrier(2)
    now = at(10)

    def deliver(alert_id: int, event: str) -> None:
        with lock:
            sent(alert_id, event)

    def one_check() -> None:
        try:
            barrier.wait(timeout=10)
            sla.check(now=now, deliver=deliver)
        finally:
            connection.close()

    threads = [threading.Thread(target=one_check) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert Alert.objects.filter(state="open").count() == 20
    assert sorted(sent) == [("late", "late")] * 20


def test_jobs_without_rules_cost_the_check_nothing():
    agent("n1")
    for i in range(30):
        one_run(job(f"plain-{i}"))
    assert not Job.objects.filter(has_sla=True).exists()
    with CaptureQueriesContext(connection) as queries:
        report = sla.check(now=at(3600), deliver=Sent())
    assert not report.active
    assert len(queries) == 2  # the open alerts, the jobs with rules: both empty


@pytest.mark.parametrize("jobs", [2, 20])
def test_a_quiet_check_reads_the_same_few_statements_however_many_jobs(jobs):
    agent("n1")
    for i in range(jobs):
        j = job(
            f"many-{i}", sla={"start_within": "1s", "max_duration": "1h", "success_within": "1h"}
        )
        claim(one_run(j))
        one_run(j)
    sla.check(now=at(5), deliver=Sent())  # opens the late alerts
    with CaptureQueriesContext(connection) as queries:
        report = sla.check(now=at(6), deliver=Sent())
    assert report.opened == report.resolved == 0
    # open alerts, their jobs, their runs' queued executions; the jobs with rules, their
    # open alerts, late executions, overdue executions.
    assert len(queries) == 7


@pytest.mark.parametrize(
    ("rules", "key", "message"),
    [
        ({"start_within": "soon"}, "start_within", "invalid duration"),
        ({"start_within": "0s"}, "start_within", "more than 0s"),
        ({"max_duration": "9000h"}, "max_duration", "at most"),
        ({"kill_after": "1h"}, "kill_after", "needs max_duration"),
        ({"max_duration": "1h", "kill_after": "1m"}, "kill_after", "shorter"),
        ({"consecutive_failures": 0}, "consecutive_failures", "between 1"),
        ({"consecutive_failures": "two"}, "consecutive_failures", "whole number"),
        ({"start_in": "1m"}, "start_in", "unknown rule"),
    ],
)
def test_a_bad_rule_is_refused_naming_it(rules, key, message):
    with pytest.raises(InvalidJob) as caught:
        job_upsert(
            data={
                "name": "bad",
                "schedule": "@manually",
                "executor": "shell",
                "executor_config": {"command": "true"},
                "sla": rules,
            }
        )
    assert message in caught.value.details["sla"][key]
    assert not Job.objects.filter(name="bad").exists()


def test_rules_are_stored_as_sent_and_numbers_are_seconds():
    j = job("kept", sla={"start_within": 90, "success_within": "26h", "consecutive_failures": "3"})
    assert j.sla == {"start_within": 90, "success_within": "26h", "consecutive_failures": "3"}
    assert j.has_sla
