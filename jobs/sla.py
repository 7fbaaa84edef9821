"""A job's SLA rules (its `sla` field): the declaration, checked at save time (pure functions).

    {"start_within": "2m", "max_duration": "1h", "kill_after": "2h",
     "success_within": "26h", "consecutive_failures": 3}

Durations are Go durations ("90s", "1h30m", executors.values' one parser) or a number of
seconds, as the job's other durations; each must be above 0 and at most MAX_SECONDS. The
scheduler's check (jobs.services.sla) reads the stored declaration with `parse` again and
skips a rule it cannot read (a restore may store a bad one with the job's problems).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from executors.values import parse_go_duration

DURATIONS = ("start_within", "max_duration", "kill_after", "success_within")
KEYS = (*DURATIONS, "consecutive_failures")
MAX_SECONDS = 366 * 24 * 3600.0  # a year: beyond that a rule is a typo
MAX_FAILURES = 1000


class InvalidSla(Exception):
    """`errors` maps each bad key of `sla` to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Rules:
    """The parsed rules; None where a rule is not set. Durations in seconds."""

    start_within: float | None = None
    max_duration: float | None = None
    kill_after: float | None = None
    success_within: float | None = None
    consecutive_failures: int | None = None


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a duration such as '5m' or a number of seconds")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_go_duration(value).total_seconds()
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    else:
        raise ValueError("must be a duration such as '5m' or a number of seconds")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("must be more than 0s")
    if seconds > MAX_SECONDS:
        raise ValueError("must be at most 8784h (a year)")
    return seconds


def _count(value: Any) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())  # Dkron's API sends numbers as strings too
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number of failed runs")
    if not 1 <= value <= MAX_FAILURES:
        raise ValueError(f"must be between 1 and {MAX_FAILURES}")
    return value


def parse(raw: Any) -> Rules:
    """The rules of a stored or sent `sla`; empty or null means none. Raises InvalidSla."""
    if raw is None or raw == {}:
        return Rules()
    if not isinstance(raw, dict):
        raise InvalidSla({"sla": "must be an object of rules"})
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in KEYS:
            errors[key] = f"unknown rule (use {', '.join(KEYS)})"
            continue
        if value is None:
            continue
        try:
            values[key] = _count(value) if key == "consecutive_failures" else _seconds(value)
        except ValueError as exc:
            errors[key] = str(exc)
    kill, most = values.get("kill_after"), values.get("max_duration")
    if kill is not None and "kill_after" not in errors:
        if most is None and "max_duration" not in errors:
            errors["kill_after"] = "needs max_duration (a run is killed once overdue that long)"
        elif most is not None and kill < most:
            errors["kill_after"] = "must not be shorter than max_duration"
    if errors:
        raise InvalidSla(errors)
    return Rules(**values)


def stored(raw: Any) -> dict[str, Any]:
    """What is stored: the rules as sent, without the null ones."""
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if v is not None}


def safe_parse(raw: Any) -> Rules:
    """The check's reading: no rules where the stored declaration does not parse."""
    try:
        return parse(raw)
    except InvalidSla:
        return Rules()
