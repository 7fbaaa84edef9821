"""Clock access and time constants in one place, so tests can control the clock."""

from __future__ import annotations

from datetime import UTC, datetime

# Dkron's "no time" value on the wire (Go's zero time.Time).
ZERO_TIME = "0001-01-01T00:00:00Z"


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime | None, *, zero: bool = False) -> str | None:
    """RFC3339 with Z for UTC; None (or Dkron's zero time when `zero`) for a missing value."""
    if value is None:
        return ZERO_TIME if zero else None
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")
