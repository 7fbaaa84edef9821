"""API authentication: `Authorization: Bearer <token>` or Dkron Pro's `X-Dkron-Token` (no
password hashing: a token is looked up by its SHA-256), and HTTP Basic behind django-axes'
lockout with a short cache of verified passwords.

Basic: a user or client address locked out by axes (DKRON_LOGIN_FAILURE_LIMIT failures, for
DKRON_LOGIN_COOLOFF) is refused with 429 before any password is hashed, and before the cache is
looked at. A verified password is remembered for DKRON_BASIC_AUTH_CACHE_SECONDS (60; 0: never)
in this process's memory: the key is an HMAC-SHA256 of the user name and password under a
random key of this process (never the password, and nothing a stolen SECRET_KEY or database
could recompute), the value the user's pk and an HMAC of their stored password hash. Each hit
reads the user again by pk and misses (so hashes in full) once they are gone, inactive, renamed
or their hash changed: a password change or deactivation takes effect on the next request. A
refused password is never remembered; axes counts it as before.
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


BASIC_CACHE_MAX = 1024  # entries per process; past it the expired go, then all
_cache_secret = secrets.token_bytes(32)  # this process's alone: never stored, never sent
# HMAC(user name, password) -> (user pk, HMAC of the user's stored password hash, until)
_cache: dict[bytes, tuple[int, bytes, float]] = {}
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
    """DRF's Basic through `authenticate(request=...)`, so axes counts and locks it; a verified
    password is remembered for DKRON_BASIC_AUTH_CACHE_SECONDS (`_remember`, `_recall`)."""

    def authenticate_credentials(self, userid: str, password: str, request: Any = None) -> Any:
        django_request = getattr(request, "_request", request)
        # First, cached or not: a locked-out user or address is refused, unhashed.
        if AxesProxyHandler.is_locked(django_request, {"username": userid}):
            raise LockedOut(lockout_message(django_request))
        digest = _credentials_digest(userid, password)
        user = _recall(digest, userid)
        if user is None:
            user = authenticate(request=django_request, username=userid, password=password)
            if getattr(django_request, "axes_locked_out", False):
                raise LockedOut(lockout_message(django_request))
            if user is None or not user.is_active:
                raise exceptions.AuthenticationFailed("Invalid username/password.")
            _remember(digest, user)
        return (user, None)


def _credentials_digest(userid: str, password: str) -> bytes:
    # Length-prefixed: no (user name, password) pair can collide with another's.
    data = f"{len(userid)}:{userid}\0{password}".encode("utf-8", "surrogatepass")
    return hmac.new(_cache_secret, data, hashlib.sha256).digest()


def _hash_fingerprint(password_hash: str) -> bytes:
    """Stands for the user's stored hash in the cache (no copy of the hash is kept)."""
    return hmac.new(_cache_secret, password_hash.encode(), hashlib.sha256).digest()


def _remember(digest: bytes, user: Any) -> None:
    """Remember a password just verified; never called for a refused one."""
    seconds = float(settings.BASIC_AUTH_CACHE_SECONDS)
    if seconds <= 0:
        return
    now = time.monotonic()
    entry = (user.pk, _hash_fingerprint(user.password), now + seconds)
    with _cache_lock:
        if len(_cache) >= BASIC_CACHE_MAX:
            for key in [k for k, (_, _, until) in _cache.items() if until <= now]:
                del _cache[key]
            if len(_cache) >= BASIC_CACHE_MAX:
                _cache.clear()
        _cache[digest] = entry


def _recall(digest: bytes, userid: str) -> Any:
    """The user of a password verified less than DKRON_BASIC_AUTH_CACHE_SECONDS ago, read
    afresh (one query by primary key): None, and the entry forgotten, once it has expired, or
    the user is gone, inactive, renamed or has another password hash since."""
    with _cache_lock:
        hit = _cache.get(digest)
    if hit is None:
        return None
    pk, fingerprint, until = hit
    user = None
    if time.monotonic() < until:
        user = get_user_model()._default_manager.filter(pk=pk).first()
    if (
        user is None
        or not user.is_active
        or user.get_username() != userid
        or not hmac.compare_digest(_hash_fingerprint(user.password), fingerprint)
    ):
        with _cache_lock:
            if _cache.get(digest) is hit:
                del _cache[digest]
        return None
    return user


def forget_basic_credentials() -> None:
    """Empty this process's cache of verified Basic passwords (the tests use it)."""
    with _cache_lock:
        _cache.clear()
