"""Job chaining: `parent_job` must exist and never form a cycle; `dependent_jobs` is kept."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.web.api.helpers import assert_error, create, job_body

pytestmark = pytest.mark.django_db


def child(api, name: str, parent: str, **fields):
    return create(api, name, schedule="", parent_job=parent, **fields)


def test_a_child_names_its_parent_and_the_parent_lists_the_child(api):
    create(api, "parent")

    body = child(api, "child", "parent")

    assert body["parent_job"] == "parent"
    assert api.get("/v1/jobs/parent").json()["dependent_jobs"] == ["child"]


def test_a_parent_lists_all_its_children_by_name(api):
    create(api, "parent")
    child(api, "b-child", "parent")
    child(api, "a-child", "parent")

    assert sorted(api.get("/v1/jobs/parent").json()["dependent_jobs"]) == ["a-child", "b-child"]


def test_moving_a_child_to_another_parent_updates_both_parents(api):
    create(api, "first")
    create(api, "second")
    child(api, "child", "first")

    child(api, "child", "second")

    assert api.get("/v1/jobs/first").json()["dependent_jobs"] is None
    assert api.get("/v1/jobs/second").json()["dependent_jobs"] == ["child"]


def test_dropping_the_parent_turns_a_child_into_a_scheduled_job(api):
    create(api, "parent")
    child(api, "child", "parent")

    body = create(api, "child", schedule="@every 5m")

    assert body["parent_job"] == ""
    assert api.get("/v1/jobs/parent").json()["dependent_jobs"] is None


def test_a_child_may_omit_the_schedule_but_a_top_level_job_may_not(api):
    create(api, "parent")
    child(api, "child", "parent")

    body = assert_error(api.post("/v1/jobs", job_body("orphan", schedule=""), format="json"), 400)

    assert "schedule" in body["details"]


def test_an_unknown_parent_is_a_404_and_nothing_is_stored(api):
    response = api.post("/v1/jobs", job_body("child", parent_job="ghost"), format="json")

    body = assert_error(response, 404)
    assert "parent" in body["error"]
    assert "parent_job" in body["details"]
    assert not Job.objects.filter(name="child").exists()


def test_a_job_cannot_be_its_own_parent(api):
    response = api.post("/v1/jobs", job_body("narcissus", parent_job="narcissus"), format="json")

    body = assert_error(response, 400)
    assert "itself as parent" in body["error"]
    assert Job.objects.count() == 0


def test_an_existing_job_cannot_be_made_its_own_parent(api):
    create(api, "job1")

    assert_error(api.post("/v1/jobs", job_body("job1", parent_job="job1"), format="json"), 400)
    assert Job.objects.get(name="job1").parent_id is None


def test_a_two_job_cycle_is_refused(api):
    create(api, "a")
    child(api, "b", "a")

    response = api.post("/v1/jobs", job_body("a", schedule="", parent_job="b"), format="json")

    body = assert_error(response, 400)
    assert "cycle" in body["error"]
    assert Job.objects.get(name="a").parent_id is None


def test_closing_a_longer_chain_into_a_cycle_is_refused_and_nothing_changes(api):
    create(api, "a", displayname="root")
    child(api, "b", "a")
    child(api, "c", "b")
    child(api, "d", "c")

    response = api.post(
        "/v1/jobs", job_body("a", schedule="", parent_job="d", displayname="x"), format="json"
    )

    body = assert_error(response, 400)
    assert "cycle" in body["error"]
    root = Job.objects.get(name="a")
    assert (root.parent_id, root.displayname) == (None, "root")


def test_deleting_a_parent_with_dependents_is_a_409_and_deletes_nothing(api):
    create(api, "parent")
    child(api, "child", "parent")

    body = assert_error(api.delete("/v1/jobs/parent"), 409)

    assert "dependent" in body["error"]
    assert "child" in body["error"]
    assert Job.objects.count() == 2


def test_a_parent_can_be_deleted_once_its_children_are_gone(api):
    create(api, "parent")
    child(api, "child", "parent")

    assert api.delete("/v1/jobs/child").status_code == 200
    assert api.get("/v1/jobs/parent").json()["dependent_jobs"] is None
    assert api.delete("/v1/jobs/parent").status_code == 200
    assert Job.objects.count() == 0
