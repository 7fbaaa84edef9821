"""Principals for the permission tables: users in the migration's role groups, and tokens."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from jobs.services.tokens import token_create
from tests.web.api.helpers import JSON_ERRORS, PASSWORD, make_user

# Who, described as (groups, extra permissions, superuser, token role). Each role group holds
# the one before it: read-only < operator < editor < code-editor.
PRINCIPALS: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool, str | None]] = {
    "read-only": (("read-only",), (), False, None),
    "operator": (("operator",), (), False, None),
    "editor": (("editor",), (), False, None),
    "editor+run_code_jobs": (("editor",), ("run_code_jobs",), False, None),
    "code-editor": (("code-editor",), (), False, None),
    "superuser token as read-only": ((), (), True, "read-only"),
    "superuser token as editor": ((), (), True, "editor"),
    "superuser": ((), (), True, None),
}


def member(username: str, *groups: str, perms: tuple[str, ...] = (), **extra: Any) -> Any:
    """A user in the named groups (as an operator would set them up), plus `perms`."""
    user = make_user(username, *perms, **extra)
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


def principal(who: str) -> tuple[Any, APIClient, int]:
    """The user, an API client with a Bearer token for them, and that token's id."""
    groups, perms, superuser, role = PRINCIPALS[who]
    slug = who.replace(" ", "-").replace("+", "-")
    if superuser:
        user = get_user_model().objects.create_superuser(slug, f"{slug}@example.com", PASSWORD)
    else:
        user = member(slug, *groups, perms=perms)
    token, raw = token_create(
        user=user, name="t", role=Group.objects.get(name=role) if role else None
    )
    client = APIClient(HTTP_ACCEPT=JSON_ERRORS)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return user, client, token.pk
