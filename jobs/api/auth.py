"""API token authentication: `Authorization: Bearer <token>` or Dkron Pro's `X-Dkron-Token`."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from jobs.models import ApiToken

TOKEN_PREFIX = "dkw_"
LAST_USED_EVERY = timedelta(seconds=60)  # how stale a token's `last_used` may get


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(*, user: Any, name: str) -> tuple[ApiToken, str]:
    """Create a token; the raw value is returned once and only its hash is stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:10], key_hash=hash_token(raw))
    return token, raw


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
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=hash_token(raw), revoked=False)
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("invalid or revoked API token")
        now = timezone.now()
        if token.last_used is None or now - token.last_used > LAST_USED_EVERY:
            # A write (and a commit) on every request would double a cheap GET's cost.
            ApiToken.objects.filter(pk=token.pk).update(last_used=now)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="dkronweb"'
