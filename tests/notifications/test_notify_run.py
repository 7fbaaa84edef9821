"""notify_run: the rules against the job's history, every channel, and failures that stay quiet."""

from __future__ import annotations

import json
import logging

import pytest
from django.core import mail

from jobs.models import Job, Run
from jobs.services import notifications
from jobs.services.executions import execution_claim, execution_finish
from jobs.services.jobs import job_upsert
from jobs.services.notifications import notify_enqueue, notify_run
from jobs.services.runs import run_now
from tests.web.api.helpers import add_agent

pytestmark = pytest.mark.django_db


def make_job(name: str = "backup", **fields) -> Job:
    data = {
        "name": name,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": "false"},
        **fields,
    }
    return job_upsert(data=data)[0]


def settled_run(job: Job, status: str, *, output: str = "out\n") -> Run:
    """A run of `job` that has settled with `status` (one execution on node-a)."""
    from jobs.services.runs import snapshot_of

    run = Run.objects.create(
        job=job, trigger="manual", snapshot=snapshot_of(job), finished=True, status=status
    )
    run.executions.create(
        job=job,
        job_name=job.name,
        node_name="node-a",
        status="success" if status == "success" else "failed",
        output=output,
        final=True,
    )
    return run


def hook(receiver, **fields) -> dict:
    return {"url": receiver.url + "/hook", **fields}


def test_on_change_tells_the_first_failure_and_the_recovery_only(receiver, notify_settings):
    job = make_job(notify={"on": "on_change", "webhooks": [hook(receiver)]})
    sent = []
    for status in ["success", "failed", "failed", "partially_failed", "success", "success"]:
        sent.append(bool(notify_run(run_id=settled_run(job, status).pk)))

    assert sent == [False, True, False, False, True, False]
    assert [json.loads(r.body)["run"]["status"] for r in receiver.requests] == [
        "failed",
        "success",
    ]


def test_skipped_and_unfinished_runs_do_not_count_as_the_previous_run(receiver, notify_settings):
    job = make_job(notify={"on": "on_change", "webhooks": [hook(receiver)]})
    settled_run(job, "failed")
    settled_run(job, "skipped")
    Run.objects.create(job=job, snapshot={}, finished=False)

    assert notify_run(run_id=settled_run(job, "failed").pk) == []


def test_the_global_rule_and_webhook_apply_to_jobs_without_notify(receiver, notify_settings):
    notify_settings(
        NOTIFY_ON="on_failure",
        NOTIFY_WEBHOOK_URL=receiver.url + "/global",
        NOTIFY_WEBHOOK_HEADERS={"Authorization": "Bearer {{ job.owner }}-token"},
        NOTIFY_WEBHOOK_BODY="{{ job.name }} is {{ run.status }}: {{ ui_url }}",
    )
    job = make_job(owner="team")

    assert notify_run(run_id=settled_run(job, "success").pk) == []
    [outcome] = notify_run(run_id=settled_run(job, "failed").pk)

    assert outcome.ok
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/global")
    assert request.headers["Authorization"] == "Bearer team-token"
    assert request.text == "backup is failed: http://dkron.test:8080/ui/jobs/backup/"


def test_a_jobs_rule_replaces_the_global_one_and_adds_its_webhooks(receiver, notify_settings):
    notify_settings(NOTIFY_ON="on_failure", NOTIFY_WEBHOOK_URL=receiver.url + "/global")
    job = make_job(
        notify={
            "on": "on_success",
            "webhooks": [hook(receiver, method="put", body="{{ executions.0.output }}")],
        }
    )

    assert notify_run(run_id=settled_run(job, "failed").pk) == []
    outcomes = notify_run(run_id=settled_run(job, "success", output="all good\n").pk)

    assert [o.ok for o in outcomes] == [True, True]
    assert [(r.method, r.path) for r in receiver.requests] == [
        ("POST", "/global"),
        ("PUT", "/hook"),
    ]
    assert receiver.requests[1].text == "all good\n"


def test_never_on_a_job_opts_out_of_the_global_rule(receiver, notify_settings):
    notify_settings(NOTIFY_ON="always", NOTIFY_WEBHOOK_URL=receiver.url)
    job = make_job(notify={"on": "never"})

    assert notify_run(run_id=settled_run(job, "failed").pk) == []
    assert receiver.requests == []


def test_email_goes_once_to_the_owner_and_the_extra_recipients(notify_settings, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notify_settings(NOTIFY_EMAIL_ENABLED=True)
    job = make_job(
        owner_email="ops@example.com",
        notify={
            "on": "on_failure",
            "email": "dev@example.com, OPS@example.com",
            "email_subject": "{{ job.name }} broke",
            "email_body": "see {{ ui_url }}\n{% for e in executions %}{{ e.output }}{% endfor %}",
        },
    )

    [outcome] = notify_run(run_id=settled_run(job, "failed", output="disk full\n").pk)

    assert outcome.ok and outcome.channel == "email"
    [message] = mail.outbox
    assert message.to == ["ops@example.com", "dev@example.com"]
    assert message.subject == "backup broke"
    assert message.body == "see http://dkron.test:8080/ui/jobs/backup/\ndisk full\n"


def test_no_email_when_email_is_disabled(notify_settings, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    job = make_job(owner_email="ops@example.com", notify={"on": "always"})

    assert notify_run(run_id=settled_run(job, "failed").pk) == []
    assert mail.outbox == []


def test_the_default_email_reaches_a_real_smtp_server(notify_settings, settings, smtp):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
    notify_settings(NOTIFY_EMAIL_ENABLED=True, NOTIFY_ON="on_failure")
    job = make_job(owner_email="ops@example.com")

    notify_run(run_id=settled_run(job, "failed", output="disk full\n").pk)

    [envelope] = smtp.mailbox.envelopes
    text = envelope.content.decode()
    assert envelope.rcpt_tos == ["ops@example.com"]
    assert "Subject: [dkronweb] backup: failed" in text
    assert "disk full" in text and "http://dkron.test:8080/ui/jobs/backup/" in text


def test_a_failing_notification_is_logged_and_counted_and_changes_nothing_else(
    receiver, notify_settings, settings, caplog
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notify_settings(NOTIFY_EMAIL_ENABLED=True, NOTIFY_RETRIES=1)
    receiver.answer(500, 500)
    job = make_job(
        owner_email="ops@example.com",
        notify={
            "on": "always",
            "webhooks": [
                hook(receiver, headers={"X-Secret": "hunter2"}),
                hook(receiver, body="{{ job.name }} ok"),
            ],
        },
    )
    run = settled_run(job, "failed")
    before = notifications.FAILURES["webhook"]

    with caplog.at_level(logging.INFO, logger="dkronweb.notifications"):
        outcomes = notify_run(run_id=run.pk)

    assert [(o.channel, o.ok) for o in outcomes] == [
        ("email", True),
        ("webhook", False),
        ("webhook", True),
    ]
    assert notifications.FAILURES["webhook"] == before + 1
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.name == "dkronweb.notifications"
    assert f"job backup run {run.pk}: notification failed" in error.getMessage()
    assert "HTTP 500" in error.getMessage()
    assert "hunter2" not in caplog.text and "/hook" not in caplog.text
    run.refresh_from_db()
    assert run.status == "failed" and run.finished


def test_a_template_error_at_send_time_fails_that_webhook_only(receiver, notify_settings):
    # Global templates come from the environment, so nothing checked them at save time.
    notify_settings(NOTIFY_WEBHOOK_URL=receiver.url + "/global", NOTIFY_WEBHOOK_BODY="{% if %}")
    job = make_job(notify={"on": "always", "webhooks": [hook(receiver)]})

    outcomes = notify_run(run_id=settled_run(job, "failed").pk)

    assert [o.ok for o in outcomes] == [False, True]
    assert "TemplateSyntaxError" in outcomes[0].error
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_an_invalid_notify_in_an_old_snapshot_is_ignored_with_an_error(
    receiver, notify_settings, caplog
):
    notify_settings(NOTIFY_ON="always", NOTIFY_WEBHOOK_URL=receiver.url + "/global")
    job = make_job()
    run = settled_run(job, "failed")
    run.snapshot["notify"] = {"on": "sometimes", "webhooks": [hook(receiver)]}
    run.save()

    outcomes = notify_run(run_id=run.pk)

    assert [o.target for o in outcomes] == [f"webhook POST {receiver.url}"]
    assert "its notify field is invalid" in caplog.text


def test_the_settle_hook_publishes_only_when_a_notification_may_follow(
    receiver, notify_settings, django_capture_on_commit_callbacks, django_assert_num_queries
):
    quiet = settled_run(make_job("quiet", owner_email="ops@example.com"), "failed")
    loud = settled_run(
        make_job("loud", notify={"on": "on_failure", "webhooks": [hook(receiver)]}), "failed"
    )

    with django_capture_on_commit_callbacks() as callbacks, django_assert_num_queries(0):
        notify_enqueue(run=quiet, status="failed")
        notify_enqueue(run=loud, status="success")
    assert callbacks == []

    with django_capture_on_commit_callbacks() as callbacks, django_assert_num_queries(0):
        notify_enqueue(run=loud, status="failed")
    assert len(callbacks) == 1


@pytest.mark.parametrize("fast_path", [True, False], ids=["one-statement", "locked-row"])
def test_settling_a_run_enqueues_its_notification(
    receiver, notify_settings, django_capture_on_commit_callbacks, fast_path
):
    add_agent("node-a")
    job = make_job(notify={"on": "on_failure", "webhooks": [hook(receiver)]})
    with django_capture_on_commit_callbacks():
        run = run_now(job=job, force=True)
    execution = run.executions.get()
    claimed = execution_claim(execution_id=execution.pk, node_name="node-a")
    assert claimed is not None

    with django_capture_on_commit_callbacks() as callbacks:
        execution_finish(
            execution_id=execution.pk,
            status="failed",
            output="x",
            claimed=claimed if fast_path else None,
        )

    run.refresh_from_db()
    assert run.status == "failed"
    publishers = [
        c for c in callbacks if c.__qualname__.endswith("notify_enqueue.<locals>.publish")
    ]
    assert len(publishers) == 1
