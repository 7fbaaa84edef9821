"""The email sender through a real SMTP server (aiosmtpd) and Django's locmem backend."""

from __future__ import annotations

from email import message_from_bytes

import pytest
from django.core import mail

from jobs.notifications import NotificationError
from jobs.notifications.email import send
from tests.notifications.receivers import free_port


@pytest.fixture
def smtp_settings(settings, smtp):  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp.port
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "dkron@example.com"
    return smtp


def test_a_message_reaches_a_real_smtp_server_with_every_recipient(smtp_settings):
    send(recipients=["ops@example.com", "dev@example.com"], subject="job failed", body="boom")

    [envelope] = smtp_settings.mailbox.envelopes
    assert envelope.mail_from == "dkron@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "dev@example.com"]
    message = message_from_bytes(envelope.content)
    assert message["Subject"] == "job failed"
    assert message.get_payload().strip() == "boom"


def test_a_refused_recipient_is_a_permanent_error(smtp_settings):
    smtp_settings.mailbox.refuse = {"nobody@example.com"}

    with pytest.raises(NotificationError) as error:
        send(recipients=["nobody@example.com"], subject="s", body="b")

    assert error.value.permanent is True
    assert smtp_settings.mailbox.envelopes == []


def test_an_unreachable_server_is_an_error(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()
    settings.EMAIL_HOST_PASSWORD = "smtp-hunter2"

    with pytest.raises(NotificationError, match="sending mail failed") as error:
        send(recipients=["ops@example.com"], subject="s", body="b")

    assert "smtp-hunter2" not in str(error.value)


def test_a_subject_with_line_breaks_becomes_one_line(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    send(recipients=["ops@example.com"], subject="job\nfailed\r\n  badly", body="b")

    assert mail.outbox[0].subject == "job failed badly"
