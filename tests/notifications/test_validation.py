"""A job's `notify` is checked when the job is saved: a bad shape is a 400 naming the key."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.web.api.helpers import assert_error, job_body

pytestmark = pytest.mark.django_db


def refused(api, notify) -> dict:
    response = api.post("/v1/jobs", job_body("job1", notify=notify), format="json")
    body = assert_error(response, 400)
    assert not Job.objects.filter(name="job1").exists()
    return body["details"]["notify"]


@pytest.mark.parametrize(
    ("notify", "key", "says"),
    [
        ({"on": "sometimes"}, "on", "use always, on_failure, on_success, on_change or never"),
        ({"on": "always", "emial": ["a@example.com"]}, "emial", "unknown key"),
        ({"email": ["not-an-address"]}, "email", "not a valid email address"),
        ({"webhooks": [{"url": "ftp://example.com/x"}]}, "webhooks.0.url", "http"),
        ({"webhooks": [{"method": "POST"}]}, "webhooks.0.url", "required"),
        ({"webhooks": [{"url": "http://h/", "method": "FETCH"}]}, "webhooks.0.method", "one of"),
        ({"webhooks": [{"url": "http://h/", "body": "{% if %}"}]}, "webhooks.0.body", "template"),
        (
            {"webhooks": [{"url": "http://h/", "headers": {"X-A": "{{ x|nope }}"}}]},
            "webhooks.0.headers",
            "template",
        ),
        ({"webhooks": [{"url": "http://h/", "timeout": "0"}]}, "webhooks.0.timeout", "greater"),
        ({"webhooks": [{"url": "http://h/", "retries": -1}]}, "webhooks.0.retries", "greater"),
        ({"webhooks": {"url": "http://h/"}}, "webhooks", "list"),
        ({"email_subject": "{% for %}"}, "email_subject", "template"),
    ],
)
def test_a_bad_notify_is_a_400_naming_the_key(api, notify, key, says):
    details = refused(api, notify)

    assert key in details, details
    assert says in details[key]


def test_a_notify_that_is_not_an_object_is_a_400(api):
    response = api.post("/v1/jobs", job_body("job1", notify=["always"]), format="json")

    assert_error(response, 400)


def test_a_good_notify_is_stored_as_sent_with_dkron_style_strings(api):
    notify = {
        "on": "on_change",
        "email": "ops@example.com, dev@example.com",
        "email_subject": "{{ job.name }}: {{ run.status }}",
        "webhooks": [
            {
                "url": "https://hooks.example.com/T0/B0",
                "method": "put",
                "headers": {"Authorization": "Bearer abc"},
                "body": '{"text": {{ job.name|json }}}',
                "timeout": "5",
                "retries": "2",
            }
        ],
    }

    response = api.post("/v1/jobs", job_body("job1", notify=notify), format="json")

    assert response.status_code == 201, response.content
    assert Job.objects.get(name="job1").notify == notify
    shown = api.get("/v1/jobs/job1").json()["notify"]
    assert shown["webhooks"][0]["headers"] == {"Authorization": "********"}  # secrets masked


def test_an_empty_notify_is_fine(api):
    response = api.post("/v1/jobs", job_body("job1", notify={}), format="json")

    assert response.status_code == 201, response.content


def test_webhook_headers_are_masked_in_responses_and_kept_when_sent_back_masked(api):
    hook = {"url": "http://hooks.example/x", "headers": {"Authorization": "Bearer s3cret"}}
    body = job_body("masked-hook", notify={"on": "always", "webhooks": [hook]})
    created = api.post("/v1/jobs", body, format="json")
    assert created.status_code == 201
    assert "s3cret" not in created.content.decode()
    shown = api.get("/v1/jobs/masked-hook").json()
    assert shown["notify"]["webhooks"][0]["headers"] == {"Authorization": "********"}
    shown_body = {**body, "notify": shown["notify"]}  # a client sending back what it read
    assert api.post("/v1/jobs", shown_body, format="json").status_code == 201
    stored = Job.objects.get(name="masked-hook").notify
    assert stored["webhooks"][0]["headers"] == {"Authorization": "Bearer s3cret"}
