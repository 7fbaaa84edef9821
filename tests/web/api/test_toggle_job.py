"""POST /v1/jobs/{name}/toggle flips `disabled`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.models import Job
from tests.web.api.helpers import assert_error, create, job_body, now, parse_time

pytestmark = pytest.mark.django_db


def test_toggle_disables_an_enabled_job_and_returns_it(api):
    create(api, "job1")

    response = api.post("/v1/jobs/job1/toggle")

    assert response.status_code == 200
    assert response.json()["disabled"] is True
    assert Job.objects.get(name="job1").disabled is True


def test_toggling_twice_enables_the_job_again(api):
    create(api, "job1")

    api.post("/v1/jobs/job1/toggle")
    response = api.post("/v1/jobs/job1/toggle/")

    assert response.json()["disabled"] is False


def test_toggle_keeps_everything_else(api):
    before = create(api, "job1", displayname="One", tags={"role": "web"})

    after = api.post("/v1/jobs/job1/toggle").json()

    assert after == {**before, "disabled": True}


def test_toggling_an_unknown_job_is_a_404(api):
    assert_error(api.post("/v1/jobs/ghost/toggle"), 404)


def test_enabling_a_job_schedules_it_from_now_so_the_disabled_time_is_not_caught_up(api):
    # SPEC 3: time spent disabled is not missed time (Dkron re-adds the job to cron from now).
    create(api, "job1", schedule="@every 1m", misfire_policy="run_once", disabled=True)
    due = now() - timedelta(minutes=30)
    Job.objects.filter(name="job1").update(next_run=due)

    body = api.post("/v1/jobs/job1/toggle").json()

    assert body["disabled"] is False
    assert now() < parse_time(body["next"]) <= now() + timedelta(minutes=1)
    assert Job.objects.get(name="job1").next_run == parse_time(body["next"])


def test_enabling_a_job_through_an_update_also_schedules_it_from_now(api):
    create(api, "job1", schedule="@every 1m", disabled=True)
    due = now() - timedelta(minutes=30)
    Job.objects.filter(name="job1").update(next_run=due)

    body = api.post("/v1/jobs", job_body("job1", schedule="@every 1m"), format="json").json()

    assert now() < parse_time(body["next"]) <= now() + timedelta(minutes=1)


def test_a_disabled_job_shows_its_next_fire_after_now(api):
    create(api, "job1", schedule="@every 1m", disabled=True)
    Job.objects.filter(name="job1").update(next_run=now() - timedelta(minutes=30))

    body = api.get("/v1/jobs/job1").json()

    assert body["disabled"] is True
    assert now() < parse_time(body["next"]) <= now() + timedelta(minutes=1)
