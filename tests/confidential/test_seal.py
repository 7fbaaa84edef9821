"""Encryption at rest without Django: the keys are an argument, a sealed config keeps its
names and shape, rotation re-encrypts with the first key, and a value no key opens fails a
strict open with a message naming the secret and the keys, and is kept otherwise."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

import confidential
from confidential import ENV, Keys, SecretError, Spec

SPEC = Spec(keys=frozenset({"password"}), entries={"env": ENV})
CONFIG = {"password": "hunter2", "env": "DB_PASSWORD=pw-123,MODE=x", "host": "db"}
KEY, OTHER = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_a_sealed_config_keeps_its_names_and_opens_to_the_same_config() -> None:
    keys = Keys((KEY,), name="THE_KEY")

    sealed = confidential.seal(SPEC, CONFIG, keys)

    assert sealed["host"] == "db"
    assert confidential.is_sealed(sealed["password"])
    assert sealed["env"].startswith("DB_PASSWORD=enc:v1:") and ",MODE=enc:v1:" in sealed["env"]
    assert "hunter2" not in str(sealed) and "pw-123" not in str(sealed)
    assert confidential.unseal(SPEC, sealed, keys) == CONFIG


def test_without_a_key_sealing_stores_the_values_as_given() -> None:
    assert confidential.seal(SPEC, CONFIG, Keys()) == CONFIG


def test_rotation_re_encrypts_with_the_first_key_only() -> None:
    sealed = confidential.seal(SPEC, CONFIG, Keys((OTHER,)))

    assert confidential.seal(SPEC, sealed, Keys((KEY, OTHER))) == sealed
    rotated = confidential.seal(SPEC, sealed, Keys((KEY, OTHER)), rotate=True)

    assert rotated != sealed
    assert confidential.unseal(SPEC, rotated, Keys((KEY,))) == CONFIG


def test_a_value_no_key_opens_fails_a_strict_open_and_is_kept_otherwise() -> None:
    sealed = confidential.seal(SPEC, CONFIG, Keys((OTHER,)))

    with pytest.raises(SecretError, match="cannot decrypt the secret in password: THE_KEY"):
        confidential.unseal(SPEC, sealed, Keys((KEY,), name="THE_KEY"))
    assert confidential.unseal(SPEC, sealed, Keys((KEY,)), strict=False) == sealed


def test_a_sealed_value_with_no_key_set_names_the_setting_to_set() -> None:
    sealed = confidential.seal(SPEC, CONFIG, Keys((KEY,)))

    with pytest.raises(SecretError, match="in password is stored encrypted but THE_KEY is not set"):
        confidential.unseal(SPEC, sealed, Keys(name="THE_KEY"))


def test_malformed_keys_are_a_problem_and_none_is_not() -> None:
    assert Keys().problem() is None
    assert Keys((KEY,)).problem() is None
    assert "THE_KEY must be comma-separated Fernet keys" in (
        Keys(("not-a-key",), name="THE_KEY").problem() or ""
    )
