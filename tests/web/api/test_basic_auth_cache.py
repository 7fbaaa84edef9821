"""The API's Basic auth remembers a verified password for DKRON_BASIC_AUTH_CACHE_SECONDS: a
repeated call skips the password hasher, while a password change, a deactivation, a deletion,
a rename and a lockout all take effect on the very next request, and a refused password is
never remembered (issue 15, target 5)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from dkronweb import env as settings_env
from web.api import auth

pytestmark = pytest.mark.django_db
PASSWORD = "right-password"
LIMIT = 4


class CountingHasher(MD5PasswordHasher):
    """The test settings' hasher, counting the passwords it checks."""

    calls = 0

    def verify(self, password: str, encoded: str) -> bool:
        CountingHasher.calls += 1
        return super().verify(password, encoded)


@pytest.fixture(autouse=True)
def counting(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.BASIC_AUTH_CACHE_SECONDS = 60.0
    settings.PASSWORD_HASHERS = ["tests.web.api.test_basic_auth_cache.CountingHasher"]
    CountingHasher.calls = 0
    auth.forget_basic_credentials()
    yield
    auth.forget_basic_credentials()


@pytest.fixture
def alice():  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_superuser("alice", "a@example.com", PASSWORD)


def get(password: str, username: str = "alice") -> int:
    header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    client = APIClient(HTTP_ACCEPT="application/json", HTTP_AUTHORIZATION=header)
    return client.get("/v1/jobs").status_code


def test_a_repeated_call_skips_the_hasher(alice):
    assert [get(PASSWORD) for _ in range(10)] == [200] * 10
    assert CountingHasher.calls == 1


def test_the_cache_holds_neither_the_password_nor_its_stored_hash(alice):
    assert get(PASSWORD) == 200

    [(key, entry)] = auth._cache.items()
    stored = repr((key, entry)).encode()
    assert PASSWORD.encode() not in stored and PASSWORD.encode().hex().encode() not in stored
    assert alice.password.encode() not in stored
    assert entry[0] == alice.pk


def test_a_changed_password_is_seen_on_the_next_request(alice):
    assert get(PASSWORD) == 200
    alice.set_password("new-password")
    alice.save()

    assert get(PASSWORD) == 401
    assert get("new-password") == 200


def test_a_deactivated_user_is_refused_on_the_next_request(alice):
    assert get(PASSWORD) == 200
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)

    assert get(PASSWORD) == 401
    assert auth._cache == {}


def test_a_deleted_user_is_refused_and_their_pk_reused_by_another_is_no_match(alice):
    assert get(PASSWORD) == 200
    pk = alice.pk
    alice.delete()
    assert get(PASSWORD) == 401

    # Even a new "alice" with the very same pk and password has another salt, so another hash.
    get_user_model().objects.create_superuser("alice", "a@example.com", PASSWORD, pk=pk)
    hashed = CountingHasher.calls
    assert get(PASSWORD) == 200
    assert CountingHasher.calls == hashed + 1


def test_a_renamed_user_is_not_found_under_the_old_name(alice):
    assert get(PASSWORD) == 200
    alice.username = "alicia"
    alice.save()

    assert get(PASSWORD) == 401
    assert get(PASSWORD, username="alicia") == 200


def test_a_wrong_password_is_never_remembered(alice):
    assert [get("guess") for _ in range(LIMIT - 1)] == [401] * (LIMIT - 1)

    assert CountingHasher.calls == LIMIT - 1  # each one hashed, none answered from memory
    assert auth._cache == {}


def test_a_right_password_does_not_vouch_for_a_wrong_one(alice):
    assert get(PASSWORD) == 200
    assert get(PASSWORD + "x") == 401
    assert get(PASSWORD[:-1]) == 401
    assert get(PASSWORD, username="alice2") == 401


def test_a_lockout_wins_over_a_remembered_password(alice):
    assert get(PASSWORD) == 200
    assert [get(f"guess-{i}") for i in range(LIMIT)] == [401] * (LIMIT - 1) + [429]
    hashed = CountingHasher.calls

    assert [get(PASSWORD) for _ in range(3)] == [429] * 3
    assert CountingHasher.calls == hashed  # refused before the cache and before hashing


def test_failed_attempts_are_still_counted_while_a_password_is_remembered(alice):
    from axes.models import AccessAttempt

    assert get(PASSWORD) == 200
    for i in range(2):
        assert get(f"guess-{i}") == 401
    assert get(PASSWORD) == 200  # from the cache

    assert AccessAttempt.objects.get(username="alice").failures_since_start == 2


def test_an_entry_expires(alice, settings, monkeypatch):
    settings.BASIC_AUTH_CACHE_SECONDS = 30.0
    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    assert get(PASSWORD) == 200
    clock[0] += 29
    assert get(PASSWORD) == 200
    assert CountingHasher.calls == 1

    clock[0] += 2
    assert get(PASSWORD) == 200
    assert CountingHasher.calls == 2


def test_zero_seconds_turns_the_cache_off(alice, settings):
    settings.BASIC_AUTH_CACHE_SECONDS = 0.0

    assert [get(PASSWORD) for _ in range(3)] == [200] * 3
    assert CountingHasher.calls == 3
    assert auth._cache == {}


def test_a_full_cache_drops_expired_entries_first(alice, monkeypatch):
    monkeypatch.setattr(auth, "BASIC_CACHE_MAX", 2)
    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    get_user_model().objects.create_user("bob", password="bob-pass")
    get_user_model().objects.create_user("carol", password="carol-pass")
    assert get(PASSWORD) == 200
    clock[0] += 59
    assert get("bob-pass", username="bob") == 200
    clock[0] += 2  # alice's entry has expired, bob's has not
    assert get("carol-pass", username="carol") == 200

    assert len(auth._cache) == 2
    calls = CountingHasher.calls
    assert get("bob-pass", username="bob") == 200
    assert CountingHasher.calls == calls


@pytest.mark.parametrize(("raw", "seconds"), [("", 60.0), ("0", 0.0), ("30", 30.0), ("2m", 120.0)])
def test_the_setting_reads_durations(monkeypatch, raw, seconds):
    monkeypatch.setenv("DKRON_BASIC_AUTH_CACHE_SECONDS", raw)
    assert settings_env.env_duration("DKRON_BASIC_AUTH_CACHE_SECONDS", 60.0) == seconds


@pytest.mark.parametrize("raw", ["-1", "sixty", "1M", "60 s s"])
def test_the_setting_refuses_what_is_not_a_duration(monkeypatch, raw):
    monkeypatch.setenv("DKRON_BASIC_AUTH_CACHE_SECONDS", raw)
    with pytest.raises(ImproperlyConfigured, match="DKRON_BASIC_AUTH_CACHE_SECONDS"):
        settings_env.env_duration("DKRON_BASIC_AUTH_CACHE_SECONDS", 60.0)
