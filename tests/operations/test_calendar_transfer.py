"""Calendars travel with the jobs that name them: export_jobs writes their definitions inside
those jobs (a key Dkron ignores), import_jobs and /v1/restore create them before the jobs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient

from jobs.models import Calendar, Job
from jobs.services.calendars import calendar_upsert
from jobs.services.jobs import job_upsert
from jobs.services.transfer import CALENDARS_KEY
from tests.web.api.helpers import job_body
from tests.web.api.roles import member, principal
from web.api.auth import token_create

pytestmark = pytest.mark.django_db

DEFINITIONS = {
    "holidays": {"timezone": "Europe/Berlin", "dates": ["2026-12-25", "2026-12-26"]},
    "nights": {
        "timezone": "America/New_York",
        "description": "No batch at night",
        "windows": [{"days": ["fri", "sat"], "start": "22:00", "end": "06:00"}],
        "ranges": [{"start": "2026-12-31T18:00", "end": "2027-01-01T12:00"}],
    },
}


def make_world() -> None:
    for name, definition in DEFINITIONS.items():
        calendar_upsert(name=name, data=definition)
    job_upsert(
        data=job_body(
            "batch",
            schedule="0 0 * * * *",
            exclude_calendars=["holidays", "nights"],
        )
    )
    job_upsert(data=job_body("daytime", schedule="0 0 * * * *", only_calendars=["nights"]))
    job_upsert(data=job_body("plain", schedule="0 30 * * * *"))  # next_run fixed


def state() -> tuple[dict, dict]:
    calendars = {c.name: c.definition() for c in Calendar.objects.all()}
    jobs = {j.name: (j.exclude_calendars, j.only_calendars, j.next_run) for j in Job.objects.all()}
    return calendars, jobs


def test_export_then_import_into_an_empty_database_gives_the_same_calendars_and_jobs(tmp_path):
    make_world()
    before = state()
    out = tmp_path / "jobs.json"
    call_command("export_jobs", "--output", str(out), stderr=io.StringIO())
    exported = {job["name"]: job for job in json.loads(Path(out).read_text())}
    assert set(exported["batch"][CALENDARS_KEY]) == {"holidays", "nights"}
    assert CALENDARS_KEY not in exported["plain"]
    Job.objects.all().delete()
    Calendar.objects.all().delete()

    call_command("import_jobs", str(out), stdout=io.StringIO())

    assert state() == before


def test_a_restore_through_the_api_creates_the_calendars_before_the_jobs(db):
    make_world()
    _, editor, _ = principal("editor")
    items = [
        {**job_body("batch2", executor="http", executor_config={"method": "GET",
                    "url": "http://example.com/"}, exclude_calendars=["fresh"]),
         CALENDARS_KEY: {"fresh": {"timezone": "UTC", "dates": ["2027-01-01"]}}},
    ]  # fmt: skip
    upload = SimpleUploadedFile("jobs.json", json.dumps(items).encode())

    response = editor.post("/v1/restore", {"file": upload}, format="multipart")

    assert json.loads(response.json()) == ["success create batch2"]
    assert Calendar.objects.get(name="fresh").dates == ["2027-01-01"]
    assert Job.objects.get(name="batch2").exclude_calendars == ["fresh"]


def test_a_restore_by_someone_who_may_not_edit_calendars_leaves_them_out(db):
    editor_without = Group.objects.create(name="jobs-only")
    editor_without.permissions.set(
        Permission.objects.filter(codename__in=["add_job", "change_job", "view_job"])
    )
    user = member("jobs-only-user", "jobs-only")
    _, raw = token_create(user=user, name="t")
    client = APIClient(HTTP_ACCEPT="application/json")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    items = [
        {**job_body("b3", executor="http", executor_config={"method": "GET",
                    "url": "http://example.com/"}, exclude_calendars=["fresh"]),
         CALENDARS_KEY: {"fresh": {"timezone": "UTC"}}},
    ]  # fmt: skip
    upload = SimpleUploadedFile("jobs.json", json.dumps(items).encode())

    response = client.post("/v1/restore", {"file": upload}, format="multipart")

    (line,) = json.loads(response.json())
    assert line.startswith("fail create b3") and "unknown calendar 'fresh'" in line
    assert not Calendar.objects.filter(name="fresh").exists()
