"""POST /v1/jobs/{name}/toggle flips `disabled`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.models import Job
from tests.api.helpers import assert_error, create, job_body, now, parse_time

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


def test_enabling_a_job_keeps_its_due_time_so_missed_fires_follow_the_misfire_policy(api):
    # SPEC 10: maintenance disables jobs; fires missed meanwhile follow the misfire rules.
    create(api, "job1", schedule="@every 1m", misfire_policy="run_once", disabled=True)
    due = now() - timedelta(minutes=30)
    Job.objects.filter(name="job1").update(next_run=due)

    body = api.post("/v1/jobs/job1/toggle").json()

    assert body["disabled"] is False
    assert parse_time(body["next"]) == due


def test_enabling_a_job_through_an_update_also_keeps_its_due_time(api):
    create(api, "job1", schedule="@every 1m", disabled=True)
    due = now() - timedelta(minutes=30)
    Job.objects.filter(name="job1").update(next_run=due)

    body = api.post("/v1/jobs", job_body("job1", schedule="@every 1m"), format="json").json()

    assert parse_time(body["next"]) == due
