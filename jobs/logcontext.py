"""Job name and execution id on every log line about a run, wherever the line is logged.

The runner wraps one execution in `execution_logging(...)`; a contextvar carries the two
values to every logger called meanwhile (services, executors, processors), and the handler's
`ExecutionFilter` copies them onto the record. The JSON formatter prints them as fields
(`job`, `execution`); `TextFormatter` prints them as `job=... execution=...` after the logger.
A contextvar, not a thread-local: it also follows the code into asyncio tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("job", "execution")

_current: ContextVar[dict[str, object] | None] = ContextVar("dkronweb_run", default=None)


@contextmanager
def execution_logging(*, job: str, execution: int) -> Iterator[None]:
    """Tag every log line in this block with the job name and the execution id."""
    token = _current.set({"job": job, "execution": execution})
    try:
        yield
    finally:
        _current.reset(token)


def current() -> dict[str, object]:
    """The fields of the run being executed here (empty outside one)."""
    return dict(_current.get() or {})


class ExecutionFilter(logging.Filter):
    """Adds `job` and `execution` to records logged inside `execution_logging`.

    Put on handlers, not loggers: a logger's filters do not see records of its children.
    Values passed explicitly with `extra=` win.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _current.get()
        if fields:
            for key, value in fields.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    """The plain format; `%(run_fields)s` is ` job=... execution=...` on lines about a run."""

    def format(self, record: logging.LogRecord) -> str:
        present = [(k, getattr(record, k)) for k in FIELDS if getattr(record, k, None) is not None]
        record.run_fields = "".join(f" {k}={v}" for k, v in present)
        try:
            return super().format(record)
        finally:
            # The record may go on to a JSON handler, which prints every extra attribute.
            delattr(record, "run_fields")
