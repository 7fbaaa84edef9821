"""Domain errors raised by services; the API maps each to its HTTP status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
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
    """Job submissions are paused cluster-wide (Dkron's 503 on create/update while paused).

    No `details`: the message says it all, and the UI shows a detail-less error as is.
    """

    def __init__(self, action: str = "New job submissions are") -> None:
        super().__init__(
            f"{action} currently paused: the cluster is paused; "
            "an editor resumes them with POST /v1/unpause"
        )
