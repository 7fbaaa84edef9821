"""Guessing passwords gets a user name and a client address locked out, is audited, and the
password hasher is not paid again and again (issue 12, finding 10), against a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher

from jobs.models import AuditEntry
from jobs.services.tokens import token_create
from web.api import auth

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "right-password"
LIMIT = 5


class CountingHasher(MD5PasswordHasher):
    """The test settings' hasher, counting how often a password is checked."""

    calls = 0

    def verify(self, password: str, encoded: str) -> bool:
        CountingHasher.calls += 1
        return super().verify(password, encoded)


@pytest.fixture(autouse=True)
def lockout(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.PASSWORD_HASHERS = ["tests.web.api.test_brute_force.CountingHasher"]
    CountingHasher.calls = 0
    getattr(auth, "_cache", {}).clear()
    yield
    getattr(auth, "_cache", {}).clear()


@pytest.fixture
def alice():  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_superuser("alice", "a@example.com", PASSWORD)


def basic(live_server, password: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.get(
        live_server.url + "/v1/jobs",
        auth=("alice", password),
        headers={"Accept": "application/json"},
        timeout=10,
    )


def test_two_hundred_wrong_basic_passwords_lock_the_user_out(live_server, alice):
    codes = [basic(live_server, f"guess-{i}").status_code for i in range(200)]

    assert codes[: LIMIT - 1] == [401] * (LIMIT - 1)
    assert set(codes[LIMIT:]) == {429}
    refused = basic(live_server, PASSWORD)
    assert refused.status_code == 429
    assert "too many failed logins" in refused.json()["error"]


def test_failed_logins_are_audited_with_who_where_and_which_door(live_server, alice):
    for i in range(3):
        basic(live_server, f"guess-{i}")

    entries = AuditEntry.objects.filter(action="login_failed")
    assert entries.count() == 3
    entry = entries.latest("pk")
    assert (entry.actor, entry.via, entry.target) == ("alice", "api", "alice")
    assert entry.detail == {"ip": "127.0.0.1", "locked_out": False}
    assert "guess" not in str(list(entries.values("detail", "target", "actor")))


def test_once_locked_out_a_wrong_password_is_refused_before_it_is_hashed(live_server, alice):
    for i in range(LIMIT):
        basic(live_server, f"guess-{i}")
    hashed = CountingHasher.calls

    assert [basic(live_server, "again").status_code for _ in range(20)] == [429] * 20
    assert CountingHasher.calls == hashed


def test_repeated_basic_calls_hash_the_password_once(live_server, alice):
    codes = [basic(live_server, PASSWORD).status_code for _ in range(20)]

    assert codes == [200] * 20
    assert CountingHasher.calls == 1


def test_a_changed_password_is_not_answered_from_the_cache(live_server, alice):
    assert basic(live_server, PASSWORD).status_code == 200
    alice.set_password("new-password")
    alice.save()

    assert basic(live_server, PASSWORD).status_code == 401
    assert basic(live_server, "new-password").status_code == 200


def test_bearer_tokens_never_hash_a_password(live_server, alice):
    _, raw = token_create(user=alice, name="t")
    for _ in range(10):
        answer = httpx.get(
            live_server.url + "/v1/jobs", headers={"Authorization": f"Bearer {raw}"}, timeout=10
        )
        assert answer.status_code == 200

    assert CountingHasher.calls == 0


def form_login(client: httpx.Client, path: str, password: str) -> httpx.Response:
    page = client.get(path)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    return client.post(
        path,
        data={"username": "alice", "password": password, "csrfmiddlewaretoken": token[1]},
        headers={"Referer": client.base_url.join(path).__str__()},
    )


@pytest.mark.parametrize(("path", "door"), [("/ui/login/", "ui"), ("/admin/login/", "admin")])
def test_a_hundred_wrong_form_logins_lock_the_user_out(live_server, alice, path, door):
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        codes = [form_login(client, path, f"guess-{i}").status_code for i in range(100)]
        refused = form_login(client, path, PASSWORD)

    assert codes[: LIMIT - 1] == [200] * (LIMIT - 1)  # the form again, with its error
    assert set(codes[LIMIT:]) == {429}
    assert refused.status_code == 429 and "too many failed logins" in refused.text
    assert AuditEntry.objects.filter(action="login_failed", via=door, actor="alice").count() >= 100
