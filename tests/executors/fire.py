"""Two attempts of one scheduled fire, as the agent builds their contexts (agent/runner.py):
the same job, run and scheduled time, a new execution id and the next attempt number.

Each executor's test file sends both through a real receiver and checks that it saw the same
fire key with the two attempt numbers (docs/executors.md, the fire key).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

SCHEDULED_AT = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
SCHEDULED_TEXT = "2026-12-04T10:00:00Z"
RUN_ID = "41"


def attempts() -> list[dict[str, Any]]:
    """ExecutionContext arguments for attempt 1 and its retry, attempt 2."""
    return [
        {"scheduled_at": SCHEDULED_AT, "run_id": RUN_ID, "execution_id": "101", "attempt": 1},
        {"scheduled_at": SCHEDULED_AT, "run_id": RUN_ID, "execution_id": "102", "attempt": 2},
    ]


def key(job_name: str) -> str:
    """The fire key both attempts carry."""
    return f"{job_name}@{SCHEDULED_TEXT}"
