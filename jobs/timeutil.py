"""Clock access and time constants in one place, so tests can control the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Dkron's "no time" value on the wire (Go's zero time.Time).
ZERO_TIME = "0001-01-01T00:00:00Z"

# How far this process's clock is behind the cluster's (the database's); set by the
# scheduler, which decides fire times and agent liveness (see `follow`). Zero elsewhere.
_offset = timedelta(0)


def now() -> datetime:
    """The current time: the local clock, corrected to the database's in a scheduler."""
    return datetime.now(UTC) + _offset


def local_now() -> datetime:
    """The local clock alone, whatever `follow` set."""
    return datetime.now(UTC)


def follow(offset: timedelta) -> None:
    """Correct `now()` by `offset` (the database clock minus the local one).

    The scheduler calls it at the start of each tick with what the database says, so a jump
    of its host's clock neither fires jobs early or late nor makes live agents look dead.
    """
    global _offset
    _offset = offset


def rfc3339(value: datetime | None, *, zero: bool = False) -> str | None:
    """RFC3339 with Z for UTC; None (or Dkron's zero time when `zero`) for a missing value."""
    if value is None:
        return ZERO_TIME if zero else None
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")
