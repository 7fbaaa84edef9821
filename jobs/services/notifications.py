"""Notifying people when a run settles: decide (rules), render (templates), send (email, webhook).

A failed notification is logged at ERROR on the "dkronweb.notifications" logger and counted in
FAILURES; it never changes the run, its job or its dependents (the run has settled and
committed before the notification task is even published).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction

from confidential import SecretError
from executors import netguard
from jobs import secrets as job_secrets
from jobs import telemetry
from jobs.dispatch import NOTIFY_TASK
from jobs.models import Alert, Run
from jobs.notifications import NotificationError, render, rules, schema
from jobs.notifications import email as email_sender
from jobs.notifications import webhook as webhook_sender

log = logging.getLogger("dkronweb.notifications")

# Deliveries per channel since this process started ("email", "webhook"). A process-local
# figure for now; a metric read from the database would need a table.
SENT: Counter[str] = Counter()
FAILURES: Counter[str] = Counter()


@dataclass
class Outcome:
    channel: str
    target: str
    ok: bool
    error: str = ""


def notify_enqueue(*, run: Run, status: str) -> None:
    """Publish the notify task once the settle commits, when the snapshot says it may apply.

    Called for every settled run, on the agent's hot path: it reads the run's snapshot and the
    settings only (no query, no message) when nothing is configured.
    """
    conf = settings.DKRON
    wanted = rules.may_notify(
        run.snapshot,
        status,
        default_rule=conf["NOTIFY_ON"],
        email_enabled=conf["NOTIFY_EMAIL_ENABLED"],
        global_webhook=bool(conf["NOTIFY_WEBHOOK_URL"]),
    )
    if not wanted:
        return
    run_id = run.pk

    def publish() -> None:
        try:
            current_app.send_task(
                NOTIFY_TASK, kwargs={"run_id": run_id}, queue=settings.CELERY_TASK_DEFAULT_QUEUE
            )
        except Exception:
            FAILURES["publish"] += 1
            telemetry.count_notification_failure("publish")
            log.exception("run %s: could not publish its notification task", run_id)

    transaction.on_commit(publish)


def notify_run(*, run_id: int) -> list[Outcome]:
    """Send what the rules ask for about a settled run; one outcome per email or webhook."""
    run = Run.objects.select_related("job").filter(pk=run_id, finished=True).first()
    if run is None:
        return []  # deleted meanwhile (with its job, or an ephemeral job after success)
    conf = settings.DKRON
    snapshot = run.snapshot
    try:
        notify = schema.parse(job_secrets.decrypt_notify(snapshot.get("notify")))
    except SecretError as exc:
        log.error("job %s: its notify webhooks cannot be used: %s", run.job.name, exc)
        notify = schema.Notify()
    except schema.InvalidNotify as exc:
        # Saved before validation existed: the global settings still apply.
        log.error("job %s: its notify field is invalid and is ignored: %s", run.job.name, exc)
        notify = schema.Notify()
    rule = rules.effective_rule(notify.on, conf["NOTIFY_ON"])
    previous = _previous_status(run) if rule == "on_change" else None
    if not rules.should_notify(rule, run.status, previous):
        return []
    context = render.build_context(
        job=run.job,
        run=run,
        executions=list(run.executions.all()),
        public_url=conf["PUBLIC_URL"],
    )
    label = f"job {run.job.name} run {run.pk}"
    owner_email = snapshot.get("owner_email", run.job.owner_email)
    return _send_all(label, notify, context, owner_email=owner_email)


def _send_all(
    label: str,
    notify: schema.Notify,
    context: dict[str, Any],
    *,
    owner_email: str,
    subject: str = "",
    body: str = "",
) -> list[Outcome]:
    """Email and webhooks through the job's channels and the global ones; one outcome each.
    `subject` and `body` are the email's default templates (the job's own win)."""
    conf = settings.DKRON
    outcomes: list[Outcome] = []
    recipients = _recipients(owner_email, notify.email)
    email_subject = notify.email_subject or subject or render.DEFAULT_EMAIL_SUBJECT
    email_body = notify.email_body or body or render.DEFAULT_EMAIL_BODY
    if conf["NOTIFY_EMAIL_ENABLED"] and recipients:
        outcomes.append(
            _deliver(
                label,
                "email",
                f"email to {len(recipients)} recipient(s)",
                lambda: email_sender.send(
                    recipients=recipients,
                    subject=render.render(email_subject, context),
                    body=render.render(email_body, context),
                ),
            )
        )
    for hook in _webhooks(notify):
        request = webhook_sender.Request(
            url=hook.url,
            method=hook.method,
            timeout=hook.timeout or conf["NOTIFY_TIMEOUT"],
            retries=conf["NOTIFY_RETRIES"] if hook.retries is None else hook.retries,
            backoff=conf["NOTIFY_RETRY_BACKOFF"],
            guard=netguard.Guard.from_settings(conf),
        )
        outcomes.append(
            _deliver(
                label,
                "webhook",
                f"webhook {request.target}",
                functools.partial(_send_webhook, hook, request, context),
            )
        )
    return outcomes


def notify_alert(*, alert_id: int, event: str) -> list[Outcome]:
    """Send an SLA event (jobs.services.sla) through the job's channels and the global ones,
    as its `notify` stands now: `alerts` chooses the events (all by default), and the job's
    email templates win over the alert defaults. One outcome per email or webhook."""
    alert = Alert.objects.select_related("job").filter(pk=alert_id).first()
    if alert is None:
        return []  # its job was deleted meanwhile
    job = alert.job
    if event != "recovered" and alert.state != "open":
        # Resolved before this was sent: tell the breach as it was when it opened.
        alert.state, alert.resolved_at = "open", None
        alert.detail = {k: v for k, v in (alert.detail or {}).items() if k != "resolution"}
    try:
        notify = schema.parse(job_secrets.decrypt_notify(job.notify))
    except SecretError as exc:
        log.error("job %s: its notify webhooks cannot be used: %s", job.name, exc)
        notify = schema.Notify()
    except schema.InvalidNotify as exc:
        log.error("job %s: its notify field is invalid and is ignored: %s", job.name, exc)
        notify = schema.Notify()
    if notify.alerts is not None and event not in notify.alerts:
        return []
    context = render.build_alert_context(
        job=job, alert=alert, event=event, public_url=settings.DKRON["PUBLIC_URL"]
    )
    return _send_all(
        f"job {job.name} alert {alert.pk} ({event})",
        notify,
        context,
        owner_email=job.owner_email,
        subject=render.DEFAULT_ALERT_SUBJECT,
        body=render.DEFAULT_ALERT_BODY,
    )


def _previous_status(run: Run) -> str | None:
    """The status of the job's settled run before this one (skipped runs do not count)."""
    return (
        Run.objects.filter(job_id=run.job_id, pk__lt=run.pk, finished=True)
        .exclude(status__in=["", "skipped"])
        .order_by("-pk")
        .values_list("status", flat=True)
        .first()
    )


def _recipients(owner_email: str, extra: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for address in [owner_email, *extra]:
        if address and address.lower() not in seen:
            seen[address.lower()] = address
    return list(seen.values())


def _webhooks(notify: schema.Notify) -> list[schema.Webhook]:
    """The global webhook (settings) first, then the job's own."""
    conf = settings.DKRON
    hooks = list(notify.webhooks)
    if conf["NOTIFY_WEBHOOK_URL"]:
        hooks.insert(
            0,
            schema.Webhook.model_construct(
                url=conf["NOTIFY_WEBHOOK_URL"],
                method="POST",
                headers=dict(conf["NOTIFY_WEBHOOK_HEADERS"]),
                body=conf["NOTIFY_WEBHOOK_BODY"],
                timeout=None,
                retries=None,
            ),
        )
    return hooks


def _send_webhook(
    hook: schema.Webhook, request: webhook_sender.Request, context: dict[str, Any]
) -> None:
    # Rendered here, inside _deliver, so a template error counts as this webhook's failure.
    request.headers = {
        name: " ".join(render.render(value, context).splitlines())
        for name, value in hook.headers.items()
    }
    request.body = render.render(hook.body or render.DEFAULT_WEBHOOK_BODY, context)
    webhook_sender.send(request)


def _deliver(label: str, channel: str, target: str, send: Callable[[], None]) -> Outcome:
    try:
        send()
    except NotificationError as exc:
        error = str(exc)
    except Exception as exc:  # a notification must never break the task or the run
        error = f"{type(exc).__name__}: {exc}"
    else:
        SENT[channel] += 1
        log.info("%s: sent %s", label, target)
        return Outcome(channel, target, ok=True)
    FAILURES[channel] += 1
    telemetry.count_notification_failure(channel)
    log.error("%s: notification failed: %s: %s", label, target, error)
    return Outcome(channel, target, ok=False, error=error)
