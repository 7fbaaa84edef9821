"""Concurrency keys travel with a job (issue 16): export then import, and POST /v1/restore,
carry `concurrency_key`, `concurrency_limit` and `rate_limit` (and sync the key's row); a
Dkron backup without them restores as before; bad ones are stored as problems by a restore,
as dkronweb's other own findings are."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from jobs.models import ConcurrencyKey, Job
from jobs.services.jobs import job_upsert
from tests.operations.test_restore import restore, restored_lines
from tests.web.api.helpers import job_body

pytestmark = pytest.mark.django_db

KEYED = {
    "concurrency_key": "db:{metadata.db}",
    "concurrency_limit": 2,
    "rate_limit": "10/m",
    "metadata": {"db": "main"},
}


def _fields(job: Job) -> tuple[str, int | None, str]:
    return job.concurrency_key, job.concurrency_limit, job.rate_limit


def test_export_then_import_keeps_the_key_fields(tmp_path: Path):
    job_upsert(data=job_body("etl", **KEYED))
    out = tmp_path / "jobs.json"
    call_command("export_jobs", "--output", str(out), stderr=io.StringIO())
    [exported] = json.loads(out.read_text())
    assert (exported["concurrency_key"], exported["concurrency_limit"]) == ("db:{metadata.db}", 2)
    assert exported["rate_limit"] == "10/m"
    Job.objects.all().delete()
    ConcurrencyKey.objects.all().delete()

    call_command("import_jobs", str(out), stdout=io.StringIO())

    job = Job.objects.get(name="etl")
    assert _fields(job) == ("db:{metadata.db}", 2, "10/m") and job.problems == {}
    row = ConcurrencyKey.objects.get(key="db:main")
    assert (row.limit, row.rate_limit) == (2, "10/m")


def test_restore_carries_the_key_fields_and_a_dkron_backup_without_them_restores(api):
    backup = [job_body("etl", **KEYED), job_body("plain")]

    lines = restored_lines(restore(api, backup))

    assert len(lines) == 2, lines
    assert _fields(Job.objects.get(name="etl")) == ("db:{metadata.db}", 2, "10/m")
    assert _fields(Job.objects.get(name="plain")) == ("", None, "")
    assert ConcurrencyKey.objects.get(key="db:main").limit == 2
    body = api.get("/v1/jobs/etl").json()
    assert (body["concurrency_key"], body["concurrency_limit"], body["rate_limit"]) == (
        "db:{metadata.db}",
        2,
        "10/m",
    )


def test_a_restore_over_existing_jobs_replaces_the_key_fields(api):
    job_upsert(data=job_body("etl", **KEYED))

    restored_lines(restore(api, [job_body("etl")]))  # an older backup, without a key

    assert _fields(Job.objects.get(name="etl")) == ("", None, "")


def test_restore_stores_a_key_without_limits_as_a_problem(api):
    restored_lines(restore(api, [job_body("odd", concurrency_key="db")]))

    job = Job.objects.get(name="odd")
    assert "needs a concurrency_limit or a rate_limit" in job.problems["concurrency_limit"]
