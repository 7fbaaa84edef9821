"""First-start setup of the embedded mode: an admin login and an API token, printed once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model

from jobs.services.tokens import token_create


@dataclass
class Credentials:
    username: str
    password: str
    token: str


def bootstrap_admin(*, username: str = "admin") -> Credentials | None:
    """Create the first superuser and a token for it; None when users already exist."""
    users = get_user_model()
    if users.objects.exists():
        return None
    password = settings.DKRON["ADMIN_PASSWORD"] or secrets.token_urlsafe(12)
    user = users.objects.create_superuser(username=username, email="", password=password)
    _, raw = token_create(user=user, name="bootstrap")
    return Credentials(username=username, password=password, token=raw)
