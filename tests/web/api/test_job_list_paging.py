"""GET /v1/jobs pages: every page is the same slice of the unpaged list, whatever the sort,
order and filters, and a page is cut counting from the nearer end (issue 15, target 5: past
three quarters of 100,000 jobs PostgreSQL sorted the whole table for a page, 50 ms)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job

pytestmark = pytest.mark.django_db

SORTS = ["", "_sort=name", "_sort=id&_order=DESC", "_sort=success_count", "_sort=next&_order=DESC"]


@pytest.fixture
def many(api):  # type: ignore[no-untyped-def]
    Job.objects.bulk_create(
        Job(
            name=f"job-{i:02d}",
            displayname="even" if i % 2 == 0 else "odd",
            schedule="@manually",
            executor="shell",
            success_count=i % 3,  # ties, broken by id
            disabled=i % 5 == 0,
        )
        for i in range(23)
    )


def names(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return [job["name"] for job in response.json()]


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("filters", ["", "q=even", "disabled=false"])
def test_pages_are_slices_of_the_unpaged_list(api, many, sort, filters):
    query = "&".join(p for p in (sort, filters) if p)
    whole = names(api.get(f"/v1/jobs?{query}"))
    assert whole

    for start, end in [(0, 5), (5, 10), (7, 8), (len(whole) - 3, len(whole) + 5), (40, 50)]:
        response = api.get(f"/v1/jobs?{query}&_start={start}&_end={end}")
        assert names(response) == whole[start:end]
        assert response["X-Total-Count"] == str(len(whole))


def cuts(api, url: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The SQL of the queries that cut the page (of the jobs, with a LIMIT)."""
    table = connection.ops.quote_name(Job._meta.db_table)
    with CaptureQueriesContext(connection) as queries:
        assert api.get(url).status_code == 200
    return [
        q["sql"]
        for q in queries.captured_queries
        if f" FROM {table} " in q["sql"] and " LIMIT " in q["sql"].upper()
    ]


def test_a_page_is_cut_from_ids_alone_counting_from_the_nearer_end(api, many):
    table = connection.ops.quote_name(Job._meta.db_table)
    name = f"{table}.{connection.ops.quote_name('name')}"

    [front] = cuts(api, "/v1/jobs?_start=3&_end=5")
    assert front.startswith(f"SELECT {table}.{connection.ops.quote_name('id')}")
    assert f"ORDER BY {name} ASC" in front and "OFFSET 3" in front

    [back] = cuts(api, "/v1/jobs?_start=18&_end=21")  # 23 jobs: 2 after this page
    assert f"ORDER BY {name} DESC" in back and "OFFSET 2" in back
    assert names(api.get("/v1/jobs?_start=18&_end=21")) == ["job-18", "job-19", "job-20"]


def test_an_empty_page_asks_no_rows(api, many):
    assert cuts(api, "/v1/jobs?_start=5&_end=5") == []
    assert cuts(api, "/v1/jobs?_start=40&_end=50") == []
