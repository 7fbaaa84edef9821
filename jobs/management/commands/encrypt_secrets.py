"""`manage.py encrypt_secrets [--decrypt]`: re-encrypt stored secrets with DKRON_ENCRYPTION_KEY."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from confidential import SecretError
from jobs.services.secrets import secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Encrypt every job's executor secrets with the first key of DKRON_ENCRYPTION_KEY: "
        "values stored in clear (saved before the key was set) and values encrypted with an "
        "older key (rotation: put the new key first, keep the old ones after it, run this, "
        "then drop the old keys). --decrypt stores them in clear again."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--decrypt", action="store_true", help="store the secrets in clear instead"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            result = secrets_reencrypt(decrypt=bool(opts["decrypt"]))
        except SecretError as exc:
            raise CommandError(str(exc)) from None
        verb = "decrypted" if opts["decrypt"] else "encrypted"
        self.stdout.write(f"{verb} {result.changed} job(s); {result.unchanged} unchanged")
