"""Fixtures of the notification tests: real webhook and SMTP receivers, notification settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.notifications.receivers import SmtpServer, WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def notify_settings(settings):  # type: ignore[no-untyped-def]
    """Set DKRON notification keys for one test (a copy of the dict, restored afterwards)."""

    def apply(**values: Any) -> None:
        settings.DKRON = {**settings.DKRON, **values}

    apply(
        NOTIFY_ON="never",
        NOTIFY_EMAIL_ENABLED=False,
        NOTIFY_WEBHOOK_URL="",
        NOTIFY_WEBHOOK_HEADERS={},
        NOTIFY_WEBHOOK_BODY="",
        NOTIFY_RETRIES=0,
        NOTIFY_RETRY_BACKOFF=0.01,
        NOTIFY_TIMEOUT=5.0,
        PUBLIC_URL="http://dkron.test:8080",
    )
    return apply
