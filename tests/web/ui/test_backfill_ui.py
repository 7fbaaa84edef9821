"""Backfills and the schedule preview in the UI: the job form's live preview (the session and
its CSRF token reach /v1/schedule/preview), the backfill form's dry run and start, the
progress page and its cancel, and who may."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client

from jobs.models import Backfill, BackfillItem
from jobs.services.backfill import backfills_tick
from tests.factories import agent as make_agent
from tests.web.api.roles import member
from tests.web.ui.test_job_form import make_job

NOW = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
FORM = {"from": "2026-03-27T00:00", "to": "2026-03-31T23:59", "reprocess": "missing"}


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def nightly(db):
    make_agent("node-1")
    return make_job("nightly", schedule="0 30 2 * * *", timezone="Europe/Berlin")


def test_the_job_form_carries_the_live_preview_and_the_session_may_ask_it(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    page = client.get("/ui/jobs/new/")
    assert 'id="schedule-preview" data-preview-url="/v1/schedule/preview"' in page.content.decode()
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/v1/schedule/preview",
        {"schedule": "0 30 2 * * *", "timezone": "Europe/Berlin", "count": 3},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200, response.content
    assert response.json()["fires"][0]["local"] == "2026-04-03T02:30:00+02:00"
    refused = client.post(
        "/v1/schedule/preview", {"schedule": "@daily"}, content_type="application/json"
    )
    assert refused.status_code == 403  # no CSRF token: a session alone may not post


def test_a_dry_run_lists_the_times_and_start_creates_the_backfill(client, admin_user, nightly):
    client.force_login(admin_user)
    assert "Backfill" in client.get("/ui/jobs/nightly/").content.decode()
    page = client.post("/ui/jobs/nightly/backfill/", {**FORM, "dry_run": "1"}).content.decode()
    assert "Dry run: 4 of 4 fire times would run" in page
    assert "2026-03-30T02:30:00+02:00" in page and "missing: never ran" in page
    assert not Backfill.objects.exists()

    response = client.post("/ui/jobs/nightly/backfill/", {**FORM, "start": "1"})
    backfill = Backfill.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/ui/jobs/nightly/backfills/{backfill.pk}/"
    backfills_tick()
    progress = client.get(f"/ui/jobs/nightly/backfills/{backfill.pk}/").content.decode()
    assert "1 started, 0 finished, 3 pending" in progress
    assert "Cancel" in progress

    client.post(f"/ui/jobs/nightly/backfills/{backfill.pk}/cancel/")
    backfill.refresh_from_db()
    assert backfill.state == "cancelled"
    assert BackfillItem.objects.filter(backfill=backfill, state="cancelled").count() == 3


def test_bad_input_is_shown_and_creates_nothing(client, admin_user, nightly):
    client.force_login(admin_user)
    response = client.post("/ui/jobs/nightly/backfill/", {**FORM, "reprocess": "x", "start": "1"})
    assert response.status_code == 400
    assert "reprocess" in response.content.decode()
    assert not Backfill.objects.exists()


def test_a_reader_sees_backfills_but_may_not_start_or_cancel(client, nightly):
    reader = member("reader", "read-only")
    client.force_login(reader)
    assert client.get("/ui/jobs/nightly/backfill/").status_code == 200
    assert client.post("/ui/jobs/nightly/backfill/", {**FORM, "start": "1"}).status_code == 403
    assert not Backfill.objects.exists()
