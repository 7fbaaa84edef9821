"""The kafka executor against a real Kafka-protocol broker (tansu), and a proxy in front of it
for what tansu cannot do: TLS, refusing a SASL login, and not confirming a message."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from typing import Any

import pytest

from executors.base import ConfigError, ExecutionContext, ExecutorError
from executors.kafka import DEFAULT_TIMEOUT, KafkaConfig, KafkaExecutor
from executors.output import OutputSink
from executors.registry import SECRET_MASK, mask_secrets
from tests.executors import fire
from tests.executors.servers_kafka import KafkaProxy, KafkaServer

executor = KafkaExecutor()
PASSWORD = "s3cret-Pa55"


def make_context(config: dict[str, Any], **ctx_args: Any) -> ExecutionContext:
    return ExecutionContext(
        job_name="produce", config=executor.validate(config), output=OutputSink(), **ctx_args
    )


def run(config: dict[str, Any], **ctx_args: Any) -> tuple[ExecutionContext, ExecutorError | None]:
    ctx = make_context(config, **ctx_args)
    try:
        executor.execute(ctx)
    except ExecutorError as exc:
        return ctx, exc
    return ctx, None


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- producing -------------------------------------------------------------------------------


def test_a_message_arrives_with_its_key_value_and_headers(kafka: KafkaServer) -> None:
    topic = kafka.new_topic()
    ctx, error = run(
        {
            "brokerAddress": kafka.address,
            "topic": topic,
            "key": "order-42",
            "message": '{"hello": "world"}',
            "headers": json.dumps(["Source: dkron", "At: 12:30:00", "Source: again"]),
        }
    )
    assert error is None
    assert ctx.output.text() == (
        "Result: successfully produced the message on Kafka broker "
        f"(topic {topic!r}, partition 0, offset 0)\n"
    )
    [record] = kafka.records(topic)
    assert record.key == b"order-42"
    assert record.value == b'{"hello": "world"}'
    assert list(record.headers) == [
        ("Source", b"dkron"),
        ("At", b"12:30:00"),
        ("Source", b"again"),
    ]


def test_two_attempts_of_one_fire_carry_the_same_fire_key_header(kafka: KafkaServer) -> None:
    topic = kafka.new_topic()
    config = {"brokerAddress": kafka.address, "topic": topic, "headers": '["Source: dkron"]'}
    for args in fire.attempts():
        _, error = run(config, **args)
        assert error is None
    first, retry = (dict(record.headers) for record in kafka.records(topic, 2))
    assert first["Source"] == b"dkron"
    assert first["Idempotency-Key"] == retry["Idempotency-Key"] == fire.key("produce").encode()
    assert first["X-Dkron-Scheduled-Time"] == fire.SCHEDULED_TEXT.encode()
    assert (first["X-Dkron-Attempt"], retry["X-Dkron-Attempt"]) == (b"1", b"2")


def test_the_jobs_own_idempotency_key_header_wins(kafka: KafkaServer) -> None:
    topic = kafka.new_topic()
    headers = json.dumps({"Idempotency-Key": "order-42"})
    _, error = run(
        {"brokerAddress": kafka.address, "topic": topic, "headers": headers}, **fire.attempts()[0]
    )
    assert error is None
    [record] = kafka.records(topic)
    assert [v for k, v in record.headers if k == "Idempotency-Key"] == [b"order-42"]


def test_headers_may_be_a_json_object(kafka: KafkaServer) -> None:
    topic = kafka.new_topic()
    headers = json.dumps({"trace-id": "abc:1", "kind": "tick"})
    _, error = run({"brokerAddress": kafka.address, "topic": topic, "headers": headers})
    assert error is None
    [record] = kafka.records(topic)
    assert list(record.headers) == [("trace-id", b"abc:1"), ("kind", b"tick")]


def test_without_a_key_the_record_has_no_key(kafka: KafkaServer) -> None:
    topic = kafka.new_topic()
    _, error = run({"brokerAddress": kafka.address, "topic": topic, "message": "tick"})
    assert error is None
    [record] = kafka.records(topic)
    assert (record.key, record.value, list(record.headers)) == (None, b"tick", [])


def test_a_down_broker_in_the_list_is_skipped(kafka: KafkaServer) -> None:
    topic = kafka.new_topic()
    brokers = f"127.0.0.1:{closed_port()}, {kafka.address}"
    _, error = run({"brokerAddress": brokers, "topic": topic, "message": "m", "timeout": "10s"})
    assert error is None
    assert [r.value for r in kafka.records(topic)] == [b"m"]


def test_debug_prepends_the_config_and_the_topic(kafka: KafkaServer) -> None:
    topic = kafka.new_topic()
    ctx, error = run({"brokerAddress": kafka.address, "topic": topic, "debug": "true"})
    assert error is None
    lines = ctx.output.text().splitlines()
    shown = json.loads(lines[0].removeprefix("Config: "))
    assert shown["brokerAddress"] == kafka.address
    assert shown["topic"] == topic
    assert lines[1] == f"Topic {topic!r} has 1 partition(s)"
    assert lines[2].startswith("Result: successfully produced")


# --- failures --------------------------------------------------------------------------------


def test_a_missing_topic_is_created_by_the_broker_as_with_dkron(kafka: KafkaServer) -> None:
    # tansu creates a topic whenever a metadata request allows it, as Kafka does by default.
    topic = f"made-{uuid.uuid4().hex[:8]}"
    ctx, error = run({"brokerAddress": kafka.address, "topic": topic, "message": "m"})
    assert error is None, error
    result = re.fullmatch(
        rf"Result: successfully produced the message on Kafka broker \(topic {topic!r}, "
        r"partition (\d+), offset 0\)\n",
        ctx.output.text(),
    )
    assert result, ctx.output.text()
    assert topic in kafka.topics()
    records = kafka.records(topic, partition_index=int(result.group(1)))
    assert [r.value for r in records] == [b"m"]


def test_create_topic_false_fails_on_a_missing_topic_and_does_not_create_it(
    kafka: KafkaServer,
) -> None:
    config = {"brokerAddress": kafka.address, "topic": "no-such-topic", "createTopic": "false"}
    ctx, error = run({**config, "message": "m"})
    assert error is not None
    assert error.message == (
        f"kafka: topic 'no-such-topic' does not exist on {kafka.address} (createTopic is \"false\")"
    )
    assert (error.status, error.retryable) == ("failed", True)
    assert "no-such-topic" not in kafka.topics()


def test_create_topic_false_still_produces_to_an_existing_topic(kafka: KafkaServer) -> None:
    topic = kafka.new_topic()
    _, error = run({"brokerAddress": kafka.address, "topic": topic, "createTopic": "false"})
    assert error is None
    assert len(kafka.records(topic)) == 1


def test_a_broker_that_does_not_create_topics_fails_at_once_saying_so(
    kafka_proxy: KafkaProxy,
) -> None:
    kafka_proxy.mode = "no_auto_create"
    started = time.monotonic()
    _, error = run({"brokerAddress": kafka_proxy.address, "topic": "not-made", "timeout": "20s"})
    assert error is not None
    assert error.message == (
        f"kafka: topic 'not-made' does not exist on {kafka_proxy.address} and the broker "
        "does not create topics (auto.create.topics.enable is off)"
    )
    assert error.status == "failed"
    assert time.monotonic() - started < 5  # not at the timeout
    kafka_proxy.mode = "forward"
    assert "not-made" not in KafkaServer(kafka_proxy.address).topics()


def test_a_closed_port_fails_saying_it_cannot_connect() -> None:
    port = closed_port()
    started = time.monotonic()
    _, error = run({"brokerAddress": f"127.0.0.1:{port}", "topic": "t", "timeout": "1s"})
    assert time.monotonic() - started < 2
    assert error is not None
    assert error.message == f"kafka: cannot connect to 127.0.0.1:{port}: connection refused"
    assert (error.status, error.retryable) == ("failed", True)


@pytest.mark.parametrize(
    ("mechanism", "sent"),
    [("sha256", b"n=alice,"), ("sha512", b"n=alice,"), ("plain", b"\x00alice\x00")],
)
def test_a_refused_sasl_login_fails_without_retry(
    kafka_proxy: KafkaProxy, mechanism: str, sent: bytes
) -> None:
    # tansu 0.6 cannot hold SCRAM users that a test could create, so the proxy refuses the
    # login the way Kafka does (SASL_AUTHENTICATION_FAILED); the client side is all real.
    kafka_proxy.mode = "refuse_sasl"
    config = {
        "brokerAddress": kafka_proxy.address,
        "topic": "t",
        "saslUsername": "alice",
        "saslPassword": PASSWORD,
        "saslMechanism": mechanism,
        "timeout": "5s",
    }
    started = time.monotonic()
    ctx, error = run(config)
    assert time.monotonic() - started < 5
    assert error is not None
    assert error.message.startswith(f"kafka: authentication refused by {kafka_proxy.address}: ")
    assert "Invalid username or password" in error.message
    assert (error.status, error.retryable) == ("failed", False)
    # An earlier case's abandoned client may still be retrying its own login (it ends at its
    # own deadline), so look for this mechanism's frame among all the logins seen.
    assert any(sent in login for login in kafka_proxy.sasl_logins)
    assert PASSWORD not in error.message + ctx.output.text()


def test_the_sasl_password_never_reaches_the_output(kafka_proxy: KafkaProxy) -> None:
    kafka_proxy.mode = "refuse_sasl"
    config = {
        "brokerAddress": kafka_proxy.address,
        "topic": "t",
        "saslUsername": "alice",
        "saslPassword": PASSWORD,
        "saslMechanism": "plain",
        "debug": "true",
        "timeout": "5s",
    }
    ctx, error = run(config)
    assert error is not None
    output = ctx.output.text()
    assert '"saslPassword": "********"' in output
    assert "Warning: SASL PLAIN without tlsEnable sends the password in clear" in output
    assert PASSWORD not in output + error.message
    assert mask_secrets("kafka", config)["saslPassword"] == SECRET_MASK


def test_a_broker_that_does_not_confirm_fails_with_a_timeout(kafka_proxy: KafkaProxy) -> None:
    topic = KafkaServer(kafka_proxy.address).new_topic()
    kafka_proxy.mode = "swallow_produce"
    started = time.monotonic()
    _, error = run({"brokerAddress": kafka_proxy.address, "topic": topic, "timeout": "1s"})
    assert time.monotonic() - started < 2
    assert error is not None
    assert error.message == "kafka: the broker did not confirm the message within 1s (acks=all)"
    assert (error.status, error.retryable) == ("timeout", True)


def test_a_broker_that_never_answers_times_out(kafka_proxy: KafkaProxy) -> None:
    kafka_proxy.mode = "blackhole"
    started = time.monotonic()
    _, error = run({"brokerAddress": kafka_proxy.address, "topic": "t", "timeout": "1s"})
    assert time.monotonic() - started < 2
    assert error is not None
    assert error.message == f"kafka: no broker of {kafka_proxy.address} answered within 1s"
    assert (error.status, error.retryable) == ("timeout", True)


def test_the_agents_maximum_runtime_caps_the_timeout(kafka_proxy: KafkaProxy) -> None:
    kafka_proxy.mode = "blackhole"
    started = time.monotonic()
    _, error = run({"brokerAddress": kafka_proxy.address, "topic": "t"}, default_timeout=1)
    assert time.monotonic() - started < 2
    assert error is not None
    assert error.status == "timeout"


def test_a_kill_while_waiting_for_the_ack_stops_at_once_and_is_not_retried(
    kafka_proxy: KafkaProxy,
) -> None:
    topic = KafkaServer(kafka_proxy.address).new_topic()
    kafka_proxy.mode = "swallow_produce"
    ctx = make_context({"brokerAddress": kafka_proxy.address, "topic": topic, "timeout": "2s"})
    threading.Timer(0.5, ctx.cancel.cancel, args=("killed",)).start()
    started = time.monotonic()
    with pytest.raises(ExecutorError) as info:
        executor.execute(ctx)
    assert time.monotonic() - started < 1.5
    assert info.value.message == (
        f"kafka: producing to {topic!r} was killed (it may still have been delivered)"
    )
    assert (info.value.status, info.value.retryable) == ("killed", False)


def test_the_agents_time_limit_cancel_is_a_timeout(kafka_proxy: KafkaProxy) -> None:
    kafka_proxy.mode = "blackhole"
    ctx = make_context({"brokerAddress": kafka_proxy.address, "topic": "t"})
    threading.Timer(0.3, ctx.cancel.cancel, args=("timeout",)).start()
    with pytest.raises(ExecutorError) as info:
        executor.execute(ctx)
    assert (info.value.status, info.value.retryable) == ("timeout", True)


# --- TLS (through the TLS proxy: tansu 0.6's own TLS listener does not start) ----------------


def test_tls_refuses_a_broker_whose_certificate_is_not_trusted(
    kafka_tls: tuple[KafkaServer, str],
) -> None:
    server, _ = kafka_tls
    config = {"brokerAddress": server.address, "topic": "t", "tlsEnable": "true", "timeout": "1s"}
    _, error = run(config)
    assert error is not None
    assert error.message.startswith(f"kafka: TLS handshake with {server.address} failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in error.message


def test_tls_insecure_skip_verify_accepts_an_untrusted_broker(
    kafka_tls: tuple[KafkaServer, str],
) -> None:
    server, _ = kafka_tls
    topic = server.new_topic()
    config = {
        "brokerAddress": server.address,
        "topic": topic,
        "message": "over tls",
        "tlsEnable": "true",
        "tlsInsecureSkipVerify": "true",
    }
    _, error = run(config)
    assert error is None
    assert [r.value for r in server.records(topic)] == [b"over tls"]


def test_tls_trusts_the_systems_certificate_store(
    kafka_tls: tuple[KafkaServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca_file = kafka_tls
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # what an operator's CA bundle would hold
    topic = server.new_topic()
    config = {"brokerAddress": server.address, "topic": topic, "tlsEnable": "true"}
    _, error = run(config)
    assert error is None
    assert len(server.records(topic)) == 1


# --- config ----------------------------------------------------------------------------------


def test_config_accepts_dkrons_string_values() -> None:
    config = executor.validate(
        {
            "brokerAddress": "kafka-1:9092, kafka-2:9093,[::1]:9094",
            "topic": "events.v1",
            "key": "",
            "message": "",
            "headers": "",
            "tlsEnable": "true",
            "tlsInsecureSkipVerify": "false",
            "saslUsername": "alice",
            "saslPassword": PASSWORD,
            "saslMechanism": "sha512",
            "debug": "",
            "createTopic": "false",
        }
    )
    assert isinstance(config, KafkaConfig)
    assert config.create_topic is False
    assert executor.validate({"brokerAddress": "k:9092", "topic": "t"}).create_topic is True
    assert config.broker_address == ["kafka-1:9092", "kafka-2:9093", "[::1]:9094"]
    assert (config.tls_enable, config.tls_insecure_skip_verify, config.debug) == (
        True,
        False,
        False,
    )
    assert config.sasl_mechanism == "SCRAM-SHA-512"
    assert config.headers == []
    assert executor.timeout_seconds(config) == DEFAULT_TIMEOUT


@pytest.mark.parametrize(
    ("mechanism", "expected"),
    [
        ("sha256", "SCRAM-SHA-256"),
        ("SHA512", "SCRAM-SHA-512"),
        ("SCRAM-SHA-256", "SCRAM-SHA-256"),
        ("plain", "PLAIN"),
    ],
)
def test_sasl_mechanisms_map_to_kafkas_names(mechanism: str, expected: str) -> None:
    config = executor.validate(
        {
            "brokerAddress": "k:9092",
            "topic": "t",
            "saslUsername": "u",
            "saslPassword": "p",
            "saslMechanism": mechanism,
        }
    )
    assert isinstance(config, KafkaConfig)
    assert config.sasl_mechanism == expected


@pytest.mark.parametrize(
    ("timeout", "seconds"), [("1m30s", 90.0), ("15", 15.0), (5, 5.0), ("1.5s", 1.5)]
)
def test_timeout_takes_a_go_duration_or_seconds(timeout: Any, seconds: float) -> None:
    config = executor.validate({"brokerAddress": "k:9092", "topic": "t", "timeout": timeout})
    assert executor.timeout_seconds(config) == seconds


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"brokerAddress": ""}, "brokerAddress", "brokerAddress is empty"),
        ({"brokerAddress": "kafka-1"}, "brokerAddress", "is not host:port"),
        ({"brokerAddress": "k:99999"}, "brokerAddress", "is not host:port"),
        ({"topic": ""}, "topic", "topic is empty"),
        ({"topic": "bad topic"}, "topic", "not a valid Kafka topic name"),
        ({"topic": ".."}, "topic", "not a valid Kafka topic name"),
        ({"headers": "X: y"}, "headers", "JSON array"),
        ({"headers": '["NoColon"]'}, "headers", 'not of the form "Name: value"'),
        ({"headers": '{"n": 1}'}, "headers", "string value"),
        ({"tlsEnable": "yes"}, "tlsEnable", "invalid boolean"),
        ({"createTopic": "no"}, "createTopic", "invalid boolean"),
        ({"tlsInsecureSkipVerify": "true"}, "tlsInsecureSkipVerify", "needs tlsEnable"),
        ({"saslUsername": "u"}, "saslPassword", "needed with saslUsername"),
        ({"saslPassword": "p"}, "saslUsername", "needed with saslPassword"),
        (
            {"saslUsername": "u", "saslPassword": "p"},
            "saslMechanism",
            "invalid SASL mechanism",
        ),
        ({"saslMechanism": "sha256"}, "saslMechanism", "needs saslUsername and saslPassword"),
        ({"saslMechanism": "md5"}, "saslMechanism", "invalid SASL mechanism 'md5'"),
        ({"timeout": "soon"}, "timeout", "invalid duration"),
        ({"timeout": "0s"}, "timeout", "greater than zero"),
        ({"brokers": "k:9092"}, "brokers", "unknown key"),
    ],
)
def test_config_rejects_bad_values_naming_the_key(
    raw: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        executor.validate({"brokerAddress": "k:9092", "topic": "t", **raw})
    assert key in info.value.errors
    assert message in info.value.errors[key]


def test_config_requires_broker_address_and_topic() -> None:
    with pytest.raises(ConfigError) as info:
        executor.validate({})
    assert set(info.value.errors) == {"brokerAddress", "topic"}


def test_the_sasl_password_is_the_only_secret_and_stays_out_of_reprs() -> None:
    assert executor.secret_keys == frozenset({"saslPassword"})
    config = executor.validate(
        {
            "brokerAddress": "k:9092",
            "topic": "t",
            "saslUsername": "u",
            "saslPassword": PASSWORD,
            "saslMechanism": "sha256",
        }
    )
    assert PASSWORD not in repr(config)
