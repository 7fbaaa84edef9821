"""API tokens: create (the raw key is shown once), list, revoke, look up, and role scoping.

A token may carry a role (a Group). Its effective permissions are its user's permissions
within that role's, never more than the user's: `ScopedUser` is how the rest of the code sees
such a user, so every `has_perm` check (API, services) honours the scope. A scoped token may
create and revoke only tokens no wider than itself.

A role is what its token can do: a token may only carry a role whose every permission its
creator holds (else 403 naming the role), so `code-editor` on a token means it can run code.

A token made by a token (its `parent`) never outlives it: its expiry is clamped to the
parent's at creation, and revoking a token revokes its descendants in the same transaction.
Both are written on the child's own row, so authenticating stays one indexed lookup with no
chain to walk (every revocation, API, UI or admin, goes through `token_revoke`, and the admin
cannot edit `expires_at`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import QuerySet

from jobs import timeutil
from jobs.errors import DomainError, Forbidden, NotFound
from jobs.models import ApiToken
from jobs.services.audit import SYSTEM, Actor, audit_record

TOKEN_PREFIX = "dkw_"
LAST_USED_EVERY = timedelta(seconds=60)  # how stale a token's `last_used` may get


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def role_permissions(role: Group) -> frozenset[str]:
    """The role's permissions as `app_label.codename` strings (what `has_perm` takes)."""
    rows = Permission.objects.filter(group=role).values_list("content_type__app_label", "codename")
    return frozenset(f"{app}.{codename}" for app, codename in rows)


class ScopedUser:
    """A user seen through a role-scoped token: a permission holds only when both the user and
    the role hold it. Everything else (username, pk, is_authenticated...) is the user's; it is
    never staff or superuser, so nothing can bypass the scope by checking those flags."""

    is_staff = False
    is_superuser = False

    def __init__(self, user: Any, scope: frozenset[str]) -> None:
        self.unscoped = user
        self.scope = scope

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unscoped, name)

    def __str__(self) -> str:
        return str(self.unscoped)

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return perm in self.scope and bool(self.unscoped.has_perm(perm, obj))

    def has_perms(self, perm_list: Iterable[str], obj: Any = None) -> bool:
        return all(self.has_perm(p, obj) for p in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        return any(p.startswith(f"{app_label}.") for p in self.scope) and bool(
            self.unscoped.has_module_perms(app_label)
        )

    def get_all_permissions(self, obj: Any = None) -> set[str]:
        return set(self.unscoped.get_all_permissions(obj)) & self.scope


def unscoped(user: Any) -> Any:
    """The real user behind a possibly scoped one (for foreign keys and queries)."""
    return user.unscoped if isinstance(user, ScopedUser) else user


def effective_permissions(token: ApiToken) -> set[str]:
    perms = set(token.user.get_all_permissions())
    if token.role_id is not None:
        perms &= role_permissions(token.role)  # type: ignore[arg-type]
    return perms


def _ensure_within(caller: Any, perms: set[str], what: str) -> None:
    """A scoped caller may not reach beyond its own scope (nor create unscoped tokens)."""
    if isinstance(caller, ScopedUser) and not perms <= caller.get_all_permissions():
        wider = sorted(perms - caller.get_all_permissions())
        raise Forbidden(
            f"this token may not {what} a token wider than itself",
            {"role": "wider than the calling token's role: " + ", ".join(wider[:5])},
        )


def _ensure_role_held(caller: Any, role: Group | None) -> None:
    """A role label must be true: the creator holds every permission of the role."""
    if role is None:
        return
    missing = sorted(role_permissions(role) - set(caller.get_all_permissions()))
    if missing:
        raise Forbidden(
            f"you may not create a token with role '{role.name}': you lack some of its "
            f"permissions ({', '.join(missing[:5])})",
            {"role": f"'{role.name}' is wider than your own permissions"},
        )


def role_by_name(name: str | None) -> Group | None:
    """The group named `name`, None for no name; DomainError (400) for an unknown one."""
    if not name:
        return None
    role = Group.objects.filter(name=name).first()
    if role is None:
        known = ", ".join(Group.objects.order_by("name").values_list("name", flat=True))
        raise DomainError(f"no role named '{name}'", {"role": f"one of: {known}"})
    return role


@transaction.atomic
def token_create(
    *,
    user: Any,
    name: str,
    role: Group | None = None,
    expires_at: datetime | None = None,
    parent: ApiToken | None = None,
    actor: Actor = SYSTEM,
) -> tuple[ApiToken, str]:
    """Create a token; the raw value is returned once and only its hash is stored.

    `user` may be the scoped user of the calling token: the new token is then for the same
    user and may not be wider than the caller. `parent` is the calling token, if any: the new
    token expires no later than it (a later or missing `expires_at` is clamped to its).
    """
    owner = unscoped(user)
    name = (name or "").strip()
    if not name or len(name) > 255:
        raise DomainError("a token needs a name (at most 255 characters)", {"name": "required"})
    if expires_at is not None and expires_at <= timeutil.now():
        raise DomainError("expires_at must be in the future", {"expires_at": "in the past"})
    perms = set(owner.get_all_permissions())
    if role is not None:
        perms &= role_permissions(role)
    _ensure_within(user, perms, "create")
    _ensure_role_held(user, role)
    limit = parent.expires_at if parent is not None else None
    if limit is not None and (expires_at is None or expires_at > limit):
        expires_at = limit
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=owner,
        name=name,
        prefix=raw[:10],
        key_hash=hash_token(raw),
        role=role,
        expires_at=expires_at,
        parent=parent,
    )
    audit_record(
        actor=actor,
        action="token_create",
        target=f"{owner.get_username()}/{name}",
        detail={
            "id": token.pk,
            "prefix": token.prefix,
            "role": role.name if role else None,
            "parent": parent.pk if parent else None,
        },
    )
    return token, raw


def token_list(*, user: Any) -> QuerySet[ApiToken]:
    """The user's tokens, newest first."""
    return ApiToken.objects.filter(user=unscoped(user)).select_related("role").order_by("-id")


def token_get(*, user: Any, token_id: Any) -> ApiToken:
    """One of the user's tokens; NotFound for another user's (not 403: ids are not secrets,
    but whose they are is none of the caller's business)."""
    token = None
    if str(token_id).isdigit():
        token = token_list(user=user).filter(pk=int(token_id)).first()
    if token is None:
        raise NotFound(f"token {token_id} not found")
    return token


@transaction.atomic
def token_revoke(*, token: ApiToken, caller: Any = None, actor: Actor = SYSTEM) -> ApiToken:
    """Revoke at once (the next request with it is a 401), with every token made from it
    (children, their children...); idempotent."""
    if caller is not None:
        _ensure_within(caller, effective_permissions(token), "revoke")
    changed = ApiToken.objects.filter(pk=token.pk, revoked=False).update(revoked=True)
    descendants = 0
    level = [token.pk]
    while level:  # one UPDATE per generation; the chains are short
        level = list(ApiToken.objects.filter(parent__in=level).values_list("pk", flat=True))
        descendants += ApiToken.objects.filter(pk__in=level, revoked=False).update(revoked=True)
    if changed or descendants:
        audit_record(
            actor=actor,
            action="token_revoke",
            target=f"{token.user.get_username()}/{token.name}",
            detail={"id": token.pk, "prefix": token.prefix, "descendants": descendants},
        )
    token.refresh_from_db()
    return token


def token_authenticate(raw: str) -> tuple[Any, ApiToken] | None:
    """The user (scoped to the token's role, if any) and the token; None when the key is
    unknown, revoked, expired or its user inactive."""
    token = (
        ApiToken.objects.select_related("user", "role")
        .filter(key_hash=hash_token(raw), revoked=False)
        .first()
    )
    now = timeutil.now()
    if token is None or not token.user.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used is None or now - token.last_used > LAST_USED_EVERY:
        # A write (and a commit) on every request would double a cheap GET's cost.
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    if token.role is None:
        return token.user, token
    return ScopedUser(token.user, role_permissions(token.role)), token
