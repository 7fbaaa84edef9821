"""Email notifications through Django's configured email backend (SMTP from DKRON_EMAIL_*).

With the outbound guard on (DKRON_BLOCK_PRIVATE), Django's SMTP backend connects through it: the
mail server's address is checked and the socket goes to the checked address (TLS still names
DKRON_EMAIL_HOST), so a private mail relay must be in DKRON_OUTBOUND_ALLOW.
"""

from __future__ import annotations

import smtplib
import socket
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend

from executors import netguard
from jobs.notifications import NotificationError

_SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


class _PinnedSocket:
    """smtplib mixin: connect to the guard's checked address instead of the host name."""

    guard: netguard.Guard

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(self.guard.pin(host, port), port, timeout)  # type: ignore[misc]


class GuardedEmailBackend(EmailBackend):
    """Django's SMTP backend whose connections go through the outbound guard."""

    def __init__(self, *, guard: netguard.Guard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guard = guard

    @property
    def connection_class(self) -> Any:
        base = smtplib.SMTP_SSL if self.use_ssl else smtplib.SMTP
        return type("GuardedSMTP", (_PinnedSocket, base), {"guard": self.guard})


def send(*, recipients: list[str], subject: str, body: str) -> None:
    """One message to every recipient; raises NotificationError when the backend refuses it."""
    # A header may not hold a line break; a template with one would make Django refuse it.
    subject = " ".join(subject.split())[:250]
    guard = netguard.Guard.from_settings(settings.DKRON)
    connection = None
    if guard.block_private and settings.EMAIL_BACKEND == _SMTP_BACKEND:
        connection = GuardedEmailBackend(guard=guard)
    message = EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=connection,
    )
    try:
        message.send(fail_silently=False)
    except netguard.GuardError as exc:
        raise NotificationError(
            f"sending mail failed: {exc}", permanent=not exc.retryable
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise NotificationError(
            f"the mail server refused {len(exc.recipients)} recipient(s)", permanent=True
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        # The exception text names the server, never the SMTP password.
        raise NotificationError(f"sending mail failed: {type(exc).__name__}: {exc}") from None
