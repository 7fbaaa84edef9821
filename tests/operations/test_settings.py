"""Settings from the environment: "30d"-style durations (DKRON_HISTORY_MAX_AGE and friends), and
Celery's broker retries."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from dkronweb.env import env_duration


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("", 5.0),  # unset: the default
        ("0", 0.0),
        ("90", 90.0),
        ("30d", 30 * 86400.0),
        ("2w", 14 * 86400.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("45s", 45.0),
        ("250ms", 0.25),
        (" 12H ", 12 * 3600.0),
    ],
)
def test_it_reads_durations(monkeypatch, raw, seconds):
    monkeypatch.setenv("DKRON_TEST_DURATION", raw)
    assert env_duration("DKRON_TEST_DURATION", 5.0) == seconds


@pytest.mark.parametrize("raw", ["30 days", "d", "-1d", "1y", "1h-5m"])
def test_it_refuses_what_is_not_a_duration(monkeypatch, raw):
    monkeypatch.setenv("DKRON_TEST_DURATION", raw)
    with pytest.raises(ImproperlyConfigured, match="DKRON_TEST_DURATION"):
        env_duration("DKRON_TEST_DURATION", 5.0)


def test_agents_retry_a_lost_broker_forever() -> None:
    # None is "forever" in Celery (0 is "never"); the default 100 makes an agent exit.
    from dkronweb.celery import app

    assert app.conf.broker_connection_max_retries is None
