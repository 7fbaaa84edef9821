"""The audit log (SPEC 11) and the `Actor` every state-changing service is given.

Services record an entry in the same transaction as the change, so a change that rolls back
leaves no entry. Details name what changed (field names, counts), never values that could hold
a secret (executor configs, notification headers, token keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from jobs.models import AuditEntry

ACTIONS = (
    "create",
    "update",
    "delete",
    "run",
    "kill",
    "toggle",
    "clear",
    "pause",
    "unpause",
    "restore",
    "import",
    # Jobs as files (jobs.services.declarative): one entry per apply, beside each job's own.
    "apply",
    "token_create",
    "token_revoke",
    "login_failed",
    # Calendars (jobs.services.calendars): the target is the calendar's name.
    "calendar_create",
    "calendar_update",
    "calendar_delete",
    # Backfills (jobs.services.backfill): the target is the job's name.
    "backfill",
    "backfill_cancel",
)


@dataclass(frozen=True)
class Actor:
    """Who asks for a change, through which door (`via`: api, ui, admin, cli, system), and the
    one permission check that belongs to the domain (code-running jobs)."""

    can_run_code: bool = True
    name: str = "system"
    via: str = AuditEntry.Via.SYSTEM

    @classmethod
    def from_user(cls, user: Any, *, via: str = AuditEntry.Via.API) -> Actor:
        if user is None:
            return cls(via=via)
        name = getattr(user, "username", "") or "anonymous"
        if not settings.AUTH_ENABLED:
            return cls(name=name, via=via)
        allowed = bool(user.is_authenticated and user.has_perm("jobs.run_code_jobs"))
        return cls(can_run_code=allowed, name=name, via=via)


SYSTEM = Actor()


def audit_record(
    *, actor: Actor, action: str, target: str = "", detail: dict[str, Any] | None = None
) -> AuditEntry:
    """Write one entry. `detail` must hold no secrets (see the module docstring)."""
    assert action in ACTIONS, action
    return AuditEntry.objects.create(
        actor=actor.name[:150],
        via=actor.via,
        action=action,
        target=target[:255],
        detail=detail or {},
    )


def audit_login_failed(*, username: str, ip: str, via: str, locked_out: bool) -> AuditEntry:
    """A failed login: who was tried, from where, through which door; never the password."""
    return audit_record(
        actor=Actor(name=username or "anonymous", via=via),
        action="login_failed",
        target=username,
        detail={"ip": ip, "locked_out": locked_out},
    )
