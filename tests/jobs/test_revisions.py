"""Job history (jobs.services.revisions): every change of a job records one revision, through
every door; an upsert that changes nothing records none; secrets never reach a revision or a
diff; a rollback is a new revision equal to the one it restores; runs record their revision."""

from __future__ import annotations

import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from jobs.errors import DomainError, NotFound
from jobs.models import Job, JobRevision
from jobs.services import revisions, runs
from jobs.services.audit import Actor
from jobs.services.jobs import job_delete, job_rollback, job_toggle, job_upsert
from jobs.services.transfer import jobs_restore

pytestmark = pytest.mark.django_db

SECRET = "hunter2-db"
CONFIG = {"command": "env", "env": f"DB_PASSWORD={SECRET},LOG_LEVEL=debug"}
NOTIFY = {"webhooks": [{"url": "https://hooks.example.com/x", "headers": {"X-Key": "hook-key"}}]}
ALICE = Actor(name="alice", via="api")


def body(name: str = "job1", **fields):
    return {
        "name": name,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": "true"},
        **fields,
    }


def history(name: str = "job1") -> list[tuple[int, str, str]]:
    return [
        (r.number, r.change, r.source)
        for r in JobRevision.objects.filter(job_name=name).order_by("number")
    ]


def test_creating_a_job_records_revision_1_with_who_and_through_what():
    job, _ = job_upsert(data=body(displayname="One"), actor=ALICE)

    revision = JobRevision.objects.get(job_name="job1")
    assert (revision.number, revision.change, revision.actor, revision.source) == (
        1,
        "create",
        "alice",
        "api",
    )
    assert revision.data["displayname"] == "One"
    assert "success_count" not in revision.data and "next" not in revision.data
    assert job.revision == 1 and Job.objects.get(name="job1").revision == 1


def test_each_update_records_the_next_revision_and_an_unchanged_upsert_none():
    job_upsert(data=body(), actor=ALICE)
    job_upsert(data=body(displayname="Two"), actor=Actor(name="bob", via="ui"))
    job_upsert(data=body(displayname="Two"), actor=ALICE)  # the same body again

    assert history() == [(1, "create", "api"), (2, "update", "ui")]
    assert Job.objects.get(name="job1").revision == 2


def test_toggling_records_a_revision_each_way():
    job, _ = job_upsert(data=body())
    job_toggle(job=job, actor=Actor(name="ops", via="admin"))
    job_toggle(job=job, actor=ALICE)

    assert history() == [(1, "create", "system"), (2, "toggle", "admin"), (3, "toggle", "api")]
    assert JobRevision.objects.get(job_name="job1", number=2).data["disabled"] is True


def test_deleting_keeps_the_history_and_a_new_job_of_that_name_continues_it():
    job, _ = job_upsert(data=body(displayname="Old"))
    job_delete(job=job, actor=ALICE)

    assert history() == [(1, "create", "system"), (2, "delete", "api")]
    assert JobRevision.objects.get(number=2).data["displayname"] == "Old"

    job_upsert(data=body(displayname="New"))
    assert history()[-1] == (3, "create", "system")


def test_a_restore_and_an_import_record_their_source(tmp_path):
    jobs_restore(items=[body("restored")], actor=Actor(name="ops", via="api"))
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([body("imported")]))
    call_command("import_jobs", str(path), stdout=io.StringIO())

    assert history("restored") == [(1, "create", "restore")]
    assert history("imported") == [(1, "create", "import")]


def test_secrets_are_never_in_a_revision_but_a_changed_one_is_named():
    job_upsert(data=body(executor_config=CONFIG, notify=NOTIFY))
    job_upsert(
        data=body(
            executor_config={**CONFIG, "env": "DB_PASSWORD=new-pass,LOG_LEVEL=debug"}, notify=NOTIFY
        )
    )

    stored = json.dumps(list(JobRevision.objects.values("data", "secrets_changed")))
    for secret in (SECRET, "new-pass", "hook-key", "debug"):
        assert secret not in stored
    second = JobRevision.objects.get(job_name="job1", number=2)
    assert second.data["executor_config"]["env"] == "DB_PASSWORD=********,LOG_LEVEL=********"
    assert second.secrets_changed == ["executor_config.env.DB_PASSWORD"]

    diff = revisions.revision_diff("job1", 2)
    assert diff["against"] == 1
    assert diff["changes"] == [
        {
            "path": "executor_config.env.DB_PASSWORD",
            "before": "********",
            "after": "********",
            "secret": "changed",
        }
    ]
    assert SECRET not in json.dumps(diff) and "new-pass" not in json.dumps(diff)


def test_a_job_resent_with_its_masks_records_nothing():
    job_upsert(data=body(executor_config=CONFIG, notify=NOTIFY))
    shown = revisions.definition(Job.objects.get(name="job1"))
    job_upsert(data={**body(), **{k: shown[k] for k in ("executor_config", "notify")}})

    assert history() == [(1, "create", "system")]


def test_a_diff_lists_each_changed_field_by_path():
    job_upsert(data=body(tags={"role": "web"}, retries=1))
    job_upsert(data=body(tags={"role": "db"}, retries=1, displayname="D"))

    changes = revisions.revision_diff("job1", 2)["changes"]

    assert changes == [
        {"path": "displayname", "before": "", "after": "D"},
        {"path": "tags.role", "before": "web", "after": "db"},
    ]
    assert revisions.revision_diff("job1", 1)["against"] is None
    assert revisions.revision_diff("job1", 1, 2)["changes"][0]["before"] == "D"


def test_a_rollback_is_a_new_revision_equal_to_the_one_it_restores_and_keeps_the_secrets():
    job_upsert(data=body(executor_config=CONFIG, displayname="First"))
    job_upsert(data=body(executor_config=CONFIG, displayname="Second", retries=2))

    job, revision = job_rollback(name="job1", number=1, actor=ALICE)

    assert (revision.number, revision.change, revision.restored_from) == (3, "restore", 1)
    assert revision.data == JobRevision.objects.get(job_name="job1", number=1).data
    assert job.revision == 3 and job.displayname == "First" and job.retries == 0
    assert Job.objects.get(name="job1").executor_config == CONFIG  # the stored secret kept


def test_a_rollback_that_would_send_a_secret_elsewhere_is_refused_and_changes_nothing():
    # The env goes to the command: revision 1's command with today's password would send it
    # to a command its owner never gave it to (confidential.merge), so the client resends it.
    job_upsert(data=body(executor_config=CONFIG))
    job_upsert(data=body(executor_config={**CONFIG, "command": "env | sort"}))

    with pytest.raises(DomainError, match="resend env DB_PASSWORD: command changed"):
        job_rollback(name="job1", number=1, actor=ALICE)

    assert Job.objects.get(name="job1").revision == 2 and len(history()) == 2


def test_rolling_back_to_what_the_job_is_records_nothing():
    job_upsert(data=body())

    job, revision = job_rollback(name="job1", number=1, actor=ALICE)

    assert revision.number == 1 and history() == [(1, "create", "system")]


def test_a_rollback_brings_a_deleted_job_back():
    job, _ = job_upsert(data=body(displayname="Gone"))
    job_delete(job=job)

    job, revision = job_rollback(name="job1", number=1, actor=ALICE)

    assert job.displayname == "Gone" and revision.number == 3 and revision.change == "restore"


def test_unknown_revisions_and_bad_numbers_are_refused_by_name():
    job_upsert(data=body())
    with pytest.raises(NotFound, match="revision 9 of job 'job1' not found"):
        revisions.revision_get("job1", 9)
    with pytest.raises(NotFound, match="job 'ghost' not found"):
        revisions.revision_get("ghost", 1)
    with pytest.raises(DomainError, match="revision must be a revision number"):
        revisions.revision_get("job1", "x")
    with pytest.raises(DomainError, match="against must be a revision number"):
        revisions.revision_diff("job1", 1, "0")


def test_a_job_from_before_revisions_gets_a_baseline_at_its_first_change():
    job_upsert(data=body(displayname="Before"))
    JobRevision.objects.all().delete()
    Job.objects.filter(name="job1").update(revision=0)  # as the upgrade leaves old jobs

    job_upsert(data=body(displayname="After"))

    assert [(n, c) for n, c, _ in history()] == [(1, "baseline"), (2, "update")]
    assert JobRevision.objects.get(number=1).data["displayname"] == "Before"


def test_a_run_records_the_revision_it_fires_with():
    job, _ = job_upsert(data=body())
    job_upsert(data=body(displayname="Two"))

    run = runs.run_now(job=Job.objects.get(name="job1"), force=True)

    assert run.revision == 2


def test_with_encryption_at_rest_an_unchanged_upsert_records_nothing_and_no_secret_leaks(
    monkeypatch,
):
    # Sealing is randomised (Fernet): the stored ciphertext differs after every upsert, the
    # job does not. Times given with an offset and Dkron's string values compare as stored.
    from django.conf import settings

    from tests.jobs.test_secrets_at_rest import KEY

    monkeypatch.setitem(settings.DKRON, "ENCRYPTION_KEYS", [KEY])
    full = body(
        executor_config={**CONFIG, "shell": "true"},
        notify=NOTIFY,
        tags={"role": "web:2"},
        starts_at=datetime(2030, 1, 1, 2, tzinfo=ZoneInfo("Europe/Berlin")),
        jitter=5,
        retry_backoff=2,
    )
    job_upsert(data=full)
    job_upsert(data=full)

    assert history() == [(1, "create", "system")]
    stored = json.dumps(list(JobRevision.objects.values("data")))
    assert SECRET not in stored and "hook-key" not in stored and "gAAAA" not in stored
