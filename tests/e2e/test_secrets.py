"""Encrypted secrets with real agents: an agent holding DKRON_ENCRYPTION_KEY runs the job with
the plain value and records it masked (output and log); one with another key fails the run
with a clear error instead of crashing."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection

from jobs.models import Execution
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

SECRET = "e2e-hunter2-secret"
KEY, OTHER = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def finished(job: str, node: str):
    def check():
        done = [
            e
            for e in Execution.objects.filter(job_name=job, node_name=node).order_by("id")
            if e.status not in ("queued", "running")
        ]
        return done[0] if done else None

    return check


def create(api, name: str) -> None:
    body = {
        "name": name,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {
            "command": 'echo "got: $DB_PASSWORD"; printf %s "$DB_PASSWORD" | sha256sum',
            "shell": "true",
            "env": f"DB_PASSWORD={SECRET}",
        },
    }
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 201, response.content
    assert SECRET not in response.content.decode()


def test_an_agent_with_the_key_decrypts_and_one_without_fails_clearly(cluster, api, monkeypatch):
    monkeypatch.setitem(settings.DKRON, "ENCRYPTION_KEYS", [KEY])
    create(api, "locked")
    with connection.cursor() as cursor:
        cursor.execute("SELECT executor_config::text FROM jobs_job WHERE name = 'locked'")
        assert SECRET not in cursor.fetchone()[0]

    good = cluster.agent("agent-key", DKRON_ENCRYPTION_KEY=f"{KEY}")
    api.post("/v1/jobs/locked/run")
    execution = wait_for(finished("locked", "agent-key"), what="the run with the key")
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    assert execution.status == "success", execution.output
    assert execution.output == f"got: ********\n{digest}  -\n"
    assert SECRET not in good.log()
    good.stop()

    create(api, "locked-2")
    wrong = cluster.agent("agent-wrong", DKRON_ENCRYPTION_KEY=OTHER)
    api.post("/v1/jobs/locked-2/run")
    execution = wait_for(finished("locked-2", "agent-wrong"), what="the run with the wrong key")
    assert execution.status == "failed"
    assert "cannot decrypt the secret in env DB_PASSWORD" in execution.output
    assert wrong.alive() and SECRET not in wrong.log()
