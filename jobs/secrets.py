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
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from executors import registry
from executors.secrets import Path, hidden_in_output

__all__ = [
    "PREFIX",
    "SecretError",
    "decrypt_config",
    "encrypt_config",
    "encryption_enabled",
    "is_encrypted",
    "run_config",
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


def _where(path: Path) -> str:
    return path[0] if len(path) == 1 else f"{path[0]} {path[1]}"


def encrypt_config(
    executor: str, config: Mapping[str, Any], *, rotate: bool = False
) -> dict[str, Any]:
    """`config` with each plain secret value encrypted; a copy as given when no key is set.

    Values already encrypted are kept, or re-encrypted with the first key when `rotate`.
    """
    keys = _keys()
    if not keys:
        return dict(config)
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

    return registry.transform_secrets(executor, config, seal)


def decrypt_config(
    executor: str, config: Mapping[str, Any], *, strict: bool = True
) -> dict[str, Any]:
    """`config` with each encrypted secret value decrypted.

    A value no key opens raises `SecretError` when `strict` (running the job); otherwise it is
    kept encrypted (merging an update, an export) so the stored secret is never lost.
    """
    keys = _keys()

    def open_(path: Path, value: Any) -> Any:
        if not is_encrypted(value):
            return value
        if not keys:
            if strict:
                raise SecretError(
                    f"the secret in {_where(path)} is stored encrypted but {SETTING} is not set"
                )
            return value
        try:
            return _fernet(keys).decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            if strict:
                raise SecretError(
                    f"cannot decrypt the secret in {_where(path)}: {SETTING} does not hold the "
                    "key it was encrypted with"
                ) from None
            return value

    return registry.transform_secrets(executor, config, open_)


def run_config(executor: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The plain config an agent runs, and the secret values its output must not show."""
    plain = decrypt_config(executor, config)
    values = registry.secret_values(executor, plain)
    return plain, [
        v for path, v in values.items() if isinstance(v, str) and v and hidden_in_output(path)
    ]
