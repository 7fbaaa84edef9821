"""A real Dkron backup (GET /v1/jobs of a Dkron cluster) restores whole: every job Dkron would
accept is stored; what only dkronweb's own validation finds wrong is reported per job, kept on
the job, and cleared by an upsert that validates."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from jobs.models import Job
from tests.operations.test_restore import restore, restored_lines, upload

pytestmark = pytest.mark.django_db

BACKUP = Path(__file__).parent / "data" / "dkron-backup.json"
PLACEHOLDER_URLS = {  # http jobs whose url dkronweb's http schema refuses
    "daily-digest",
    "deploy-hook",
    "heartbeat",
    "metrics-push",
    "partner-callback",
    "status-page",
    "uptime-check",
    "webhook-relay",
}


def backup() -> list[dict[str, Any]]:
    return json.loads(BACKUP.read_text())


def test_every_job_of_a_dkron_backup_is_restored_parents_first(api):
    response = api.post("/v1/restore", upload(BACKUP.read_bytes()), format="multipart")

    names = [j["name"] for j in backup()]
    first = ["nightly-report", "archive-report"]  # the child sorts first in Dkron's export
    expected = first + [n for n in names if n not in first]
    assert restored_lines(response) == [f"success create {n}" for n in expected]
    assert Job.objects.count() == len(backup())
    assert Job.objects.get(name="archive-report").parent.name == "nightly-report"


def test_what_dkronweb_finds_wrong_is_stored_on_the_job_and_reported_in_the_headers(api):
    response = restore(api, backup())

    restored_lines(response)
    stored = {j.name: j.problems for j in Job.objects.exclude(problems={})}
    assert set(stored) == PLACEHOLDER_URLS | {"legacy-noop", "db-backup"}
    for name in PLACEHOLDER_URLS:
        assert "url" in stored[name]["executor_config"], name
    assert stored["legacy-noop"] == {"executor": "executor is required"}
    assert any(k.startswith("processors.files") for k in stored["db-backup"])
    assert response["X-Restore-Problems-Count"] == str(len(stored))
    reported = json.loads(response["X-Restore-Problems"])
    assert set(reported) == set(stored)
    assert "{{url}}" in reported["daily-digest"]
    clean = Job.objects.get(name="cache-warmup")  # http://example.com/TODO is a valid url
    assert clean.problems == {} and clean.executor_config["url"] == "http://example.com/TODO"


def test_a_restored_job_keeps_its_dkron_fields(api):
    restored_lines(restore(api, backup()))

    job = Job.objects.get(name="billing-sync")
    assert (job.timezone, job.schedule, job.concurrency, job.retries) == (
        "Europe/Berlin",
        "0 30 6 * * mon-fri",
        "forbid",
        2,
    )
    assert job.tags == {"server": "true:1"} and job.metadata == {"team": "billing", "tier": "1"}
    assert Job.objects.get(name="daily-digest").disabled is True
    assert Job.objects.get(name="legacy-noop").executor == ""


def test_the_problems_header_stays_small_and_counts_what_it_leaves_out(api):
    many = [
        {**backup()[4], "name": f"placeholder-{i:03d}", "id": f"placeholder-{i:03d}"}
        for i in range(60)
    ]

    response = restore(api, many)

    assert len(restored_lines(response)) == 60
    assert response["X-Restore-Problems-Count"] == "60"
    header = response["X-Restore-Problems"]
    assert len(header) <= 2048 and header.isascii()
    shown = json.loads(header)
    assert shown["..."] == f"{60 - (len(shown) - 1)} more"


def test_restore_still_refuses_what_dkron_itself_refuses(api):
    jobs = [
        {
            **backup()[3],
            "name": "bad-timeout",
            "executor_config": {"command": "x", "timeout": "ten"},
        },
        {
            **backup()[3],
            "name": "bad-memory",
            "executor_config": {"command": "x", "mem_limit": "-1"},
        },
        {**backup()[3], "name": "bad-concurrency", "concurrency": "sometimes"},
        {**backup()[3], "name": "self-parent", "schedule": "", "parent_job": "self-parent"},
        {**backup()[3], "name": "fine"},
    ]

    result = restored_lines(restore(api, jobs))

    failures = {line.split(":")[0]: line for line in result if line.startswith("fail")}
    assert set(failures) == {
        "fail create bad-timeout",
        "fail create bad-memory",
        "fail create bad-concurrency",
        "fail create self-parent",
    }
    assert "timeout" in failures["fail create bad-timeout"]
    assert "mem_limit" in failures["fail create bad-memory"]
    assert "invalid concurrency policy" in failures["fail create bad-concurrency"]
    assert "itself as parent" in failures["fail create self-parent"]
    assert "success create fine" in result
    assert list(Job.objects.values_list("name", flat=True)) == ["fine"]


def test_an_upsert_through_the_api_still_refuses_what_restore_stores_naming_the_key(api):
    body = {**backup()[4], "name": "daily-digest"}

    response = api.post("/v1/jobs", body, format="json")

    assert response.status_code == 400
    assert "url" in json.dumps(response.json())
    assert not Job.objects.exists()


def test_an_upsert_that_validates_clears_the_problems(api):
    restored_lines(restore(api, backup()))
    fixed = {**backup()[4], "executor_config": {"method": "POST", "url": "https://x.example"}}

    response = api.put("/v1/jobs/daily-digest", fixed, format="json")

    assert response.status_code == 201, response.content
    assert Job.objects.get(name="daily-digest").problems == {}


def test_import_jobs_stores_the_backup_whole_and_prints_the_problems(tmp_path):
    out = io.StringIO()

    call_command("import_jobs", str(BACKUP), stdout=out)

    text = out.getvalue()
    assert Job.objects.count() == len(backup())
    assert "created  daily-digest  (stored with problems: executor_config: url:" in text
    assert f"{len(backup())} ok, 0 failed, {len(PLACEHOLDER_URLS) + 2} with problems" in text


def test_the_api_shows_a_restored_jobs_problems_beside_dkrons_fields(api):
    restored_lines(restore(api, backup()))

    shown = api.get("/v1/jobs/daily-digest").json()

    assert "url" in shown["problems"]["executor_config"]
    assert api.get("/v1/jobs/cache-warmup").json()["problems"] == {}


def test_an_upsert_reports_dkrons_own_finding_first_and_every_finding_in_the_details(api):
    body = {**backup()[4], "name": "two-faults", "schedule": "every day", "disabled": False}

    response = api.post("/v1/jobs", body, format="json")

    assert response.status_code == 400
    error = response.json()
    assert "can't parse job schedule" in error["error"]
    assert {"schedule", "executor_config"} <= set(error["details"])
