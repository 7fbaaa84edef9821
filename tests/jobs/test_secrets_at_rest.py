"""Encryption at rest (DKRON_ENCRYPTION_KEY): the database row holds no plaintext secret, a run
decrypts it for the executor only, output and logs show it masked, a wrong key fails the run
with a clear error, and `encrypt_secrets` encrypts and rotates what is stored."""

from __future__ import annotations

import hashlib
import io
import logging

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from agent.runner import run_execution
from jobs.models import Execution, Job
from jobs.services.runs import run_now
from tests.factories import agent, job

SECRET = "hunter2-at-rest"
KEY, OTHER = Fernet.generate_key().decode(), Fernet.generate_key().decode()
DIGEST = hashlib.sha256(SECRET.encode()).hexdigest()
CONFIG = {
    # The digest proves the process got the plain value; the echo, that output masks it.
    "command": 'echo "got: $DB_PASSWORD"; printf %s "$DB_PASSWORD" | sha256sum',
    "shell": "true",
    "env": f"DB_PASSWORD={SECRET},MODE=x",
}


@pytest.fixture
def keys(monkeypatch):
    def use(*keys: str) -> None:
        monkeypatch.setitem(settings.DKRON, "ENCRYPTION_KEYS", list(keys))

    use(KEY)
    return use


def raw_config(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT executor_config FROM jobs_job WHERE name = %s", [name])
        value = cursor.fetchone()[0]
    return value if isinstance(value, str) else repr(value)


def run(name: str) -> Execution:
    run_now(job=Job.objects.get(name=name))
    execution = Execution.objects.filter(job_name=name).latest("pk")
    run_execution(execution.pk, node_name="n1")
    execution.refresh_from_db()
    return execution


def test_the_row_holds_no_plaintext_and_a_run_decrypts_it(transactional_db, keys, caplog):
    agent("n1")
    job("locked", executor_config=CONFIG)
    assert SECRET not in raw_config("locked") and "enc:v1:" in raw_config("locked")
    assert "DB_PASSWORD=enc:v1:" in Job.objects.get(name="locked").executor_config["env"]

    with caplog.at_level(logging.DEBUG):
        execution = run("locked")

    assert execution.status == "success", execution.output
    assert execution.output == f"got: ********\n{DIGEST}  -\n"
    assert SECRET not in caplog.text and "enc:v1:" not in caplog.text
    assert SECRET not in (Execution.objects.get(pk=execution.pk).reason or "")


def test_without_a_key_values_are_stored_as_given(transactional_db, keys):
    keys()
    job("plain", executor_config=CONFIG)
    assert Job.objects.get(name="plain").executor_config["env"] == CONFIG["env"]


def test_a_masked_update_keeps_the_encrypted_secret_working(transactional_db, keys):
    agent("n1")
    job("locked", executor_config=CONFIG)
    job("locked", executor_config={**CONFIG, "env": "DB_PASSWORD=********,MODE=y"})

    assert SECRET not in raw_config("locked")
    assert DIGEST in run("locked").output


def test_a_wrong_key_fails_the_run_clearly_and_for_good(transactional_db, keys):
    agent("n1")
    job("locked", executor_config=CONFIG, retries=2)
    keys(OTHER)

    execution = run("locked")

    assert execution.status == "failed"
    assert execution.output.startswith(
        "secrets: cannot decrypt the secret in env DB_PASSWORD: DKRON_ENCRYPTION_KEY does not "
        "hold the key it was encrypted with"
    )
    assert Execution.objects.filter(job_name="locked").count() == 1  # not retried


def test_encrypt_secrets_encrypts_old_rows_and_rotates_keys(transactional_db, keys):
    agent("n1")
    keys()
    job("old", executor_config=CONFIG)
    assert SECRET in raw_config("old")

    keys(KEY)
    call_command("encrypt_secrets", stdout=io.StringIO())
    assert SECRET not in raw_config("old")

    keys(OTHER, KEY)  # rotation: the new key first, the old one still decrypts
    before = raw_config("old")
    call_command("encrypt_secrets", stdout=io.StringIO())
    assert raw_config("old") != before
    keys(OTHER)  # the old key is gone: the rotated tokens still open
    assert DIGEST in run("old").output


def test_export_with_secrets_decrypts_and_without_masks(transactional_db, keys, tmp_path):
    job("locked", executor_config=CONFIG)
    out = io.StringIO()

    call_command("export_jobs", "--include-secrets", stdout=out)
    assert SECRET in out.getvalue() and "enc:v1:" not in out.getvalue()
    out = io.StringIO()
    call_command("export_jobs", stdout=out)
    assert SECRET not in out.getvalue() and "enc:v1:" not in out.getvalue()
