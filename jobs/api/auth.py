"""API token authentication: `Authorization: Bearer <token>` or Dkron Pro's `X-Dkron-Token`."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions

from jobs.models import ApiToken
from jobs.services.tokens import (  # noqa: F401  (re-exported: callers import them from here)
    LAST_USED_EVERY,
    TOKEN_PREFIX,
    hash_token,
    token_authenticate,
    token_create,
)


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        raw = request.META.get("HTTP_X_DKRON_TOKEN", "")
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not raw and header:
            keyword, _, value = header.partition(" ")
            if keyword.lower() != self.keyword.lower():
                return None  # Basic and others are handled by their own classes
            raw = value.strip()
        if not raw:
            return None
        found = token_authenticate(raw)
        if found is None:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked API token")
        return found  # a role-scoped token's user is a ScopedUser: its has_perm honours the role

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="dkronweb"'
