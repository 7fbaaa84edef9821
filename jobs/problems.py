"""A job's stored problems (`Job.problems`) as text: pure functions.

Apart from jobs.services.jobs, which stores the problems, so that the agent, which only
describes them when it refuses to run such a job, does not import the job services (and,
through job revisions, the wire format and Django REST framework).
"""

from __future__ import annotations

from typing import Any


def describe_problems(problems: dict[str, Any]) -> str:
    """One line for stored problems (`Job.problems`): `key: message; key: message`."""

    def text(value: Any) -> str:
        if isinstance(value, dict):
            return ", ".join(f"{k}: {text(v)}" for k, v in value.items())
        if isinstance(value, list):
            return ", ".join(text(v) for v in value)
        return str(value)

    return "; ".join(f"{key}: {text(value)}" for key, value in problems.items())


def problem_items(problems: dict[str, Any]) -> list[tuple[str, str]]:
    """Stored problems as (key, message) pairs, nested keys joined (`executor_config.url`)."""
    items: list[tuple[str, str]] = []
    for key, value in problems.items():
        if isinstance(value, dict):
            items.extend((f"{key}.{k}", m) for k, m in problem_items(value))
        else:
            items.append((key, describe_problems({"": value})[2:]))
    return items
