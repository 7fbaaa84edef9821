"""Run notifications: who is told (rules), what they read (render), how (email, webhook).

Nothing here imports a model: the service in `jobs.services.notifications` loads the run and
hands plain values to these modules, so each can be tested without a database.
"""

from __future__ import annotations


class NotificationError(Exception):
    """A notification could not be delivered; the message never carries secrets."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
