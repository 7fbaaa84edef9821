"""Updating a job is Dkron's upsert: a full replace that keeps the server-maintained fields."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.models import Job
from tests.web.api.helpers import create, job_body, now, parse_time

pytestmark = pytest.mark.django_db


def _give_history(name: str) -> dict:
    last_success = (now() - timedelta(hours=1)).replace(microsecond=0)
    last_error = (now() - timedelta(hours=2)).replace(microsecond=0)
    Job.objects.filter(name=name).update(
        success_count=5,
        error_count=2,
        last_success=last_success,
        last_error=last_error,
        status="partially_failed",
    )
    return {"last_success": last_success, "last_error": last_error}


def test_an_update_answers_201_with_the_updated_job(api):
    create(api, "job1")

    response = api.post("/v1/jobs", job_body("job1", displayname="Renamed"), format="json")

    assert response.status_code == 201
    assert response.json()["displayname"] == "Renamed"
    assert Job.objects.count() == 1


def test_an_update_keeps_counters_last_times_and_status(api):
    create(api, "job1")
    history = _give_history("job1")

    body = api.put("/v1/jobs/job1", job_body("job1", schedule="@every 2m"), format="json").json()

    assert body["success_count"] == 5
    assert body["error_count"] == 2
    assert parse_time(body["last_success"]) == history["last_success"]
    assert parse_time(body["last_error"]) == history["last_error"]
    assert body["status"] == "partially_failed"
    job = Job.objects.get(name="job1")
    assert (job.success_count, job.error_count, job.status) == (5, 2, "partially_failed")


def test_server_fields_sent_by_a_client_are_ignored(api):
    create(api, "job1")
    _give_history("job1")

    body = api.post(
        "/v1/jobs",
        job_body(
            "job1",
            success_count=999,
            error_count=0,
            status="success",
            last_success=None,
            dependent_jobs=["ghost"],
            next="2001-01-01T00:00:00Z",
        ),
        format="json",
    ).json()

    assert body["success_count"] == 5
    assert body["error_count"] == 2
    assert body["status"] == "partially_failed"
    assert body["last_success"] is not None
    assert body["dependent_jobs"] is None
    assert parse_time(body["next"]) > now()


def test_a_get_edit_put_round_trip_changes_only_what_was_edited(api):
    create(api, "job1", displayname="One", tags={"role": "web"}, retries=2)
    _give_history("job1")
    job = api.get("/v1/jobs/job1").json()

    job["displayname"] = "Edited"
    updated = api.put("/v1/jobs/job1", job, format="json").json()

    assert updated == {**job, "displayname": "Edited"}


def test_an_update_keeps_the_dependent_jobs(api):
    create(api, "parent")
    create(api, "child", schedule="", parent_job="parent")

    body = api.post("/v1/jobs", job_body("parent", displayname="P"), format="json").json()

    assert body["dependent_jobs"] == ["child"]


def test_omitted_user_fields_are_reset_to_their_defaults(api):
    create(
        api,
        "job1",
        displayname="Full",
        timezone="Europe/Paris",
        owner="ops",
        owner_email="ops@example.com",
        disabled=True,
        tags={"role": "web"},
        metadata={"team": "a"},
        retries=3,
        concurrency="forbid",
        ephemeral=True,
        starts_at="2030-01-01T00:00:00Z",
        expires_at="2031-01-01T00:00:00Z",
        processors={"log": {}},
    )

    body = api.post("/v1/jobs", job_body("job1"), format="json").json()

    assert body["displayname"] == ""
    assert body["timezone"] == ""
    assert body["owner"] == ""
    assert body["owner_email"] == ""
    assert body["disabled"] is False
    assert body["tags"] is None
    assert body["metadata"] is None
    assert body["retries"] == 0
    assert body["concurrency"] == "allow"
    assert body["ephemeral"] is False
    assert body["starts_at"] is None
    assert body["expires_at"] is None
    assert body["processors"] == {}


def test_an_update_that_leaves_the_timing_alone_keeps_next(api):
    create(api, "job1", schedule="@every 1h")
    pinned = (now() + timedelta(minutes=7)).replace(microsecond=0)
    Job.objects.filter(name="job1").update(next_run=pinned)

    body = api.post("/v1/jobs", job_body("job1", schedule="@every 1h", owner="x"), format="json")

    assert parse_time(body.json()["next"]) == pinned


def test_changing_the_schedule_recomputes_next(api):
    create(api, "job1", schedule="@every 1h")

    body = api.post("/v1/jobs", job_body("job1", schedule="@every 1m"), format="json").json()

    assert parse_time(body["next"]) <= now() + timedelta(minutes=1)


@pytest.mark.parametrize("schedule", ["@every 15ms", "@every 0s", "@every -5s"])
def test_an_every_below_one_second_is_stored_and_runs_every_second_as_in_dkron(api, schedule):
    before = now()
    response = api.post("/v1/jobs", job_body("fast", schedule=schedule), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["schedule"] == schedule
    assert before < parse_time(body["next"]) <= now() + timedelta(seconds=1)
    job = Job.objects.get(name="fast")
    assert job.schedule == schedule and job.next_run == job.anchor + timedelta(seconds=1)


def test_changing_the_timezone_recomputes_next(api):
    create(api, "job1", schedule="0 0 12 * * *", timezone="UTC")

    body = api.post(
        "/v1/jobs",
        job_body("job1", schedule="0 0 12 * * *", timezone="Asia/Tokyo"),
        format="json",
    ).json()

    assert parse_time(body["next"]).hour == 3  # 12:00 in Tokyo (no DST) is 03:00Z


def test_disabling_through_an_update_keeps_the_job_but_marks_it_disabled(api):
    create(api, "job1")

    body = api.post("/v1/jobs", job_body("job1", disabled=True), format="json").json()

    assert body["disabled"] is True
    assert Job.objects.get(name="job1").disabled is True
