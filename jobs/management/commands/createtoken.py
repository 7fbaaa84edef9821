"""`manage.py createtoken <user> [--name N] [--role GROUP] [--expires-days D]`: print a new
API token for a user (the only time the key is shown)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from jobs import timeutil
from jobs.errors import DomainError
from jobs.models import AuditEntry
from jobs.services.audit import Actor
from jobs.services.tokens import role_by_name, token_create


class Command(BaseCommand):
    help = (
        "Create an API token for a user and print it (shown only once). --role limits it to a "
        "group's permissions (read-only, operator, editor, code-editor...); it never has more "
        "than the user."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--role", help="a group name; default: all the user's permissions")
        parser.add_argument("--expires-days", type=float, help="refused after this many days")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            user = get_user_model().objects.get(username=opts["username"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {opts['username']!r}") from None
        expires_at = None
        if opts["expires_days"] is not None:
            expires_at = timeutil.now() + timedelta(days=opts["expires_days"])
        try:
            _, raw = token_create(
                user=user,
                name=opts["name"],
                role=role_by_name(opts["role"]),
                expires_at=expires_at,
                actor=Actor(via=AuditEntry.Via.CLI),
            )
        except DomainError as exc:
            details = "; ".join(f"{k}: {v}" for k, v in exc.details.items())
            raise CommandError(f"{exc.message} ({details})" if details else exc.message) from None
        self.stdout.write(raw)
