"""User regexes (http's expectBody) are RE2, checked when the job is saved: a pattern RE2
cannot run in linear time is a 400 that says RE2 syntax is used, and nothing is stored."""

from __future__ import annotations

import time

import pytest

from jobs.models import Job
from tests.web.api.helpers import assert_error, http_body

pytestmark = pytest.mark.django_db


def save(api, expect_body: str):
    config = {"method": "GET", "url": "http://example.com/", "expectBody": expect_body}
    return api.post("/v1/jobs", http_body(executor_config=config), format="json")


def test_a_backreference_is_a_400_saying_re2_syntax_is_used(api):
    body = assert_error(save(api, r"(a)\1"), 400)

    message = body["details"]["executor_config"]["expectBody"]
    assert message.startswith("expectBody is not")
    assert "not a valid RE2 regular expression (Go's regexp syntax" in message
    assert not Job.objects.exists()


def test_a_one_and_a_half_megabyte_pattern_is_a_400_at_once(api):
    started = time.monotonic()
    body = assert_error(save(api, "(a|b)" * 300_000), 400)

    assert time.monotonic() - started < 5
    assert "at most 65536 bytes" in body["details"]["executor_config"]["expectBody"]
    assert not Job.objects.exists()


def test_a_catastrophic_pattern_for_python_is_a_fine_re2_pattern(api):
    response = save(api, "(a+)+$")

    assert response.status_code == 201, response.content
    assert Job.objects.get(name="ping").executor_config["expectBody"] == "(a+)+$"
