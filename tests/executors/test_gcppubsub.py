"""The gcppubsub executor against the official Pub/Sub emulator (and a stand-in where it cannot
fail the way Google's service does)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from typing import Any

import pytest

from executors.base import ConfigError, ExecutionContext, ExecutorError
from executors.gcppubsub import DEFAULT_TIMEOUT, PubSubConfig, PubSubExecutor
from executors.output import OutputSink
from executors.registry import mask_secrets
from tests.executors import fire
from tests.executors.servers_gcppubsub import PROJECT, StandInPublisher, Topic

executor = PubSubExecutor()


def config(**raw: Any) -> PubSubConfig:
    return executor.validate({"project": PROJECT, **raw})


def run(cfg: PubSubConfig, **ctx_args: Any) -> tuple[OutputSink, ExecutorError | None]:
    out = OutputSink()
    ctx = ExecutionContext(job_name="job", config=cfg, output=out, **ctx_args)
    try:
        executor.execute(ctx)
    except ExecutorError as exc:
        return out, exc
    return out, None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def publish_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gcppubsub-publish"]


# Success: the server's message id is the output, and the message is on the topic.


def test_a_published_message_arrives_with_its_data_attributes_and_ordering_key(
    pubsub_topic: Topic,
):
    cfg = config(
        topic=pubsub_topic.topic,
        data=b64(b"hello world"),
        # Dkron sends attributes as a JSON string; names that are also parameters of the
        # batching client's publish() (data, timeout, ordering_key) are plain attributes here.
        attributes=json.dumps({"hello": "world", "data": "d", "timeout": "t", "ordering_key": "o"}),
        orderingKey="customer-42",
    )
    out, error = run(cfg)
    assert error is None
    message_id = out.text().strip()
    assert message_id and out.text() == f"{message_id}\n"
    [message] = pubsub_topic.pull()
    assert message.message_id == message_id
    assert message.data == b"hello world"
    assert dict(message.attributes) == {
        "hello": "world",
        "data": "d",
        "timeout": "t",
        "ordering_key": "o",
    }
    assert message.ordering_key == "customer-42"


def test_attributes_alone_make_a_message_and_may_be_a_json_object(pubsub_topic: Topic):
    cfg = config(topic=pubsub_topic.topic, attributes={"event": "tick"}, data="")
    out, error = run(cfg)
    assert error is None
    [message] = pubsub_topic.pull()
    assert message.data == b""
    assert dict(message.attributes) == {"event": "tick"}
    assert message.ordering_key == ""
    assert out.text() == f"{message.message_id}\n"


def test_two_attempts_of_one_fire_carry_the_same_fire_key_attribute(pubsub_topic: Topic):
    cfg = config(topic=pubsub_topic.topic, data=b64(b"tick"))
    for args in fire.attempts():
        _, error = run(cfg, **args)
        assert error is None
    first, retry = (dict(m.attributes) for m in pubsub_topic.pull(2))
    by_attempt = {first["X-Dkron-Attempt"]: first, retry["X-Dkron-Attempt"]: retry}
    assert set(by_attempt) == {"1", "2"}
    assert first["Idempotency-Key"] == retry["Idempotency-Key"] == fire.key("job")
    assert first["X-Dkron-Scheduled-Time"] == fire.SCHEDULED_TEXT


def test_the_jobs_own_attributes_win_and_stay(pubsub_topic: Topic):
    cfg = config(topic=pubsub_topic.topic, attributes={"Idempotency-Key": "mine", "a": "b"})
    _, error = run(cfg, **fire.attempts()[0])
    assert error is None
    [message] = pubsub_topic.pull()
    assert message.attributes["Idempotency-Key"] == "mine"
    assert message.attributes["a"] == "b"
    assert message.attributes["X-Dkron-Attempt"] == "1"


# Failures.


def test_a_topic_that_does_not_exist_fails_naming_it(pubsub_emulator, monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    out, error = run(config(topic="no-such-topic", data=b64(b"x")))
    assert error is not None and error.status == "failed"
    assert (
        error.message == f"gcppubsub: topic projects/{PROJECT}/topics/no-such-topic does not exist"
    )
    assert out.text() == ""


def test_a_server_that_is_not_listening_fails_with_cannot_connect(monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # free a moment ago, closed now
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
    started = time.monotonic()
    error = run(config(topic="topic-x", data=b64(b"x"), timeout="1"))[1]
    assert time.monotonic() - started < 3
    assert error is not None and error.status == "failed" and error.retryable
    assert error.message.startswith(f"gcppubsub: cannot connect to 127.0.0.1:{port}: ")
    assert "Connection refused" in error.message
    assert error.message.endswith("(gave up after 1s)")


def test_permission_denied_fails_without_retry(stand_in: StandInPublisher):
    # The emulator has no authentication; the stand-in answers as Pub/Sub does without IAM.
    error = run(config(topic="denied", data=b64(b"x")))[1]
    assert error is not None and error.status == "failed" and not error.retryable
    assert error.message == (
        f"gcppubsub: permission denied publishing to projects/{PROJECT}/topics/denied: "
        "User not authorized to perform this action."
    )
    assert len(stand_in.requests) == 1  # not retried


def test_a_server_that_never_answers_times_out(stand_in: StandInPublisher):
    # The emulator always answers at once; the stand-in holds the call open.
    started = time.monotonic()
    error = run(config(topic="silent", data=b64(b"x"), timeout="1"))[1]
    assert time.monotonic() - started < 3
    assert error is not None and error.status == "timeout" and error.retryable
    assert error.message.startswith(
        f"gcppubsub: timeout after 1s publishing to projects/{PROJECT}/topics/silent at "
        f"{stand_in.address}"
    )


def test_the_agents_limit_bounds_the_topics_own_timeout(stand_in: StandInPublisher):
    started = time.monotonic()
    error = run(config(topic="silent", data=b64(b"x"), timeout="60"), default_timeout=0.5)[1]
    assert time.monotonic() - started < 2.5
    assert error is not None and error.status == "timeout"
    assert "timeout after 0.5s" in error.message


def test_a_kill_stops_a_publish_in_flight_and_leaves_no_thread(stand_in: StandInPublisher):
    cfg = config(topic="silent", data=b64(b"x"))
    ctx = ExecutionContext(job_name="job", config=cfg, output=OutputSink())
    threading.Timer(0.3, ctx.cancel.cancel, args=("killed",)).start()
    started = time.monotonic()
    with pytest.raises(ExecutorError) as caught:
        executor.execute(ctx)
    assert time.monotonic() - started < 1
    assert caught.value.status == "killed" and not caught.value.retryable
    assert (
        caught.value.message == f"gcppubsub: publish to projects/{PROJECT}/topics/silent was killed"
    )
    # Closing the channel ended the call in flight, so the worker thread is gone too.
    deadline = time.monotonic() + 2
    while publish_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert publish_threads() == []


def test_the_agents_soft_time_limit_is_reported_as_a_timeout(stand_in: StandInPublisher):
    ctx = ExecutionContext(
        job_name="job", config=config(topic="silent", data=b64(b"x")), output=OutputSink()
    )
    ctx.cancel.cancel("timeout")
    with pytest.raises(ExecutorError) as caught:
        executor.execute(ctx)
    assert caught.value.status == "timeout"


def test_missing_credentials_fail_saying_how_to_provide_them(monkeypatch, tmp_path):
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    error = run(config(topic="topic-x", data=b64(b"x")))[1]
    assert error is not None and error.status == "failed"
    assert error.message == (
        f"gcppubsub: no usable Google credentials on this agent (File {tmp_path}/missing.json "
        "was not found.); set GOOGLE_APPLICATION_CREDENTIALS, run on Google Cloud, or set "
        "PUBSUB_EMULATOR_HOST for an emulator"
    )


def test_a_broken_credentials_file_fails_without_showing_the_key(monkeypatch, tmp_path):
    key = tmp_path / "sa.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "k1",
                "private_key": "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEY\n-----END KEY-----",
                "client_email": "job@dkronweb-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    out, error = run(config(topic="topic-x", data=b64(b"x")))
    assert error is not None
    assert error.message.startswith(
        f"gcppubsub: no usable Google credentials on this agent (Failed to load service "
        f"account credentials from {key})"
    )
    assert "TOPSECRETKEY" not in error.message + out.text()


def test_the_time_limit_is_the_timeout_key_fifteen_seconds_by_default():
    assert executor.timeout_seconds(config(topic="topic-x", data="eA==")) == DEFAULT_TIMEOUT == 15
    assert executor.timeout_seconds(config(topic="topic-x", data="eA==", timeout="5")) == 5


def test_the_config_holds_no_secret_as_credentials_come_from_the_agent():
    raw = {"project": PROJECT, "topic": "topic-x", "data": "eA=="}
    assert executor.secret_keys == frozenset()
    assert mask_secrets("gcppubsub", raw) == raw


# Config is checked at save time, naming the key.


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"topic": "topic-x", "data": "eA=="}, "project", "Field required"),
        ({"project": "", "topic": "topic-x", "data": "eA=="}, "project", "missing project"),
        (
            {"project": "a/b", "topic": "topic-x", "data": "eA=="},
            "project",
            "project 'a/b' is not a Google Cloud project id",
        ),
        ({"project": "p-1", "data": "eA=="}, "topic", "Field required"),
        ({"project": "p-1", "topic": " ", "data": "eA=="}, "topic", "missing topic"),
        (
            {"project": "p-1", "topic": "projects/p-1/topics/t-1", "data": "eA=="},
            "topic",
            "topic takes the topic's id (e.g. my-topic), not its full path; the project goes "
            "in project",
        ),
        (
            {"project": "p-1", "topic": "goog-topic", "data": "eA=="},
            "topic",
            "topic 'goog-topic' is not a valid topic id (3-255 characters: letters, digits and "
            "- _ . ~ + %, starting with a letter and not with 'goog')",
        ),
        (
            {"project": "p-1", "topic": "topic-x", "data": "hello world"},
            "data",
            "data is not valid base64: Only base64 data is allowed",
        ),
        (
            {"project": "p-1", "topic": "topic-x"},
            "data",
            "at least one of data and attributes must be set",
        ),
        (
            {"project": "p-1", "topic": "topic-x", "attributes": '{"a": 1}'},
            "attributes",
            "the value of attribute 'a' must be a string",
        ),
        (
            {"project": "p-1", "topic": "topic-x", "attributes": '["a"]'},
            "attributes",
            'attributes must be a JSON object such as {"key": "value"}',
        ),
        (
            {"project": "p-1", "topic": "topic-x", "attributes": "{a: b}"},
            "attributes",
            'attributes must be a JSON object such as {"key": "value"}: Expecting property '
            "name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (
            {"project": "p-1", "topic": "topic-x", "data": "eA==", "timeout": "15s"},
            "timeout",
            "timeout '15s' must be whole seconds, e.g. 15",
        ),
        (
            {"project": "p-1", "topic": "topic-x", "data": "eA==", "endpoint": "h:443"},
            "endpoint",
            "unknown key",
        ),
    ],
)
def test_bad_config_is_rejected_naming_the_key(raw, key, message):
    with pytest.raises(ConfigError) as caught:
        executor.validate(raw)
    assert caught.value.errors[key] == message


def test_dkron_string_values_are_accepted():
    cfg = executor.validate(
        {
            "project": "p-1",
            "topic": "topic-x",
            "data": "aGVsbG8gd29ybGQ=",
            "attributes": '{"hello":"world","waka":"paka"}',
            "orderingKey": "",
            "timeout": "30",
        }
    )
    assert cfg.data == b"hello world"
    assert cfg.attributes == {"hello": "world", "waka": "paka"}
    assert cfg.timeout == 30
