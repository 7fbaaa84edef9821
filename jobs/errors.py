"""Domain errors raised by services; the API maps each to its HTTP status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """`message` is the text the API answers (Dkron's own where Dkron has one: see
    web.api.errors); `details` maps fields to messages for JSON clients and the UI."""

    status_code = 400

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidJob(DomainError):
    """The job failed validation; `details` maps field (or executor_config key) to message."""


class Forbidden(DomainError):
    """The caller may not do this (a domain rule, such as the run-code permission)."""

    status_code = 403


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Unavailable(DomainError):
    status_code = 503


class ClusterPaused(Unavailable):
    """Job submissions are paused cluster-wide: Dkron's 503 and its text, word for word (a
    client may compare the body with it). No `details`: the UI shows a detail-less error as
    is, and its banner says how to resume (POST /v1/unpause)."""

    def __init__(self, action: str = "New job submissions are") -> None:
        super().__init__(f"{action} currently paused")
