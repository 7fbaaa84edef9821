"""A run's output hides every secret it knows, whatever the variable holding it is called: the
credentials inside a URL-valued env var, and the server's own secrets (database and broker
passwords, secret and encryption keys, SMTP password) that the agent holds (issue 12,
finding 6). Values shorter than 4 characters are left alone."""

from __future__ import annotations

import pytest
from django.conf import settings

from agent.runner import run_execution
from jobs import secrets as job_secrets
from jobs.models import Execution, Job
from jobs.services.runs import run_now
from tests.factories import agent, job


@pytest.fixture(autouse=True)
def fresh_server_secrets():
    job_secrets.server_secrets.cache_clear()
    yield
    job_secrets.server_secrets.cache_clear()


def output_of(command: str, env: str = "") -> str:
    agent("n1")
    job("show", executor_config={"command": command, "shell": "true", "env": env})
    run_now(job=Job.objects.get(name="show"))
    execution = Execution.objects.filter(job_name="show").latest("pk")
    run_execution(execution.pk, node_name="n1")
    execution.refresh_from_db()
    return execution.output


def test_the_password_inside_a_url_env_var_is_hidden(transactional_db):
    output = output_of("echo $DATABASE_URL", "DATABASE_URL=postgres://app:pg-pass-123@db/x")

    assert output == "postgres://app:********@db/x\n"


def test_the_servers_own_secrets_are_hidden_from_what_a_job_prints(transactional_db, monkeypatch):
    monkeypatch.setattr(settings, "EMAIL_HOST_PASSWORD", "smtp-pass-123")
    monkeypatch.setattr(settings, "CELERY_BROKER_URL", "redis://:redis-pass-123@r:6379/0")

    output = output_of(f"echo {settings.SECRET_KEY} smtp-pass-123 redis-pass-123 visible")

    assert output == "******** ******** ******** visible\n"


def test_a_short_secret_is_not_scrubbed_from_every_word(transactional_db, monkeypatch):
    monkeypatch.setattr(settings, "EMAIL_HOST_PASSWORD", "a")

    assert output_of("echo a banana") == "a banana\n"
