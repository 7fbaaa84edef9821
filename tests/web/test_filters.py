"""The list filters (web/filters.py): typed values for the selectors, and the 400s a bad value
gets through the API, first bad value first, exactly as the lists have always answered."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from jobs.errors import DomainError
from jobs.models import JobStatus
from jobs.selectors import ExecutionFilters, JobFilters, PageSlice
from tests.web.api.helpers import add_execution, assert_error, create
from web.filters import (
    JOB_STATUS_FILTERS,
    STATUS_MESSAGE,
    ExecutionListFilter,
    JobListFilter,
    JobPageFilter,
)


def _parse(cls, query: str):
    return cls.parse(QueryDict(query))


def _message(cls, query: str) -> str:
    with pytest.raises(DomainError) as caught:
        _parse(cls, query)
    return caught.value.message


def test_no_parameters_give_the_defaults():
    assert _parse(JobListFilter, "") == JobFilters()
    assert _parse(ExecutionListFilter, "") == ExecutionFilters()
    assert _parse(JobPageFilter, "") == PageSlice()


def test_job_filters_are_typed():
    filters = _parse(
        JobListFilter,
        "metadata[team]=a&metadata[team]=b&metadata[x__y]=1&q=Ab&status=untriggered"
        "&disabled=false&executor=shell&_sort=next&_order=desc",
    )

    assert filters == JobFilters(
        metadata=[("team", "a"), ("team", "b"), ("x__y", "1")],
        q="Ab",
        status="",
        disabled=False,
        executor="shell",
        sort="next",
        descending=True,
    )


def test_status_names_are_the_models_values_with_untriggered_for_the_empty_one():
    assert JOB_STATUS_FILTERS == {
        "success": JobStatus.SUCCESS,
        "failed": JobStatus.FAILED,
        "partially_failed": JobStatus.PARTIALLY_FAILED,
        "running": JobStatus.RUNNING,
        "untriggered": JobStatus.UNTRIGGERED,
    }
    assert STATUS_MESSAGE == (
        "status must be success, failed, partially_failed, running or untriggered"
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=nope&disabled=maybe&_sort=zz", STATUS_MESSAGE),
        ("disabled=maybe&_sort=zz", "disabled must be true or false"),
        ("_sort=zz", "cannot sort by 'zz'; use one of "),
        ("q=a%00b", "query parameters must not contain NUL characters"),
    ],
)
def test_the_first_bad_job_filter_is_reported(query, message):
    assert _message(JobListFilter, query).startswith(message)


def test_order_is_read_as_given():
    # Only "DESC" in any case is descending; blank or padded is ascending (oldest first).
    assert _parse(JobListFilter, "_order=DeSc").descending is True
    assert _parse(JobListFilter, "_order=DESC%20").descending is False
    assert _parse(ExecutionListFilter, "").descending is True
    assert _parse(ExecutionListFilter, "_order=").descending is False


@pytest.mark.parametrize(
    ("query", "page"),
    [
        ("_start=3_0&_end=40", PageSlice(30, 40, True)),  # int() reads underscores
        ("_start=&_end=", PageSlice(0, None, True)),
        ("_end=5", PageSlice(0, 5, True)),
        ("_start=%205%20", PageSlice(5, None, True)),
    ],
)
def test_paging_reads_numbers_as_int_does(query, page):
    assert _parse(JobPageFilter, query) == page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("_start=1.0", "_start and _end must be integers"),
        ("_start=-1&_end=x", "_start and _end must be integers"),  # both read before the sign
        ("_start=-1", "_start and _end must not be negative"),
        ("_end=-1", "_start and _end must not be negative"),
    ],
)
def test_bad_paging(query, message):
    assert _message(JobPageFilter, query) == message


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("_sort=zz&group=x&_start=x&output_size_limit=x", "cannot sort executions by 'zz'"),
        ("group=x&_start=x&output_size_limit=x", "group must be an integer"),
        ("group=%C2%B2", "group must be an integer"),  # "²" is a digit to isdigit, not to int
        ("group=%2B3", "group must be an integer"),
        ("group=3_0", "group must be an integer"),
        ("_start=x&output_size_limit=x", "_start and _end must be integers"),
        ("output_size_limit=x", "output_size_limit must be an integer"),
        ("output_size_limit=-1", "output_size_limit must not be negative"),
    ],
)
def test_the_first_bad_execution_filter_is_reported(query, message):
    assert _message(ExecutionListFilter, query) == message


def test_execution_filters_are_typed():
    filters = _parse(
        ExecutionListFilter,
        "_sort=started_at&_order=asc&group=7&_start=1&_end=9&output_size_limit=0",
    )

    assert filters == ExecutionFilters(
        sort="started_at",
        descending=False,
        group=7,
        page=PageSlice(1, 9, True),
        output_limit=0,
    )


@pytest.mark.django_db
def test_a_unicode_digit_group_is_a_400_not_a_500(api):
    create(api, "job1")
    add_execution("job1", status="success")

    body = assert_error(api.get("/v1/jobs/job1/executions?group=%C2%B2"), 400)

    assert body["error"] == "group must be an integer"


@pytest.mark.django_db
def test_the_api_reports_the_first_bad_job_filter(api):
    body = assert_error(api.get("/v1/jobs?disabled=maybe&_sort=zz&_start=x"), 400)

    assert body["error"] == "disabled must be true or false"
