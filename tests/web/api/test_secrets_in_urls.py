"""Credentials inside URLs are secrets: the password of `user:password@` and key-like query
parameters are masked for everyone, the rest of the URL stays readable, a masked URL sent back
keeps them while the rest is unchanged, and a changed host needs them resent (issue 12,
finding 6)."""

from __future__ import annotations

import pytest

from jobs.models import Job
from jobs.services.transfer import jobs_export
from tests.web.api.helpers import job_body
from tests.web.api.roles import principal

pytestmark = pytest.mark.django_db

URL = "http://user:url-pw-1234@a.example/path?api_key=key-5678&page=2"
SHOWN = "http://user:********@a.example/path?api_key=********&page=2"


def create(url: str = URL, **config) -> None:
    _, owner, _ = principal("superuser")
    body = job_body(
        "ping", executor="http", executor_config={"method": "GET", "url": url, **config}
    )
    assert owner.post("/v1/jobs", body, format="json").status_code == 201


def test_a_read_only_user_sees_only_the_readable_part_of_a_url():
    create()
    _, reader, _ = principal("read-only")

    assert reader.get("/v1/jobs/ping").json()["executor_config"]["url"] == SHOWN
    listing = reader.get("/v1/jobs").content.decode()
    assert "url-pw-1234" not in listing and "key-5678" not in listing
    assert jobs_export()[0]["executor_config"]["url"] == SHOWN
    assert jobs_export(include_secrets=True)[0]["executor_config"]["url"] == URL


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("token=t0k3n-1&x=1", "token=********&x=1"),
        ("access_token=t0k3n-1", "access_token=********"),
        ("sig=s1gnature", "sig=********"),
        ("password=hunter22", "password=********"),
        ("X-Amz-Signature=abcd1234&X-Amz-Date=2024", "X-Amz-Signature=********&X-Amz-Date=2024"),
        ("page=2&q=cats", "page=2&q=cats"),
    ],
)
def test_key_like_query_parameters_are_masked_and_others_are_not(query, shown):
    create(f"https://a.example/x?{query}")
    _, reader, _ = principal("read-only")

    assert reader.get("/v1/jobs/ping").json()["executor_config"]["url"] == (
        f"https://a.example/x?{shown}"
    )


def test_a_masked_url_sent_back_keeps_its_credentials():
    create()
    _, editor, _ = principal("editor")
    body = editor.get("/v1/jobs/ping").json()
    body["executor_config"]["body"] = "changed"

    assert editor.post("/v1/jobs", body, format="json").status_code in (200, 201)
    assert Job.objects.get(name="ping").executor_config["url"] == URL


def test_a_masked_url_credential_is_not_kept_for_another_host():
    create()
    _, editor, _ = principal("editor")
    body = editor.get("/v1/jobs/ping").json()
    body["executor_config"]["url"] = SHOWN.replace("a.example", "evil.example")

    answer = editor.post("/v1/jobs", body, format="json")

    assert answer.status_code == 400
    assert answer.json()["error"] == "Job validation failed: resend url password: url changed."
    assert Job.objects.get(name="ping").executor_config["url"] == URL


def test_a_secret_sent_under_its_field_name_is_masked_too():
    _, owner, _ = principal("superuser")
    config = {"brokerAddress": "a:9092", "topic": "t", "saslUsername": "u",
              "sasl_password": "kafka-pw-1", "saslMechanism": "plain"}  # fmt: skip
    owner.post("/v1/jobs", job_body("k", executor="kafka", executor_config=config), format="json")
    _, reader, _ = principal("read-only")

    assert reader.get("/v1/jobs/k").json()["executor_config"]["sasl_password"] == "********"


def test_a_rabbitmq_url_shows_its_host_and_hides_its_password():
    _, owner, _ = principal("superuser")
    config = {"url": "amqp://guest:rabbit-pw-1@mq.example:5672/prod", "queue.name": "q",
              "message.body": "b"}  # fmt: skip
    owner.post(
        "/v1/jobs", job_body("r", executor="rabbitmq", executor_config=config), format="json"
    )
    _, reader, _ = principal("read-only")

    shown = reader.get("/v1/jobs/r").json()["executor_config"]["url"]
    assert shown == "amqp://guest:********@mq.example:5672/prod"
