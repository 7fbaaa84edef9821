"""Shell jobs start with a clean environment: the agent's own settings (encryption key, database
and broker URLs with passwords) never reach a job's `env` output, while PATH, the job's env, the
DKRON_* run variables and the operator's passthrough list do (issue 12, finding 5)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agent.runner import run_execution
from jobs.models import Execution, Job
from jobs.services.runs import run_now
from tests.factories import agent, job

KEY = Fernet.generate_key().decode()
AGENT_SECRETS = {
    "DKRON_ENCRYPTION_KEY": KEY,
    "DKRON_SECRET_KEY": "agent-secret-key-value-1",
    "DKRON_DATABASE_URL": "postgres://dkron:db-password-1@db.internal:5432/dkron",
    "DKRON_BROKER_URL": "redis://:broker-password-1@redis.internal:6379/0",
    "DATABASE_URL": "postgres://app:app-db-password-1@db.internal/app",
    "DJANGO_SETTINGS_MODULE": "dkronweb.settings",
    "CELERY_BROKER_URL": "redis://:celery-password-1@redis.internal:6379/0",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-1",
}


@pytest.fixture
def agent_environment(monkeypatch):
    """The agent process runs with its settings (and a stray credential) in its environment."""
    for name, value in AGENT_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("LC_TIME", "C.UTF-8")
    agent("n1")


def run(name: str, command: str, **config: str) -> Execution:
    job(name, executor_config={"command": command, **config})
    run_now(job=Job.objects.get(name=name))
    execution = Execution.objects.filter(job_name=name).latest("pk")
    run_execution(execution.pk, node_name="n1")
    execution.refresh_from_db()
    return execution


def test_env_in_a_shell_job_prints_none_of_the_agents_settings(transactional_db, agent_environment):
    execution = run("leaky", "env")

    assert execution.status == "success", execution.output
    for name, value in AGENT_SECRETS.items():
        assert value not in execution.output, name
        assert f"{name}=" not in execution.output, name
    assert "HTTP_PROXY" not in execution.output  # not passed unless the operator says so
    printed = dict(line.split("=", 1) for line in execution.output.splitlines() if "=" in line)
    assert printed["DKRON_JOB_NAME"] == "leaky" and printed["ENV_JOB_NAME"] == "leaky"
    assert printed["DKRON_EXECUTION_ID"] == str(execution.pk)
    assert printed["LC_TIME"] == "C.UTF-8"  # locale variables pass (LC_*)


def test_path_works_and_the_jobs_own_env_is_there(transactional_db, agent_environment):
    execution = run("tools", 'command -v ls && echo "mode=$MODE"', shell="true", env="MODE=nightly")

    assert execution.status == "success", execution.output
    assert execution.output.endswith("/ls\nmode=nightly\n")


def test_the_passthrough_setting_passes_the_named_variables(
    transactional_db, agent_environment, monkeypatch
):
    monkeypatch.setitem(settings.DKRON, "JOB_ENV_PASSTHROUGH", ("HTTP_PROXY", "AWS_*"))

    execution = run(
        "proxied", 'echo "$HTTP_PROXY $AWS_SECRET_ACCESS_KEY [$DKRON_SECRET_KEY]"', shell="true"
    )

    assert execution.output == "http://proxy.internal:3128 aws-secret-1 []\n"


def test_a_job_may_set_a_variable_of_the_same_name_itself(transactional_db, agent_environment):
    execution = run("own", 'echo "$DATABASE_URL"', shell="true", env="DATABASE_URL=sqlite:///x")

    assert execution.output == "sqlite:///x\n"


@pytest.mark.parametrize(
    "value", ["DKRON_SECRET_KEY", "HTTP_PROXY,DJANGO_*", "celery_broker_url", "*"]
)
def test_the_passthrough_setting_refuses_dkronwebs_own_variables(monkeypatch, value):
    from dkronweb.settings import _job_env_passthrough

    monkeypatch.setenv("DKRON_JOB_ENV_PASSTHROUGH", value)
    with pytest.raises(ImproperlyConfigured, match="DKRON_JOB_ENV_PASSTHROUGH"):
        _job_env_passthrough()
