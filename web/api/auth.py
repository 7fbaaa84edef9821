"""API authentication: `Authorization: Bearer <token>` or Dkron Pro's `X-Dkron-Token` (no
password hashing: a token is looked up by its SHA-256), and HTTP Basic behind django-axes'
lockout with a short cache of verified passwords.

Basic: a user or client address locked out by axes (DKRON_LOGIN_FAILURE_LIMIT failures, for
DKRON_LOGIN_COOLOFF) is refused with 429 before any password is hashed. A verified password is
remembered for BASIC_CACHE_SECONDS under an HMAC of user and password keyed by a secret of this
process, with the user's stored hash: a changed password (or a deactivated user) misses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
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


BASIC_CACHE_SECONDS = 60.0
BASIC_CACHE_MAX = 1024
_cache_secret = secrets.token_bytes(32)
_cache: dict[bytes, tuple[int, str, float]] = {}  # digest -> (user pk, password hash, until)
_cache_lock = threading.Lock()


def client_address(request: Any) -> str:
    """The client's address for lockouts and the audit log (AXES_CLIENT_IP_CALLABLE)."""
    meta = getattr(request, "META", {})
    if settings.TRUST_X_FORWARDED_FOR and meta.get("HTTP_X_FORWARDED_FOR"):
        return str(meta["HTTP_X_FORWARDED_FOR"]).split(",")[-1].strip()
    return str(meta.get("REMOTE_ADDR", ""))


def lockout_message(request: Any = None) -> str:
    cool_off = get_cool_off(request)
    minutes = max(1, round(cool_off.total_seconds() / 60)) if cool_off else 0
    wait = f"try again in {minutes} minute(s)" if minutes else "ask an administrator to unlock it"
    return f"too many failed logins for this user or address: {wait}"


def lockout_response(request: HttpRequest, response: Any = None, credentials: Any = None) -> Any:
    """axes' lockout answer (AXES_LOCKOUT_CALLABLE): JSON for the API, text for the UI."""
    message = lockout_message(request)
    if request.path.startswith(("/v1", "/metrics")):
        return JsonResponse({"error": message, "details": {"login": "locked out"}}, status=429)
    return HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")


class LockedOut(exceptions.APIException):
    status_code = 429
    default_code = "locked_out"


class BasicAuthentication(authentication.BasicAuthentication):
    """DRF's Basic through `authenticate(request=...)`, so axes counts and locks it."""

    def authenticate_credentials(self, userid: str, password: str, request: Any = None) -> Any:
        django_request = getattr(request, "_request", request)
        if AxesProxyHandler.is_locked(django_request, {"username": userid}):
            raise LockedOut(lockout_message(django_request))
        digest = hmac.new(_cache_secret, f"{userid}\0{password}".encode(), hashlib.sha256).digest()
        user = _cached_user(digest)
        if user is None:
            user = authenticate(request=django_request, username=userid, password=password)
            if getattr(django_request, "axes_locked_out", False):
                raise LockedOut(lockout_message(django_request))
            if user is None or not user.is_active:
                raise exceptions.AuthenticationFailed("Invalid username/password.")
            with _cache_lock:
                if len(_cache) >= BASIC_CACHE_MAX:
                    _cache.clear()
                _cache[digest] = (user.pk, user.password, time.monotonic() + BASIC_CACHE_SECONDS)
        return (user, None)


def _cached_user(digest: bytes) -> Any:
    """The user of a recently verified password, if its stored hash has not changed since."""
    with _cache_lock:
        hit = _cache.get(digest)
    if hit is None:
        return None
    pk, password_hash, until = hit
    user = get_user_model().objects.filter(pk=pk, is_active=True).first()
    if time.monotonic() > until or user is None or user.password != password_hash:
        with _cache_lock:
            _cache.pop(digest, None)
        return None
    return user
