"""`/v1/jobs/{name}/backfill`, `/backfills`, `/next` and `/v1/schedule/preview` over HTTP:
the dry run's answer, 400s that name the field and create nothing, who may, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from jobs.models import AuditEntry, Backfill, Job, Run
from jobs.services.backfill import backfills_tick
from jobs.services.calendars import calendar_upsert
from tests.factories import agent as make_agent
from tests.web.api.helpers import assert_error, create
from tests.web.api.roles import principal

NOW = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
RANGE = {"from": "2026-03-27T00:00:00+01:00", "to": "2026-03-31T23:59:59+02:00"}


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def job(api):
    make_agent("node-1")
    return create(api, "nightly", schedule="0 30 2 * * *", timezone="Europe/Berlin")


def backfill(api, **body):
    return api.post("/v1/jobs/nightly/backfill", {**RANGE, **body}, format="json")


def test_a_dry_run_lists_each_time_with_why_and_starts_nothing(api, job):
    Run.objects.create(
        job=Job.objects.get(name="nightly"),
        scheduled_at=datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        finished=True,
        status="success",
    )
    response = backfill(api, dry_run=True)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["fire_times"], body["included"], body["timezone"]) == (4, 3, "Europe/Berlin")
    assert [t["scheduled_at"] for t in body["times"]] == [
        "2026-03-27T01:30:00Z",
        "2026-03-28T01:30:00Z",
        "2026-03-30T00:30:00Z",
        "2026-03-31T00:30:00Z",
    ]
    assert body["times"][1]["included"] is False
    assert body["times"][1]["reason"].startswith("already ran: run")
    assert body["times"][2]["local"] == "2026-03-30T02:30:00+02:00"
    assert not Backfill.objects.exists()


def test_a_backfill_answers_201_with_its_progress_and_a_location(api, job):
    response = backfill(api, max_concurrency=2)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["state"], body["total"], body["pending"], body["max_concurrency"]) == (
        "pending",
        4,
        4,
        2,
    )
    assert response["Location"] == f"/v1/jobs/nightly/backfills/{body['id']}"
    backfills_tick()
    detail = api.get(response["Location"]).json()
    assert (detail["state"], detail["created"]) == ("running", 2)
    assert [i["state"] for i in detail["items"]] == ["started", "started", "pending", "pending"]
    listed = api.get("/v1/jobs/nightly/backfills").json()
    assert [b["id"] for b in listed] == [body["id"]]
    assert AuditEntry.objects.filter(action="backfill", target="nightly").count() == 1


def test_two_identical_backfills_create_the_runs_once(api, job):
    assert backfill(api, max_concurrency=10).status_code == 201
    backfills_tick()
    again = backfill(api, max_concurrency=10).json()
    assert (again["state"], again["total"]) == ("done", 0)
    backfills_tick()
    assert Run.objects.filter(job__name="nightly").count() == 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": "2026-03-31T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "from"),
        ({"from": "not a time"}, "from"),
        ({"from": None}, "from"),
        ({"to": "nope"}, "to"),
        ({"from": "0001-01-01T00:00:00Z"}, "from"),  # was a 500 (an overflow converting it)
        ({"from": "0001-01-01", "dry_run": True}, "from"),
        ({"from": "1969-12-31T23:59:59Z", "dry_run": True}, "from"),
        ({"reprocess": "everything"}, "reprocess"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"dry_run": "maybe"}, "dry_run"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_creates_nothing(api, job, body, field):
    error = assert_error(backfill(api, **body), 400)
    assert field in error["details"], error
    assert not Backfill.objects.exists()
    assert not AuditEntry.objects.filter(action="backfill").exists()


def test_a_manual_job_has_nothing_to_backfill(api, job):
    create(api, "by-hand", schedule="@manually")
    response = api.post("/v1/jobs/by-hand/backfill", RANGE, format="json")
    assert "job" in assert_error(response, 400)["details"]


def test_an_unknown_job_or_backfill_is_a_404(api, job):
    assert_error(api.post("/v1/jobs/nope/backfill", RANGE, format="json"), 404)
    assert_error(api.get("/v1/jobs/nightly/backfills/999"), 404)
    assert_error(api.get("/v1/jobs/nightly/backfills/abc"), 404)


def test_a_read_only_user_sees_backfills_but_may_not_start_or_cancel_one(api, job):
    started = backfill(api).json()
    _, reader, _ = principal("read-only")
    assert reader.get("/v1/jobs/nightly/backfills").status_code == 200
    assert_error(reader.post("/v1/jobs/nightly/backfill", RANGE, format="json"), 403)
    assert_error(reader.post(f"/v1/jobs/nightly/backfills/{started['id']}/cancel"), 403)
    _, operator, _ = principal("operator")
    response = operator.post(f"/v1/jobs/nightly/backfills/{started['id']}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert_error(operator.delete(f"/v1/jobs/nightly/backfills/{started['id']}"), 409)


def test_next_answers_the_next_fires_in_the_zone_and_in_utc(api, job):
    body = api.get("/v1/jobs/nightly/next?count=3").json()
    assert body["timezone"] == "Europe/Berlin"
    assert [f["utc"] for f in body["fires"]] == [
        "2026-04-03T00:30:00Z",
        "2026-04-04T00:30:00Z",
        "2026-04-05T00:30:00Z",
    ]
    assert len(api.get("/v1/jobs/nightly/next").json()["fires"]) == 10
    for bad in ("0", "101", "x"):
        assert (
            "count" in assert_error(api.get(f"/v1/jobs/nightly/next?count={bad}"), 400)["details"]
        )


def test_a_preview_across_a_dst_change_and_a_holiday(api, job):
    calendar_upsert(name="holidays", data={"timezone": "Europe/Berlin", "dates": ["2026-10-26"]})
    with time_machine.travel(datetime(2026, 10, 23, 12, 0, tzinfo=UTC), tick=False):
        response = api.post(
            "/v1/schedule/preview",
            {
                "schedule": "0 30 2 * * *",
                "timezone": "Europe/Berlin",
                "exclude_calendars": ["holidays"],
                "jitter": "30s",
                "count": 4,
            },
            format="json",
        )
    assert response.status_code == 200, response.content
    fires = response.json()["fires"]
    assert [f["local"] for f in fires] == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",  # the first of the day's two 02:30s
        "2026-10-27T02:30:00+01:00",
        "2026-10-28T02:30:00+01:00",
    ]
    assert fires[2]["dst"] == "ends"
    assert fires[2]["skipped"][0]["reason"] == "missed: excluded by calendar 'holidays'"
    assert fires[2]["skipped"][0]["local"] == "2026-10-26T02:30:00+01:00"
    assert all(0 <= f["jitter"] < 30 for f in fires)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"schedule": "0 30 2 * *"}, "schedule"),
        ({}, "schedule"),
        ({"schedule": "@daily", "timezone": "Mars/Olympus"}, "timezone"),
        ({"schedule": "@daily", "exclude_calendars": ["nope"]}, "exclude_calendars"),
        ({"schedule": "@daily", "count": 0}, "count"),
        ({"schedule": "@daily", "count": 500}, "count"),
        ({"schedule": "@daily", "jitter": "soon"}, "jitter"),
    ],
)
def test_a_bad_preview_is_a_400_naming_the_field(api, body, field):
    response = api.post("/v1/schedule/preview", body, format="json")
    assert field in assert_error(response, 400)["details"]


def test_dkron_clients_still_get_the_job_as_before(api, dkron, job):
    # A backfill changes nothing in the job's wire shape; a Dkron client round-trips it.
    backfill(api)
    got = dkron.get("/v1/jobs/nightly").json()
    assert "backfills" not in got
    assert dkron.post("/v1/jobs", got, format="json").status_code == 201


def test_the_openapi_document_describes_the_new_endpoints(api):
    doc = api.get("/v1/openapi.json").json()
    for path in (
        "/v1/jobs/{name}/backfill",
        "/v1/jobs/{name}/backfills/{backfill_id}/cancel",
        "/v1/jobs/{name}/next",
        "/v1/schedule/preview",
    ):
        assert any(p.rstrip("/") == path for p in doc["paths"]), (path, sorted(doc["paths"]))
    assert "from" in doc["components"]["schemas"]["BackfillInput"]["properties"]
