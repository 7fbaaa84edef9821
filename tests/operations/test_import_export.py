"""`manage.py export_jobs` and `import_jobs`: Dkron JSON (secrets masked unless
--include-secrets), a round trip to the same jobs, a per-job report and a non-zero exit when a
job fails."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job
from jobs.services import cluster
from jobs.services.jobs import job_upsert
from tests.web.api.helpers import job_body, make_user

pytestmark = pytest.mark.django_db

NATS = {
    "url": "nats://127.0.0.1:4222",
    "subject": "reports.done",
    "userName": "reporter",
    "password": "nats-secret",
}
NOTIFY = {
    "on": "on_failure",
    "email": ["ops@example.com"],
    "webhooks": [
        {"url": "https://hooks.example.com/x", "headers": {"Authorization": "Bearer hook-secret"}}
    ],
}
USER_FIELDS = (
    "displayname", "schedule", "timezone", "owner", "owner_email", "disabled", "tags",
    "metadata", "retries", "retry_backoff", "concurrency", "executor", "executor_config",
    "processors", "ephemeral", "starts_at", "expires_at", "misfire_policy", "catchup_window",
    "history_limit", "notify", "jitter",
)  # fmt: skip


def make_jobs() -> None:
    job_upsert(
        data=job_body(
            "nightly",
            schedule="0 0 3 * * *",
            timezone="Europe/Paris",
            displayname="Nightly",
            tags={"role": "web:1"},
            metadata={"team": "data"},
            retries=2,
            concurrency="forbid",
            processors={"log": {"forward": "true"}},
            notify=NOTIFY,
            jitter=90,
        )
    )
    job_upsert(
        data=job_body("publish", schedule="", parent_job="nightly", executor="nats",
                      executor_config=NATS)
    )  # fmt: skip
    job_upsert(data=job_body("after-publish", schedule="", parent_job="publish", disabled=True))


def snapshot() -> dict[str, dict]:
    return {
        job.name: {
            **{f: getattr(job, f) for f in USER_FIELDS},
            "parent": job.parent.name if job.parent else "",
        }
        for job in Job.objects.select_related("parent")
    }


def export(tmp_path: Path, *flags: str) -> Path:
    out = tmp_path / "jobs.json"
    call_command("export_jobs", "--output", str(out), *flags, stderr=io.StringIO())
    return out


def test_export_then_import_into_an_empty_database_gives_the_same_jobs(tmp_path):
    make_jobs()
    before = snapshot()
    out = export(tmp_path, "--include-secrets")
    for name in ("after-publish", "publish", "nightly"):
        Job.objects.get(name=name).delete()

    stdout = io.StringIO()
    call_command("import_jobs", str(out), stdout=stdout)

    assert snapshot() == before
    assert Job.objects.get(name="publish").executor_config["password"] == "nats-secret"
    headers = Job.objects.get(name="nightly").notify["webhooks"][0]["headers"]
    assert headers == {"Authorization": "Bearer hook-secret"}
    report = stdout.getvalue()
    assert "created  nightly" in report and "created  after-publish" in report
    assert "3 ok, 0 failed" in report


def test_the_export_is_dkron_json_with_real_secrets_in_a_file_only_its_owner_reads(tmp_path):
    make_jobs()

    out = export(tmp_path, "--include-secrets")

    jobs = {j["name"]: j for j in json.loads(out.read_text())}
    assert set(jobs) == {"nightly", "publish", "after-publish"}
    assert jobs["publish"]["executor_config"] == NATS
    assert jobs["publish"]["parent_job"] == "nightly"
    assert jobs["nightly"]["dependent_jobs"] == ["publish"]
    assert jobs["nightly"]["notify"] == NOTIFY
    assert jobs["nightly"]["processors"] == {"log": {"forward": "true"}}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_export_without_output_writes_the_json_to_stdout(db):
    job_upsert(data=job_body("only"))
    stdout = io.StringIO()

    call_command("export_jobs", stdout=stdout)

    assert [j["name"] for j in json.loads(stdout.getvalue())] == ["only"]


def test_the_export_help_warns_that_the_file_holds_secrets(capsys):
    with pytest.raises(SystemExit):
        call_command("export_jobs", "--help")

    assert "secrets" in capsys.readouterr().out


def test_importing_over_existing_jobs_updates_them(tmp_path):
    make_jobs()
    out = export(tmp_path)
    Job.objects.filter(name="nightly").update(owner="changed-meanwhile")
    stdout = io.StringIO()

    call_command("import_jobs", str(out), stdout=stdout)

    assert Job.objects.get(name="nightly").owner == ""
    assert "updated  nightly" in stdout.getvalue()


def test_a_dry_run_reports_and_stores_nothing(tmp_path):
    out = tmp_path / "jobs.json"
    out.write_text(json.dumps([job_body("one"), job_body("two", schedule="", parent_job="one")]))
    stdout = io.StringIO()

    call_command("import_jobs", str(out), "--dry-run", stdout=stdout)

    assert "would be created  one" in stdout.getvalue()
    assert "would be created  two" in stdout.getvalue()
    assert "dry run" in stdout.getvalue()
    assert not Job.objects.exists()


def test_a_failing_job_is_reported_and_the_command_exits_non_zero(tmp_path):
    out = tmp_path / "jobs.json"
    out.write_text(json.dumps([job_body("good"), job_body("bad", schedule="every tuesday")]))
    stdout = io.StringIO()

    with pytest.raises(CommandError, match="1 ok, 1 failed"):
        call_command("import_jobs", str(out), stdout=stdout)

    assert "FAILED   bad: Job validation failed" in stdout.getvalue()
    assert list(Job.objects.values_list("name", flat=True)) == ["good"]


def test_a_file_that_is_not_json_is_an_error_and_stores_nothing(tmp_path):
    out = tmp_path / "jobs.json"
    out.write_text("{not json")

    with pytest.raises(CommandError, match="Unable to parse payload"):
        call_command("import_jobs", str(out))
    assert not Job.objects.exists()


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_jobs", str(tmp_path / "nope.json"))


def test_import_is_refused_while_paused(tmp_path):
    cluster.cluster_set_paused(paused=True, actor="ops")
    out = tmp_path / "jobs.json"
    out.write_text(json.dumps([job_body("one")]))

    with pytest.raises(CommandError, match="paused"):
        call_command("import_jobs", str(out))
    assert not Job.objects.exists()


def test_import_as_a_user_applies_the_run_code_permission(tmp_path):
    make_user("editor", "add_job", "change_job")
    out = tmp_path / "jobs.json"
    out.write_text(json.dumps([job_body("shell-job")]))
    stdout = io.StringIO()

    with pytest.raises(CommandError):
        call_command("import_jobs", str(out), "--user", "editor", stdout=stdout)

    assert "FAILED   shell-job: you may not create or change 'shell' jobs" in stdout.getvalue()


def test_the_export_masks_secrets_unless_asked_and_restores_them_over_the_same_jobs(tmp_path):
    make_jobs()
    job_upsert(
        data=job_body("envy", executor_config={"command": "env", "env": "DB_PASSWORD=hunter2"})
    )
    before = snapshot()

    out = export(tmp_path)

    text = out.read_text()
    for secret in ("nats-secret", "hook-secret", "hunter2"):
        assert secret not in text
    jobs = {j["name"]: j for j in json.loads(text)}
    assert jobs["envy"]["executor_config"]["env"] == "DB_PASSWORD=********"
    call_command("import_jobs", str(out), stdout=io.StringIO())
    assert snapshot() == before
