"""Encryption at rest: each secret value of a config stored as "enc:v1:<Fernet token>".

A token sits in the same place and container form as the plain value: names stay readable,
masking needs no key, and no migration is needed. The keys are an argument (`Keys`), never read
here: one or more Fernet keys (`Fernet.generate_key()`), the first encrypts, all decrypt
(MultiFernet), so a key is rotated by putting the new one first and sealing again with
`rotate`. Without a key values are stored as given; a token that no key opens raises
`SecretError` when opening strictly (a run), and is kept as it is otherwise, never lost.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confidential.declare import Fn, Path, Spec, describe, transform

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

PREFIX = "enc:v1:"


class SecretError(Exception):
    """A stored secret cannot be decrypted (no key, or none of the keys opens it)."""


@functools.cache
def _fernet(keys: tuple[str, ...], name: str) -> MultiFernet:
    # Imported with the first key: a server without keys (an agent, most of all) never loads
    # OpenSSL's bindings for it.
    from cryptography.fernet import Fernet, MultiFernet

    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise SecretError(
            f"{name} must be comma-separated Fernet keys (32 url-safe base64 bytes): {exc}"
        ) from None


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


@dataclass(frozen=True)
class Keys:
    """The keys secrets are sealed with; `name` is what error messages call them (the setting
    an operator changes)."""

    keys: tuple[str, ...] = ()
    name: str = "the encryption key"

    def __bool__(self) -> bool:
        return bool(self.keys)

    def problem(self) -> str | None:
        """What is wrong with the keys, or None (none set is not a problem)."""
        if not self.keys:
            return None
        try:
            _fernet(self.keys, self.name)
        except SecretError as exc:
            return str(exc)
        return None

    def sealer(self, *, rotate: bool = False) -> Fn | None:
        """A transform function encrypting each plain value, keeping tokens (re-encrypting
        them with the first key when `rotate`); None when there is no key."""
        if not self.keys:
            return None
        fernet = _fernet(self.keys, self.name)
        from cryptography.fernet import InvalidToken

        def seal_(path: Path, value: Any) -> Any:
            if is_sealed(value):
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

        return seal_

    def opener(self, *, strict: bool = True) -> Fn:
        """A transform function decrypting each token; one no key opens raises `SecretError`
        when `strict`, else it is kept as it is."""

        def open_(path: Path, value: Any) -> Any:
            if not is_sealed(value):
                return value
            if not self.keys:
                if strict:
                    raise SecretError(
                        f"the secret in {describe(path)} is stored encrypted but {self.name} "
                        "is not set"
                    )
                return value
            from cryptography.fernet import InvalidToken

            try:
                fernet = _fernet(self.keys, self.name)
                return fernet.decrypt(value[len(PREFIX) :].encode()).decode()
            except InvalidToken:
                if strict:
                    raise SecretError(
                        f"cannot decrypt the secret in {describe(path)}: {self.name} does not "
                        "hold the key it was encrypted with"
                    ) from None
                return value

        return open_


def seal(spec: Spec, config: Mapping[str, Any], keys: Keys, *, rotate: bool = False) -> dict:
    """`config` with each plain secret value encrypted; a copy as given when there is no key.

    Values already encrypted are kept, or re-encrypted with the first key when `rotate`.
    """
    fn = keys.sealer(rotate=rotate)
    return dict(config) if fn is None else transform(spec, config, fn)


def unseal(spec: Spec, config: Mapping[str, Any], keys: Keys, *, strict: bool = True) -> dict:
    """`config` with each encrypted secret value decrypted.

    A value no key opens raises `SecretError` when `strict` (running the job); otherwise it is
    kept encrypted (merging an update, an export) so the stored secret is never lost.
    """
    return transform(spec, config, keys.opener(strict=strict))
