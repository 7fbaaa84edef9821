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


def test_with_the_guard_on_a_mail_server_on_loopback_is_refused_and_nothing_connects(settings):
    from tests.listener import listening

    with listening() as listener:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = (
            "127.0.0.1",
            listener.port,
            5,
        )
        settings.DKRON = {**settings.DKRON, "BLOCK_PRIVATE": True}
        with pytest.raises(NotificationError) as error:
            send(recipients=["ops@example.com"], subject="s", body="b")

    assert error.value.permanent
    assert f"refused to connect to 127.0.0.1:{listener.port} (loopback" in str(error.value)
    assert listener.received == []


def test_the_allow_list_lets_the_operator_s_mail_relay_through(settings, smtp_settings):
    from executors.netguard import parse_allow

    settings.DKRON = {
        **settings.DKRON,
        "BLOCK_PRIVATE": True,
        "OUTBOUND_ALLOW": parse_allow(f"127.0.0.1:{smtp_settings.port}"),
    }
    send(recipients=["ops@example.com"], subject="allowed", body="b")

    [envelope] = smtp_settings.mailbox.envelopes
    assert envelope.rcpt_tos == ["ops@example.com"]
