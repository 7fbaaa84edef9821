"""Fixtures of the scheduler's unit tests."""

from __future__ import annotations

import pytest

from jobs import dispatch, timeutil
from jobs.models import Execution


@pytest.fixture
def published(monkeypatch) -> list[int]:
    """Record what is published instead of sending it (the rows are marked as the real one)."""
    sent: list[int] = []

    def fake(executions: list[Execution], *, countdown: float = 0.0) -> None:
        if not executions:
            return
        sent.extend(e.pk for e in executions)
        Execution.objects.filter(pk__in=[e.pk for e in executions]).update(
            published_at=timeutil.now()
        )

    monkeypatch.setattr(dispatch, "publish_many", fake)
    return sent
