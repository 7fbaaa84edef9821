"""The core's side of `confidential`: the keys from DKRON_ENCRYPTION_KEY, a job's executor
config and webhooks sealed and opened with them, and the secrets this server holds itself.

Every secret value is stored in Job.executor_config (and Job.notify) as "enc:v1:<Fernet
token>" when a key is set (confidential.seal). Values are decrypted only for the agent building
the config it runs, for merging a masked update, and for `export_jobs --include-secrets`.
DKRON_ENCRYPTION_KEY holds one or more comma-separated Fernet keys: the first encrypts, all
decrypt, so a key is rotated by putting the new one first and running `manage.py
encrypt_secrets` (jobs.services.secrets).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from django.conf import settings

import confidential
from executors.registry import secret_spec
from jobs.notifications import schema as notify_schema

__all__ = [
    "SETTING",
    "check_keys",
    "decrypt_config",
    "decrypt_notify",
    "encrypt_config",
    "encrypt_notify",
    "encryption_enabled",
    "encryption_keys",
    "server_secrets",
]

SETTING = "DKRON_ENCRYPTION_KEY"


def encryption_keys() -> confidential.Keys:
    """This server's keys (settings.DKRON["ENCRYPTION_KEYS"], parsed from DKRON_ENCRYPTION_KEY)."""
    return confidential.Keys(tuple(settings.DKRON.get("ENCRYPTION_KEYS") or ()), name=SETTING)


def check_keys() -> str | None:
    """What is wrong with the configured keys, or None (for the system check)."""
    return encryption_keys().problem()


def encryption_enabled() -> bool:
    return bool(encryption_keys())


def encrypt_config(
    executor: str, config: Mapping[str, Any], *, rotate: bool = False
) -> dict[str, Any]:
    """The executor config with each plain secret value encrypted (confidential.seal)."""
    return confidential.seal(
        secret_spec(executor, config), config, encryption_keys(), rotate=rotate
    )


def decrypt_config(
    executor: str, config: Mapping[str, Any], *, strict: bool = True
) -> dict[str, Any]:
    """The executor config with each encrypted secret value decrypted (confidential.unseal)."""
    return confidential.unseal(
        secret_spec(executor, config), config, encryption_keys(), strict=strict
    )


def encrypt_notify(notify: Any, *, rotate: bool = False) -> Any:
    """A job's `notify` with its webhook secrets (URL path and query, header values) encrypted,
    as `encrypt_config` does for executor secrets."""
    seal = encryption_keys().sealer(rotate=rotate)
    return notify if seal is None else notify_schema.transform_secrets(notify, seal)


def decrypt_notify(notify: Any, *, strict: bool = True) -> Any:
    """A job's `notify` with its webhook secrets decrypted (sending, merging, exporting)."""
    return notify_schema.transform_secrets(notify, encryption_keys().opener(strict=strict))


@functools.cache
def server_secrets() -> tuple[str, ...]:
    """The secrets this process holds in its settings, which no job's output may show
    whatever a job prints (`env`, `echo $DKRON_DATABASE_URL`): the database and broker
    passwords, the secret and encryption keys, the SMTP password, the global webhook's URL
    path and headers. Computed once per process; settings do not change while it runs.
    Values shorter than `REDACT_MIN_LENGTH` are not scrubbed (`confidential.redact`)."""
    conf = settings.DKRON
    found: list[str] = [settings.SECRET_KEY, *(conf.get("ENCRYPTION_KEYS") or ())]
    for db in settings.DATABASES.values():
        found.append(str(db.get("PASSWORD") or ""))
    found.append(str(getattr(settings, "EMAIL_HOST_PASSWORD", "") or ""))
    for url in (
        getattr(settings, "CELERY_BROKER_URL", ""),
        getattr(settings, "CELERY_RESULT_BACKEND", ""),
        getattr(settings, "DATABASE_URL", ""),
    ):
        found.extend(confidential.url_credentials(str(url or "")))
    hook = {"url": conf.get("NOTIFY_WEBHOOK_URL") or "",
            "headers": conf.get("NOTIFY_WEBHOOK_HEADERS") or {}}  # fmt: skip
    for value in confidential.secret_values(notify_schema.WEBHOOK_SECRETS, hook).values():
        if isinstance(value, str):
            found.append(value)
    return tuple(v for v in dict.fromkeys(found) if len(v) >= confidential.REDACT_MIN_LENGTH)
