"""Bad input gets a 4xx JSON error `{"error", "details"}` with a clear message; nothing is stored.

The test client re-raises server errors, so every test here also proves there is no 500.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from jobs.models import Job
from tests.web.api.helpers import assert_error, create, job_body

pytestmark = pytest.mark.django_db


def post_raw(api, data: str | bytes, content_type: str = "application/json"):
    return api.generic("POST", "/v1/jobs", data, content_type=content_type)


def refused(api, body, status: int = 400) -> dict:
    """POST `body`, expect a JSON error with `status`, and check nothing was stored."""
    before = Job.objects.count()
    response = api.post("/v1/jobs", body, format="json")
    error = assert_error(response, status)
    assert Job.objects.count() == before
    return error


def test_malformed_json_is_a_400_saying_the_payload_cannot_be_parsed(api):
    body = assert_error(post_raw(api, '{"name": "job1", "schedule": '), 400)

    assert "parse" in body["error"].lower()
    assert Job.objects.count() == 0


def test_an_empty_body_is_a_400(api):
    assert_error(post_raw(api, ""), 400)
    assert Job.objects.count() == 0


def test_a_json_array_body_is_a_400_asking_for_an_object(api):
    body = assert_error(post_raw(api, json.dumps([job_body("job1")])), 400)

    assert "object" in body["error"]
    assert Job.objects.count() == 0


@pytest.mark.parametrize("payload", ['"job1"', "42", "null", "true"])
def test_a_json_scalar_body_is_a_400(api, payload):
    assert_error(post_raw(api, payload), 400)
    assert Job.objects.count() == 0


def test_a_form_encoded_body_is_read_as_json_and_refused_as_unparsable(api):
    # Dkron binds every body as JSON whatever the Content-Type (a 415 before issue 11).
    response = post_raw(api, "name=job1", content_type="application/x-www-form-urlencoded")

    assert assert_error(response, 400)["error"].startswith("Unable to parse payload: ")
    assert Job.objects.count() == 0


def test_invalid_utf8_is_a_400(api):
    assert_error(post_raw(api, b'{"name": "\xff\xfe"}'), 400)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retries", "abc"),
        ("retries", -1),
        ("retries", 1.5),
        ("disabled", "maybe"),
        ("ephemeral", [1]),
        ("tags", ["role=web"]),
        ("tags", "role=web"),
        ("tags", {"role": {"nested": "x"}}),
        ("metadata", {"team": ["a", "b"]}),
        ("executor_config", "command=echo"),
        ("executor_config", ["echo"]),
        ("processors", {"log": "yes"}),
        ("processors", ["log"]),
        ("starts_at", "next tuesday"),
        ("expires_at", 12),
        ("schedule", {"cron": "x"}),
        ("name", None),
        ("name", ["job1"]),
        ("displayname", {"a": 1}),
        ("history_limit", 0),
        ("retry_backoff", "soon"),
        ("catchup_window", -5),
        ("jitter", "soon"),
        ("jitter", -1),
        ("jitter", "2m"),  # job_body's @every 1m: wider than the interval
        ("jitter", "nan"),
        ("retry_backoff", "NaN"),
        ("catchup_window", "inf"),
    ],
)
def test_a_wrong_type_is_a_400_naming_the_field(api, field, value):
    body = refused(api, {**job_body("job1"), field: value})

    assert field in body["details"] or field in body["error"], body


def test_a_missing_name_is_a_400(api):
    body = job_body()
    del body["name"]

    assert "name" in refused(api, body)["details"]


def test_an_empty_name_is_a_400(api):
    refused(api, job_body(""))


@pytest.mark.parametrize(
    "name", ["Job1", "my job", "a/b", "job.1", "job:1", "jöb\u00c9", "x\n", " job1"]
)
def test_an_illegal_name_is_a_400_naming_the_character(api, name):
    body = refused(api, job_body(name))

    assert "illegal character" in body["error"]
    assert "name" in body["details"]


def test_unicode_lowercase_letters_digits_dashes_and_underscores_are_legal_in_a_name(api):
    assert create(api, "tâche_de-nuit-2")["name"] == "tâche_de-nuit-2"


def test_a_name_of_255_characters_is_fine(api):
    assert len(create(api, "a" * 255)["name"]) == 255


def test_a_name_longer_than_255_characters_is_a_400(api):
    body = refused(api, job_body("a" * 256))

    assert "255" in body["error"] or "255" in json.dumps(body["details"])


def test_a_missing_executor_is_a_400(api):
    body = job_body("job1")
    del body["executor"]

    assert "executor" in refused(api, body)["details"]


def test_an_unknown_executor_is_a_400_listing_the_known_ones(api):
    body = refused(api, job_body("job1", executor="sheel"))

    assert "sheel" in body["error"]
    assert "shell" in body["error"]
    assert "http" in body["error"]
    assert "executor" in body["details"]


def test_a_disabled_executor_is_a_400(api, settings):
    settings.DKRON = {**settings.DKRON, "DISABLED_EXECUTORS": {"shell"}}

    body = refused(api, job_body("job1"))

    assert "disabled" in body["error"]


def test_an_unknown_executor_config_key_is_a_400_naming_the_key(api):
    body = refused(api, job_body("job1", executor_config={"command": "echo", "comand_typo": "x"}))

    assert "comand_typo" in body["details"]["executor_config"]


def test_a_missing_required_executor_config_key_is_a_400_naming_the_key(api):
    body = refused(api, job_body("job1", executor_config={"shell": "true"}))

    assert "command" in body["details"]["executor_config"]


def test_a_bad_executor_config_value_is_a_400_naming_the_key(api):
    body = refused(api, job_body("job1", executor_config={"command": "echo", "timeout": "soon"}))

    assert "timeout" in body["details"]["executor_config"]


def test_a_bad_http_executor_config_is_a_400_naming_the_key(api):
    body = refused(
        api,
        job_body("ping", executor="http", executor_config={"method": "GET", "url": "ftp://x"}),
    )

    assert "url" in body["details"]["executor_config"]


def test_a_five_field_cron_is_a_400_saying_six_fields_are_expected(api):
    body = refused(api, job_body("job1", schedule="*/5 * * * *"))

    assert "6 fields expected" in body["error"]
    assert "schedule" in body["details"]


@pytest.mark.parametrize("schedule", ["@sometimes", "61 * * * * *", "@every never", "garbage"])
def test_an_unparseable_schedule_is_a_400(api, schedule):
    body = refused(api, job_body("job1", schedule=schedule))

    assert "schedule" in body["details"]


def test_a_missing_schedule_without_a_parent_is_a_400(api):
    body = job_body("job1")
    del body["schedule"]

    assert "schedule" in refused(api, body)["details"]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "America", "+02:00"])
def test_an_invalid_timezone_is_a_400(api, zone):
    body = refused(api, job_body("job1", timezone=zone))

    assert "timezone" in body["details"]


def test_an_invalid_timezone_prefix_in_the_schedule_is_a_400(api):
    refused(api, job_body("job1", schedule="TZ=Nowhere/Land 0 0 * * * *"))


def test_an_invalid_owner_email_is_a_400(api):
    assert "owner_email" in refused(api, job_body("job1", owner_email="not-an-email"))["details"]


def test_expires_at_before_starts_at_is_a_400(api):
    body = refused(
        api,
        job_body("job1", starts_at="2030-06-01T00:00:00Z", expires_at="2030-01-01T00:00:00Z"),
    )

    assert "expires_at" in body["details"]


def test_an_unknown_concurrency_policy_is_a_400(api):
    assert "concurrency" in refused(api, job_body("job1", concurrency="sometimes"))["details"]


def test_an_unknown_misfire_policy_is_a_400(api):
    assert "misfire_policy" in refused(api, job_body("job1", misfire_policy="often"))["details"]


@pytest.mark.parametrize("tags", [{"role": "web:many"}, {"role": "web:0"}, {"role": "web:-2"}])
def test_a_tag_count_that_is_not_a_positive_integer_is_a_400(api, tags):
    body = refused(api, job_body("job1", tags=tags))

    assert "tags" in body["details"]


def test_a_failed_update_leaves_the_stored_job_unchanged(api):
    before = create(api, "job1", displayname="Original")

    refused(api, job_body("job1", displayname="Changed", schedule="* * * * *"))

    assert api.get("/v1/jobs/job1").json() == before


def test_a_body_above_the_upload_limit_is_a_413_and_nothing_is_stored(api):
    huge = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024)

    response = api.post("/v1/jobs", job_body("job1", metadata={"blob": huge}), format="json")

    body = assert_error(response, 413)
    assert "too large" in body["error"]
    assert Job.objects.count() == 0


def test_an_oversized_put_is_refused_too(api):
    huge = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024)

    response = api.put("/v1/jobs/job1", job_body("job1", metadata={"blob": huge}), format="json")

    assert_error(response, 413)
    assert Job.objects.count() == 0


def test_a_body_just_under_the_upload_limit_is_accepted(api):
    blob = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 2)

    response = api.post("/v1/jobs", job_body("job1", metadata={"blob": blob}), format="json")

    assert response.status_code == 201


def test_deeply_nested_json_is_refused_without_a_crash(api):
    nested = "[" * 100_000 + "]" * 100_000

    response = post_raw(api, '{"name": "job1", "metadata": ' + nested + "}")

    assert 400 <= response.status_code < 500
    assert Job.objects.count() == 0


def test_an_overlong_displayname_is_a_400(api):
    assert "displayname" in refused(api, job_body("job1", displayname="d" * 256))["details"]


def test_a_nul_character_in_a_string_is_refused_without_a_crash(api):
    refused(api, job_body("job1", displayname="bad\u0000name"))


@pytest.mark.parametrize(
    "fields",
    [
        {"metadata": {"team": "a\u0000b"}},
        {"metadata": {"te\u0000am": "a"}},
        {"tags": {"role": "\u0000"}},
        {"executor_config": {"command": "echo \u0000"}},
        {"processors": {"log": {"x": "\u0000"}}},
        {"notify": {"on": "\u0000"}},
    ],
)
def test_a_nul_character_inside_a_map_is_refused_without_a_crash(api, fields):
    refused(api, job_body("job1", **fields))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/jobs/a%00b"),
        ("delete", "/v1/jobs/a%00b"),
        ("post", "/v1/jobs/a%00b/run"),
        ("post", "/v1/jobs/a%00b/toggle"),
        ("get", "/v1/jobs/a%00b/executions"),
        ("get", "/v1/jobs/job1/executions/1%00"),
        ("get", "/v1/jobs/" + "n" * 5000),
        ("get", "/v1/jobs/job1/executions/99999999999999999999999"),
        ("post", "/v1/jobs/job1/executions/99999999999999999999999/kill"),
    ],
)
def test_odd_names_and_ids_in_the_url_are_a_404_not_a_crash(api, method, path):
    create(api, "job1")

    assert_error(getattr(api, method)(path), 404)


@pytest.mark.parametrize(
    "query",
    ["q=a%00b", "metadata[team]=a%00", "metadata[a%00]=b", "status=%00", "_sort=%00", "_start=%00"],
)
def test_odd_query_values_never_crash_the_job_list(api, query):
    create(api, "job1")

    response = api.get(f"/v1/jobs?{query}")

    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("put", "/v1/jobs"), ("delete", "/v1/jobs"), ("get", "/v1/jobs/job1/run"),
     ("patch", "/v1/jobs/job1"), ("get", "/v1/jobs/job1/toggle")],
)  # fmt: skip
def test_an_unsupported_method_is_a_405_json_error(api, method, path):
    create(api, "job1")

    assert_error(getattr(api, method)(path, {}, format="json"), 405)
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    "raw",
    [
        '"retries": NaN',
        '"catchup_window": Infinity',
        '"catchup_window": 1e400',
        '"tags": {"rack": 1e400}',
        '"metadata": {"cost": -1e400}',
        '"executor_config": {"command": "echo", "timeout": 1e400}',
        '"processors": {"log": {"level": 1e999}}',
    ],
)
def test_a_number_that_is_not_finite_is_a_400_and_never_breaks_later_reads(api, raw):
    body = '{"name": "job1", "schedule": "@every 1m", "executor": "shell", ' + raw + "}"
    if '"executor_config"' not in raw:
        body = body[:-1] + ', "executor_config": {"command": "echo"}}'

    assert_error(post_raw(api, body), 400)
    assert Job.objects.count() == 0
    assert api.get("/v1/jobs").status_code == 200


def test_a_retry_backoff_beyond_ten_years_is_a_400(api):
    assert "retry_backoff" in refused(api, job_body("job1", retry_backoff="100000h"))["details"]


def test_a_date_outside_the_representable_range_is_a_400(api):
    assert (
        "starts_at"
        in refused(api, job_body("job1", starts_at="0001-01-01T00:00:00+01:00"))["details"]
    )
