"""Run parameters on the agent's real run path (agent.runner, the shell executor): a shell job
gets DKRON_PARAM_<NAME> and its `{{ params.<name> }}` placeholders filled, and no parameter value
can bring a job's secret into its output or send it elsewhere (issue 16, part 5)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection

from agent.runner import run_execution
from jobs.errors import InvalidJob
from jobs.models import Execution, Job
from jobs.services.runs import run_now
from tests.factories import agent, job

SECRET = "t0ken-never-shown-1"
KEY = Fernet.generate_key().decode()
DECLARATION = [
    {"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "eu"},
    {"name": "count", "type": "int", "default": 1},
    {"name": "dry_run", "type": "bool", "default": True},
    {"name": "msg", "default": ""},
]


@pytest.fixture
def node(transactional_db):
    agent("n1")


def run(name: str, params: dict | None = None) -> Execution:
    run_now(job=Job.objects.get(name=name), params=params)
    execution = Execution.objects.filter(job_name=name).latest("pk")
    run_execution(execution.pk, node_name="n1")
    execution.refresh_from_db()
    return execution


def test_a_shell_job_gets_its_params_as_variables_and_placeholders(node):
    command = (
        'echo "to {{ params.region }} x{{ params.count }}";'
        ' echo "$DKRON_PARAM_REGION $DKRON_PARAM_COUNT $DKRON_PARAM_DRY_RUN [$DKRON_PARAM_MSG]"'
    )
    job("deploy", params=DECLARATION, executor_config={"command": command, "shell": "true"})

    execution = run("deploy", {"region": "us", "count": 3})

    assert execution.status == "success", execution.output
    assert execution.output == "to us x3\nus 3 true []\n"
    stored = Job.objects.get(name="deploy").executor_config["command"]
    assert "{{ params.region }}" in stored  # substituted for the executor only
    assert "{{ params.region }}" in execution.run.snapshot["executor_config"]["command"]


def test_a_scheduled_style_run_without_values_runs_with_the_defaults(node):
    command = 'echo "{{ params.region }} $DKRON_PARAM_COUNT"'
    job("deploy", params=DECLARATION, executor_config={"command": command, "shell": "true"})

    assert run("deploy").output == "eu 1\n"


def test_a_value_is_text_to_the_shell_not_a_variable_it_expands(node):
    # The job holds a secret in its env; the value asks for it and gets its own text back.
    config = {"command": 'echo "[$DKRON_PARAM_MSG]"', "shell": "true", "env": f"TOKEN={SECRET}"}
    job("quoted", params=DECLARATION, executor_config=config)

    execution = run("quoted", {"msg": "$TOKEN {{ params.region }}"})

    assert execution.output == "[$TOKEN {{ params.region }}]\n"
    assert SECRET not in execution.output


def test_a_placeholder_where_it_could_send_a_secret_is_refused_at_save(transactional_db):
    config = {
        "command": "curl -d $TOKEN {{ params.msg }}",
        "shell": "true",
        "env": f"TOKEN={SECRET}",
    }

    with pytest.raises(InvalidJob) as refused:
        job("exfil", params=DECLARATION, executor_config=config)

    assert (
        "decides where this job's secrets go" in refused.value.details["executor_config"]["command"]
    )


def test_a_placeholder_inside_a_secret_is_refused_at_save(transactional_db):
    config = {"command": "true", "env": "TOKEN={{ params.msg }}"}

    with pytest.raises(InvalidJob) as refused:
        job("inside", params=DECLARATION, executor_config=config)

    assert "holds a secret" in refused.value.details["executor_config"]["env"]


def test_a_placeholder_stored_in_a_secret_anyway_is_never_filled(node):
    job("legacy", params=DECLARATION, executor_config={"command": "true", "shell": "true"})
    # As an older release or a direct write could leave it: the runner still leaves it alone.
    config = {"command": 'printf %s "$TOKEN" | sha256sum', "shell": "true"}
    config["env"] = "TOKEN={{ params.msg }}"
    Job.objects.filter(name="legacy").update(executor_config=config)

    execution = run("legacy", {"msg": "filled"})

    digest = hashlib.sha256(b"{{ params.msg }}").hexdigest()
    assert execution.output.startswith(digest), execution.output


def test_a_sealed_secret_passed_as_a_value_stays_sealed(node, monkeypatch):
    # Substitution happens after unsealing: a value copied from an encrypted row is not opened.
    monkeypatch.setitem(settings.DKRON, "ENCRYPTION_KEYS", [KEY])
    job("vault", executor_config={"command": "true", "env": f"TOKEN={SECRET}"})
    with connection.cursor() as cursor:
        cursor.execute("SELECT executor_config FROM jobs_job WHERE name = %s", ["vault"])
        raw = cursor.fetchone()[0]
    raw = raw if isinstance(raw, str) else repr(raw)
    sealed = raw[raw.index("enc:v1:") :].split('"')[0].split("'")[0]
    echo = {"command": 'echo "{{ params.msg }}"', "shell": "true"}
    job("echoer", params=DECLARATION, executor_config=echo)

    execution = run("echoer", {"msg": sealed})

    assert execution.status == "success", execution.output
    assert execution.output == f"{sealed}\n"
    assert SECRET not in execution.output


def test_a_placeholder_written_where_secrets_go_anyway_is_never_filled(node):
    job("vault", params=DECLARATION, executor_config={"command": "true", "env": f"TOKEN={SECRET}"})
    stored = Job.objects.get(name="vault").executor_config
    command = {"command": 'echo "{{ params.msg }}"', "shell": "true"}
    Job.objects.filter(name="vault").update(executor_config={**stored, **command})

    execution = run("vault", {"msg": "$TOKEN"})

    assert execution.output == "{{ params.msg }}\n"
