"""A token never outlives the token that made it, and its role label is what it can do.

The attacks of issue 12, finding 11, against a real server over loopback: a short-lived token
mints a child without expiry; an editor labels a token `code-editor`.
"""

from __future__ import annotations

import importlib
import time
from datetime import timedelta

import httpx
import pytest
from django.contrib.auth.models import Group, Permission

from jobs import timeutil
from jobs.models import ApiToken, AuditEntry
from jobs.services.tokens import hash_token, token_create
from tests.web.api.roles import member

pytestmark = pytest.mark.django_db(transaction=True)
ROLES = importlib.import_module("jobs.migrations.0005_roles_tokens_audit").ROLES


@pytest.fixture(autouse=True)
def roles(transactional_db):  # type: ignore[no-untyped-def]
    """The migration's role groups (a live server's database is flushed between tests)."""
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames)
        )


def bearer(live_server, raw: str) -> httpx.Client:  # type: ignore[no-untyped-def]
    return httpx.Client(
        base_url=live_server.url,
        headers={"Authorization": f"Bearer {raw}", "Accept": "application/json"},
        timeout=10,
    )


def test_a_child_of_a_short_lived_token_expires_with_its_parent(live_server):
    user = member("alice", "editor")
    parent, raw = token_create(
        user=user, name="short", expires_at=timeutil.now() + timedelta(seconds=2)
    )

    with bearer(live_server, raw) as client:
        answer = client.post("/v1/tokens", json={"name": "child"})
    assert answer.status_code == 201, answer.text
    child = ApiToken.objects.get(pk=answer.json()["id"])
    assert child.parent_id == parent.pk and child.expires_at == parent.expires_at

    time.sleep(max(0.0, (parent.expires_at - timeutil.now()).total_seconds()) + 0.2)
    with bearer(live_server, answer.json()["key"]) as client:
        assert client.get("/v1/jobs").status_code == 401


def test_a_child_cannot_ask_for_a_later_expiry_than_its_parent(live_server):
    user = member("alice", "editor")
    parent, raw = token_create(user=user, name="p", expires_at=timeutil.now() + timedelta(days=1))
    later = (timeutil.now() + timedelta(days=30)).isoformat()

    with bearer(live_server, raw) as client:
        answer = client.post("/v1/tokens", json={"name": "child", "expires_at": later})

    assert answer.status_code == 201
    assert ApiToken.objects.get(pk=answer.json()["id"]).expires_at == parent.expires_at


def test_revoking_a_token_revokes_its_children_and_grandchildren(live_server):
    user = member("alice", "editor")
    _, raw = token_create(user=user, name="root")
    with bearer(live_server, raw) as client:
        child = client.post("/v1/tokens", json={"name": "child"}).json()
    with bearer(live_server, child["key"]) as client:
        grandchild = client.post("/v1/tokens", json={"name": "grandchild"}).json()
        assert client.get("/v1/jobs").status_code == 200
    root_id = ApiToken.objects.get(key_hash=hash_token(raw)).pk

    with bearer(live_server, raw) as client:
        assert client.delete(f"/v1/tokens/{root_id}").status_code == 200

    for key in (child["key"], grandchild["key"]):
        with bearer(live_server, key) as client:
            assert client.get("/v1/jobs").status_code == 401
    entry = AuditEntry.objects.filter(action="token_revoke").latest("pk")
    assert entry.detail["descendants"] == 2


def test_an_editor_cannot_label_a_token_code_editor(live_server):
    editor = member("alice", "editor")
    _, raw = token_create(user=editor, name="mine")

    with bearer(live_server, raw) as client:
        answer = client.post("/v1/tokens", json={"name": "fake", "role": "code-editor"})

    assert answer.status_code == 403, answer.text
    assert "code-editor" in answer.json()["error"]
    assert "run_code_jobs" in answer.json()["error"]
    assert not ApiToken.objects.filter(name="fake").exists()


def test_an_editor_may_label_a_token_with_a_narrower_role(live_server):
    editor = member("alice", "editor")
    _, raw = token_create(user=editor, name="mine")

    with bearer(live_server, raw) as client:
        answer = client.post("/v1/tokens", json={"name": "ops", "role": "operator"})

    assert answer.status_code == 201 and answer.json()["role"] == "operator"


def test_the_service_refuses_a_role_the_user_does_not_hold():
    reader = member("reader", "read-only")

    with pytest.raises(Exception, match="role 'code-editor'"):
        token_create(user=reader, name="t", role=Group.objects.get(name="code-editor"))
