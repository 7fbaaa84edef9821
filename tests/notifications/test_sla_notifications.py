"""SLA alerts reach the job's own channels: one `late` and one `recovered` webhook, received by
a real HTTP server on loopback, the `alerts` choice of events, email, and bad choices refused."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from jobs.errors import InvalidJob
from jobs.models import Execution
from jobs.services import sla
from jobs.services.executions import execution_claim
from jobs.services.jobs import job_upsert
from jobs.services.runs import run_now
from tests.factories import agent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_check():
    sla.reset()
    yield
    sla.reset()


def late_job(receiver, **notify):
    hook = {"url": receiver.url + "/alerts"}
    return job_upsert(
        data={
            "name": "nightly",
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": {"command": "true"},
            "owner_email": "ops@example.com",
            "sla": {"start_within": "2s"},
            "notify": {"webhooks": [hook], **notify},
        }
    )[0]


def breach_and_recover(job, deliver) -> None:
    run = run_now(job=job)
    [execution] = Execution.objects.filter(run=run)
    soon = timezone.now() + timedelta(seconds=5)
    sla.check(now=soon, deliver=deliver)
    sla.check(now=soon + timedelta(seconds=1), deliver=deliver)  # still late: no second one
    assert execution_claim(execution_id=execution.pk, node_name=execution.node_name)
    sla.check(now=soon + timedelta(seconds=2), deliver=deliver)
    sla.check(now=soon + timedelta(seconds=3), deliver=deliver)


def test_a_late_run_sends_one_late_and_one_recovered_webhook(receiver, notify_settings):
    agent("n1")
    breach_and_recover(late_job(receiver), sla.deliver_now)
    requests = receiver.wait_for(2)
    bodies = [json.loads(r.body) for r in requests]
    assert [b["event"] for b in bodies] == ["late", "recovered"]
    assert all(r.path == "/alerts" for r in requests)
    late, recovered = bodies
    assert late["alert"]["kind"] == "late" and late["alert"]["state"] == "open"
    assert late["job"]["name"] == "nightly"
    assert late["ui_url"] == "http://dkron.test:8080/ui/jobs/nightly/"
    assert recovered["alert"]["state"] == "resolved"
    assert recovered["alert"]["detail"]["resolution"] == "the run started (or ended)"
    assert len(receiver.requests) == 2


def test_the_scheduler_sends_them_from_its_background_threads(receiver, notify_settings):
    agent("n1")
    breach_and_recover(late_job(receiver), sla.in_background)
    receiver.wait_for(2)
    assert [json.loads(r.body)["event"] for r in receiver.requests] == ["late", "recovered"]


def test_alerts_chooses_the_events_sent(receiver, notify_settings):
    agent("n1")
    breach_and_recover(late_job(receiver, alerts=["recovered"]), sla.deliver_now)
    [request] = receiver.wait_for(1)
    assert json.loads(request.body)["event"] == "recovered"
    assert len(receiver.requests) == 1


def test_an_empty_alerts_list_sends_none_and_run_notifications_are_unchanged(
    receiver, notify_settings
):
    agent("n1")
    breach_and_recover(late_job(receiver, alerts=[]), sla.deliver_now)
    assert receiver.requests == []


def test_alerts_go_by_email_too_with_their_own_subject(receiver, notify_settings):
    notify_settings(NOTIFY_EMAIL_ENABLED=True)
    agent("n1")
    breach_and_recover(late_job(receiver), sla.deliver_now)
    subjects = [m.subject for m in mail.outbox]
    assert subjects == ["[dkronweb] nightly: late (late)", "[dkronweb] nightly: recovered (late)"]
    assert mail.outbox[0].to == ["ops@example.com"]
    assert "SLA rule breached: late" in mail.outbox[0].body


def test_an_unknown_alert_event_is_refused_naming_it(receiver, notify_settings):
    with pytest.raises(InvalidJob) as caught:
        late_job(receiver, alerts=["late", "exploded"])
    assert "alerts.1" in caught.value.details["notify"]
    assert "recovered" in caught.value.details["notify"]["alerts.1"]


def test_a_breach_resolved_before_its_notification_left_is_told_as_it_opened(
    receiver, notify_settings
):
    agent("n1")
    queued = []
    breach_and_recover(late_job(receiver), lambda alert_id, event: queued.append((alert_id, event)))
    for alert_id, event in queued:  # both sent after the recovery committed
        sla.deliver_now(alert_id, event)
    late, recovered = (json.loads(r.body) for r in receiver.wait_for(2))
    assert (late["event"], late["alert"]["state"], late["alert"]["resolved_at"]) == (
        "late",
        "open",
        None,
    )
    assert "resolution" not in late["alert"]["detail"]
    assert (recovered["event"], recovered["alert"]["state"]) == ("recovered", "resolved")
