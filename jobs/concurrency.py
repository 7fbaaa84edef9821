"""Concurrency keys and rate limits (issue 16): the rules, as pure functions.

A job's `concurrency_key` names a resource its runs share with other jobs' (`db:{metadata.db}`
renders the key from the job's own metadata when it runs), `concurrency_limit` how many
executions holding the key may run at once across all jobs and agents, and `rate_limit`
(Celery's notation: `10/m`, `2/s`, `100/h`) how many may start in any window of that length.
The services enforce them in the database (jobs.services.capacity).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Celery's rate-limit units (celery.utils.time.RATE_MODIFIER_MAP), as window lengths.
RATE_WINDOWS = {"s": 1.0, "m": 60.0, "h": 3600.0}
RATE_PATTERN = re.compile(r"^([0-9]{1,7})/([smh])$")  # ASCII digits, Celery's units
MAX_RATE = 1_000_000  # as concurrency_limit's maximum
PLACEHOLDER = re.compile(r"\{metadata\.([^{}]+)\}")
MAX_KEY = 255


@dataclass(frozen=True)
class Rate:
    """At most `count` starts in any `window` seconds."""

    count: int
    window: float

    def __str__(self) -> str:
        unit = {v: k for k, v in RATE_WINDOWS.items()}[self.window]
        return f"{self.count}/{unit}"


def parse_rate(text: str) -> Rate | None:
    """`10/m` -> Rate(10, 60.0); "" -> None; ValueError naming the form otherwise."""
    if not text:
        return None
    found = RATE_PATTERN.match(text)
    if found is None or not 1 <= int(found.group(1)) <= MAX_RATE:
        raise ValueError(
            f"rate_limit must be N/s, N/m or N/h with N from 1 to {MAX_RATE}, e.g. 10/m"
        )
    return Rate(int(found.group(1)), RATE_WINDOWS[found.group(2)])


def render_key(template: str, metadata: Mapping[str, Any] | None) -> str:
    """The key with `{metadata.x}` replaced by the job's metadata value x.

    KeyError naming the missing metadata key; nothing else in the template is special, so a
    key is plain text apart from these placeholders (no format-string evaluation)."""
    values = metadata or {}

    def value(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in values:
            raise KeyError(name)
        return str(values[name])

    return PLACEHOLDER.sub(value, template)


def problems(
    *, key: str, limit: int | None, rate: str, metadata: Mapping[str, Any] | None
) -> dict[str, str]:
    """What is wrong with a job's key fields, by field ({} when nothing)."""
    found: dict[str, str] = {}
    if key:
        try:
            rendered = render_key(key, metadata)
        except KeyError as exc:
            found["concurrency_key"] = (
                f"concurrency_key names metadata '{exc.args[0]}', which the job's metadata "
                "does not have"
            )
        else:
            if not rendered.strip():
                found["concurrency_key"] = "concurrency_key renders to an empty key"
            elif len(rendered) > MAX_KEY:
                found["concurrency_key"] = (
                    f"concurrency_key renders to more than {MAX_KEY} characters"
                )
        if limit is None and not rate:
            found["concurrency_limit"] = (
                "a concurrency_key needs a concurrency_limit or a rate_limit"
            )
    else:
        if limit is not None:
            found["concurrency_limit"] = "concurrency_limit needs a concurrency_key"
        if rate:
            found["rate_limit"] = "rate_limit needs a concurrency_key"
    if limit is not None and limit < 1:
        found["concurrency_limit"] = "concurrency_limit must be at least 1"
    try:
        parse_rate(rate)
    except ValueError as exc:
        found["rate_limit"] = str(exc)
    return found
