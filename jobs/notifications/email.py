"""Email notifications through Django's configured email backend (SMTP from DKRON_EMAIL_*)."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import EmailMessage

from jobs.notifications import NotificationError


def send(*, recipients: list[str], subject: str, body: str) -> None:
    """One message to every recipient; raises NotificationError when the backend refuses it."""
    # A header may not hold a line break; a template with one would make Django refuse it.
    subject = " ".join(subject.split())[:250]
    message = EmailMessage(
        subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=recipients
    )
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        raise NotificationError(
            f"the mail server refused {len(exc.recipients)} recipient(s)", permanent=True
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        # The exception text names the server, never the SMTP password.
        raise NotificationError(f"sending mail failed: {type(exc).__name__}: {exc}") from None
