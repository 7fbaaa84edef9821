"""Who may call what: read for any signed-in user, writes need the model permission."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission


def can(request: Any, perm: str) -> bool:
    """Whether the caller holds `perm`: the one check views make beyond `write_perm`. A
    role-scoped token's user answers within its role (see jobs.services.tokens.ScopedUser)."""
    if not settings.AUTH_ENABLED:
        return True
    user = request.user
    return bool(user and user.is_authenticated and user.has_perm(perm))


class ApiAccess(BasePermission):
    """Views name the permission for their unsafe methods in `write_perm` (a tuple: any)."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if not settings.AUTH_ENABLED:
            return True
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        perm = getattr(view, "write_perm", None)
        if callable(perm):
            perm = perm(request)
        if perm is None:
            return True
        if isinstance(perm, (tuple, list)):  # any one of them (the view checks further)
            return any(user.has_perm(p) for p in perm)
        return bool(user.has_perm(perm))
