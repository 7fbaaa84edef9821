"""Encryption at rest of executor secrets (DKRON_ENCRYPTION_KEY): Fernet tokens inside the JSON.

Every secret value of an executor config (executors.secrets: its secret keys and each value of
an environment or headers) is stored in Job.executor_config as "enc:v1:<Fernet token>", in the
same place and container form as the plain value: names stay readable, masking needs no key,
and no migration is needed. Values are decrypted only for the agent building the config it
runs, for merging a masked update, and for `export_jobs --include-secrets`.

DKRON_ENCRYPTION_KEY holds one or more comma-separated Fernet keys (`Fernet.generate_key()`):
the first encrypts, all decrypt (MultiFernet), so a key is rotated by putting the new one first
and running `manage.py encrypt_secrets`. Without a key values are stored as given; a stored
token that no key opens fails its executions with `SecretError`, never a crash.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from executors import registry, secrets
from executors.secrets import Path, describe, output_secrets, url_credentials
from jobs.notifications import schema as notify_schema

__all__ = [
    "PREFIX",
    "SecretError",
    "decrypt_config",
    "decrypt_notify",
    "encrypt_config",
    "encrypt_notify",
    "encryption_enabled",
    "is_encrypted",
    "run_config",
    "server_secrets",
]

PREFIX = "enc:v1:"
SETTING = "DKRON_ENCRYPTION_KEY"


class SecretError(Exception):
    """A stored secret cannot be decrypted (no key, or none of the keys opens it)."""


def _keys() -> tuple[str, ...]:
    return tuple(settings.DKRON.get("ENCRYPTION_KEYS") or ())


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise SecretError(
            f"{SETTING} must be comma-separated Fernet keys (32 url-safe base64 bytes): {exc}"
        ) from None


def check_keys() -> str | None:
    """What is wrong with the configured keys, or None (for the system check)."""
    keys = _keys()
    if not keys:
        return None
    try:
        _fernet(keys)
    except SecretError as exc:
        return str(exc)
    return None


def encryption_enabled() -> bool:
    return bool(_keys())


def is_encrypted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def _sealer(rotate: bool) -> Callable[[Path, Any], Any] | None:
    keys = _keys()
    if not keys:
        return None
    fernet = _fernet(keys)

    def seal(path: Path, value: Any) -> Any:
        if is_encrypted(value):
            if not rotate:
                return value
            try:
                token = fernet.rotate(value[len(PREFIX) :].encode())
            except InvalidToken:
                return value  # no key opens it: leave it for the run to report
            return PREFIX + token.decode()
        if not isinstance(value, str) or value == "":
            return value
        return PREFIX + fernet.encrypt(value.encode()).decode()

    return seal


def _opener(strict: bool) -> Callable[[Path, Any], Any]:
    keys = _keys()

    def open_(path: Path, value: Any) -> Any:
        if not is_encrypted(value):
            return value
        if not keys:
            if strict:
                raise SecretError(
                    f"the secret in {describe(path)} is stored encrypted but {SETTING} is not set"
                )
            return value
        try:
            return _fernet(keys).decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            if strict:
                raise SecretError(
                    f"cannot decrypt the secret in {describe(path)}: {SETTING} does not hold "
                    "the key it was encrypted with"
                ) from None
            return value

    return open_


def encrypt_config(
    executor: str, config: Mapping[str, Any], *, rotate: bool = False
) -> dict[str, Any]:
    """`config` with each plain secret value encrypted; a copy as given when no key is set.

    Values already encrypted are kept, or re-encrypted with the first key when `rotate`.
    """
    seal = _sealer(rotate)
    if seal is None:
        return dict(config)
    return registry.transform_secrets(executor, config, seal)


def decrypt_config(
    executor: str, config: Mapping[str, Any], *, strict: bool = True
) -> dict[str, Any]:
    """`config` with each encrypted secret value decrypted.

    A value no key opens raises `SecretError` when `strict` (running the job); otherwise it is
    kept encrypted (merging an update, an export) so the stored secret is never lost.
    """
    return registry.transform_secrets(executor, config, _opener(strict))


def encrypt_notify(notify: Any, *, rotate: bool = False) -> Any:
    """A job's `notify` with its webhook secrets (URL path and query, header values) encrypted,
    as `encrypt_config` does for executor secrets."""
    seal = _sealer(rotate)
    return notify if seal is None else notify_schema.transform_secrets(notify, seal)


def decrypt_notify(notify: Any, *, strict: bool = True) -> Any:
    """A job's `notify` with its webhook secrets decrypted (sending, merging, exporting)."""
    return notify_schema.transform_secrets(notify, _opener(strict))


def run_config(executor: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The plain config an agent runs, and the secret values its output must not show: the
    job's own (`executors.secrets.output_secrets`) and this server's (`server_secrets`)."""
    plain = decrypt_config(executor, config)
    hidden = output_secrets(registry.secret_values(executor, plain))
    return plain, [*hidden, *server_secrets()]


@functools.cache
def server_secrets() -> tuple[str, ...]:
    """The secrets this process holds in its settings, which no job's output may show
    whatever a job prints (`env`, `echo $DKRON_DATABASE_URL`): the database and broker
    passwords, the secret and encryption keys, the SMTP password, the global webhook's URL
    path and headers. Computed once per process; settings do not change while it runs.
    Values shorter than `REDACT_MIN_LENGTH` are not scrubbed (`redact`)."""
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
        found.extend(url_credentials(str(url or "")))
    hook = {"url": conf.get("NOTIFY_WEBHOOK_URL") or "",
            "headers": conf.get("NOTIFY_WEBHOOK_HEADERS") or {}}  # fmt: skip
    spec = notify_schema.WEBHOOK_SECRETS
    for value in secrets.secret_values(
        hook, keys=(), entries=spec.entries, urls=spec.urls
    ).values():
        if isinstance(value, str):
            found.append(value)
    return tuple(v for v in dict.fromkeys(found) if len(v) >= secrets.REDACT_MIN_LENGTH)
