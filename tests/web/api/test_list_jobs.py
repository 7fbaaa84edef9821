"""GET /v1/jobs: Dkron's filters, sorting and react-admin paging, with X-Total-Count."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.web.api.helpers import assert_error, create

pytestmark = pytest.mark.django_db


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [job["name"] for job in response.json()]


@pytest.fixture
def jobs(api):
    create(api, "alpha", displayname="Nightly Backup", metadata={"team": "ops", "env": "prod"})
    create(api, "bravo", metadata={"team": "ops", "env": "dev"})
    create(api, "charlie", displayname="report", metadata={"team": "web", "env": "prod"})
    create(api, "delta", disabled=True)
    create(api, "echo-backup")
    Job.objects.filter(name="alpha").update(status="success", success_count=3)
    Job.objects.filter(name="bravo").update(status="failed", success_count=10, error_count=1)
    Job.objects.filter(name="charlie").update(status="partially_failed", success_count=1)
    Job.objects.filter(name="delta").update(status="running")


def test_it_lists_every_job_unpaged_sorted_by_name(api, jobs):
    response = api.get("/v1/jobs")

    assert names(response) == ["alpha", "bravo", "charlie", "delta", "echo-backup"]
    assert response["X-Total-Count"] == "5"


def test_without_start_and_end_the_list_is_not_paged_however_long(api):
    Job.objects.bulk_create(
        Job(name=f"bulk-{i:03d}", schedule="@manually", executor="shell") for i in range(150)
    )

    response = api.get("/v1/jobs")

    assert len(response.json()) == 150
    assert response["X-Total-Count"] == "150"


def test_listing_costs_the_same_few_queries_however_many_jobs_and_children(
    api, django_assert_max_num_queries
):
    create(api, "root")
    Job.objects.bulk_create(
        Job(name=f"kid-{i:03d}", parent=Job.objects.get(name="root"), executor="shell")
        for i in range(50)
    )

    with django_assert_max_num_queries(6):
        response = api.get("/v1/jobs")

    assert len(response.json()) == 51


def test_an_empty_list_is_an_empty_array_with_a_zero_count(api):
    response = api.get("/v1/jobs")

    assert response.json() == []
    assert response["X-Total-Count"] == "0"


def test_listed_jobs_have_the_same_shape_as_a_single_job(api, jobs):
    listed = {job["name"]: job for job in api.get("/v1/jobs").json()}

    assert listed["alpha"] == api.get("/v1/jobs/alpha").json()


def test_a_metadata_filter_keeps_only_exact_matches(api, jobs):
    assert names(api.get("/v1/jobs?metadata[team]=ops")) == ["alpha", "bravo"]


def test_repeated_metadata_filters_must_all_match(api, jobs):
    response = api.get("/v1/jobs?metadata[team]=ops&metadata[env]=prod")

    assert names(response) == ["alpha"]
    assert response["X-Total-Count"] == "1"


def test_two_values_for_the_same_metadata_key_match_nothing(api, jobs):
    assert names(api.get("/v1/jobs?metadata[team]=ops&metadata[team]=web")) == []


def test_a_metadata_filter_excludes_jobs_without_metadata(api, jobs):
    assert "echo-backup" not in names(api.get("/v1/jobs?metadata[team]=ops"))


def test_a_metadata_key_with_odd_characters_is_just_a_key(api, jobs):
    create(api, "odd", metadata={"a__b'c": "x"})

    assert names(api.get("/v1/jobs", {"metadata[a__b'c]": "x"})) == ["odd"]


def test_q_matches_a_substring_of_the_name_or_the_displayname(api, jobs):
    assert names(api.get("/v1/jobs?q=Backup")) == ["alpha"]
    assert names(api.get("/v1/jobs?q=backup")) == ["echo-backup"]
    assert names(api.get("/v1/jobs?q=port")) == ["charlie"]
    assert names(api.get("/v1/jobs?q=nothing-like-this")) == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("success", ["alpha"]),
        ("failed", ["bravo"]),
        ("partially_failed", ["charlie"]),
        ("running", ["delta"]),
        ("untriggered", ["echo-backup"]),
    ],
)
def test_status_filters_by_job_status(api, jobs, status, expected):
    assert names(api.get(f"/v1/jobs?status={status}")) == expected


def test_disabled_filters_enabled_or_disabled_jobs(api, jobs):
    assert names(api.get("/v1/jobs?disabled=true")) == ["delta"]
    assert names(api.get("/v1/jobs?disabled=false")) == ["alpha", "bravo", "charlie", "echo-backup"]


def test_filters_combine(api, jobs):
    assert names(api.get("/v1/jobs?metadata[env]=prod&status=success&disabled=false")) == ["alpha"]


def test_sort_descending_by_a_counter(api, jobs):
    response = api.get("/v1/jobs?_sort=success_count&_order=DESC")

    assert names(response)[:3] == ["bravo", "alpha", "charlie"]


def test_sort_ascending_by_default_order(api, jobs):
    assert names(api.get("/v1/jobs?_sort=success_count"))[-2:] == ["alpha", "bravo"]


def test_sort_by_id_means_sort_by_name(api, jobs):
    assert names(api.get("/v1/jobs?_sort=id&_order=DESC")) == [
        "echo-backup", "delta", "charlie", "bravo", "alpha"
    ]  # fmt: skip


def test_start_and_end_slice_the_list_and_the_count_is_the_total(api, jobs):
    response = api.get("/v1/jobs?_start=1&_end=3")

    assert names(response) == ["bravo", "charlie"]
    assert response["X-Total-Count"] == "5"


def test_the_count_is_taken_after_filters_and_before_paging(api, jobs):
    response = api.get("/v1/jobs?disabled=false&_start=0&_end=1")

    assert names(response) == ["alpha"]
    assert response["X-Total-Count"] == "4"


def test_an_end_past_the_list_is_clamped(api, jobs):
    assert names(api.get("/v1/jobs?_start=3&_end=100")) == ["delta", "echo-backup"]


def test_only_a_start_pages_from_there_to_the_end(api, jobs):
    assert names(api.get("/v1/jobs?_start=4")) == ["echo-backup"]


def test_a_start_past_the_end_gives_an_empty_page(api, jobs):
    response = api.get("/v1/jobs?_start=10&_end=20")

    assert names(response) == []
    assert response["X-Total-Count"] == "5"


def test_an_unknown_sort_field_is_a_400_naming_the_valid_ones(api, jobs):
    body = assert_error(api.get("/v1/jobs?_sort=command"), 400)

    assert "command" in body["error"]
    assert "name" in body["error"]


@pytest.mark.parametrize(
    "query",
    ["status=bogus", "disabled=maybe", "_start=abc", "_end=x", "_start=-1"],
)
def test_bad_filter_values_are_a_400(api, jobs, query):
    assert_error(api.get(f"/v1/jobs?{query}"), 400)
