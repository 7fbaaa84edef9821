"""The rabbitmq executor against the machine's RabbitMQ (127.0.0.1:5672, guest/guest)."""

from __future__ import annotations

import base64
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from executors.base import ConfigError, ExecutionContext, ExecutorError
from executors.output import OutputSink
from executors.rabbitmq import DEFAULT_TIMEOUT, RabbitMQConfig, RabbitMQExecutor, parse_amqp_url
from executors.registry import SECRET_MASK, mask_secrets, merge_secrets
from tests.executors import fire
from tests.harness import reachable, require

URL = "amqp://guest:guest@127.0.0.1:5672/"
WRONG_PASSWORD = "not-the-Passw0rd"

executor = RabbitMQExecutor()


@pytest.fixture(scope="module")
def broker() -> Iterator[pika.BlockingConnection]:
    """A connection of the test's own, to set up queues and read what the executor sent."""
    require(reachable("127.0.0.1", 5672), "RabbitMQ at 127.0.0.1:5672 (guest/guest) is needed")
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    yield connection
    connection.close()


@pytest.fixture
def channel(broker: pika.BlockingConnection) -> Iterator[Any]:
    channel = broker.channel()
    yield channel
    if channel.is_open:
        channel.close()


@pytest.fixture
def queue(broker: pika.BlockingConnection) -> Iterator[str]:
    """A unique queue name; whatever the test or the executor created is deleted afterwards."""
    name = f"dkronweb-test-{uuid.uuid4().hex[:12]}"
    yield name
    cleanup = broker.channel()
    cleanup.queue_delete(name)
    cleanup.close()


def config(**raw: Any) -> RabbitMQConfig:
    return executor.validate({"url": URL, **raw})


def run(cfg: RabbitMQConfig, **ctx_args: Any) -> tuple[OutputSink, ExecutorError | None]:
    out = OutputSink()
    ctx = ExecutionContext(job_name="job", config=cfg, output=out, **ctx_args)
    try:
        executor.execute(ctx)
    except ExecutorError as exc:
        return out, exc
    return out, None


def get(channel: Any, queue: str) -> tuple[Any, bytes]:
    method, properties, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None, f"no message in {queue}"
    return properties, body


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A stand-in broker that accepts connections and never answers (RabbitMQ always answers,
    so a broker that hangs can only be had this way)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


# The fire key: message_id and headers, the same for every attempt of one fire.
def test_two_attempts_of_one_fire_carry_the_fire_key_as_message_id_and_header(channel, queue):
    cfg = config(**{"queue.name": queue, "queue.create": "true", "message.body": "tick"})
    for args in fire.attempts():
        _, error = run(cfg, **args)
        assert error is None
    (first, _), (retry, _) = get(channel, queue), get(channel, queue)
    assert first.message_id == retry.message_id == fire.key("job")
    assert first.headers["Idempotency-Key"] == retry.headers["Idempotency-Key"] == fire.key("job")
    assert first.headers["X-Dkron-Scheduled-Time"] == fire.SCHEDULED_TEXT
    assert (first.headers["X-Dkron-Attempt"], retry.headers["X-Dkron-Attempt"]) == ("1", "2")


def test_the_jobs_own_message_id_wins_over_the_fire_key(channel, queue):
    cfg = config(
        **{
            "queue.name": queue,
            "queue.create": "true",
            "message.messageId": "m-1",
            "message.body": "x",
        }
    )
    _, error = run(cfg, **fire.attempts()[0])
    assert error is None
    properties, _ = get(channel, queue)
    assert properties.message_id == "m-1"
    assert properties.headers["Idempotency-Key"] == fire.key("job")


# Success: the message is in the queue with the properties asked for.


def test_a_published_message_arrives_in_a_declared_queue_with_its_properties(channel, queue):
    cfg = config(
        **{
            "queue.name": queue,
            "queue.create": "true",
            "queue.durable": "true",
            "queue.auto_delete": "false",
            "queue.exclusive": "false",
            "message.content_type": "application/json",
            "message.delivery_mode": "2",
            "message.messageId": "4373732772",
            "message.body": '{"key":"value"}',
        }
    )
    out, error = run(cfg)
    assert error is None
    assert out.text() == (
        f"rabbitmq: published 15 bytes to the default exchange with routing key {queue!r} on "
        "127.0.0.1:5672 (vhost '/'), message id '4373732772'; the broker confirmed it\n"
    )
    properties, body = get(channel, queue)
    assert body == b'{"key":"value"}'
    assert properties.content_type == "application/json"
    assert properties.delivery_mode == 2
    assert properties.message_id == "4373732772"
    # The queue was declared durable: declaring it transient now is refused by the broker.
    with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="inequivalent arg 'durable'"):
        channel.queue_declare(queue, durable=False)


def test_a_base64_body_is_sent_as_raw_bytes_with_default_properties(channel, queue):
    payload = bytes(range(256))
    cfg = config(
        **{
            "queue.name": queue,
            "queue.create": "true",
            "message.base64Body": base64.b64encode(payload).decode(),
        }
    )
    assert run(cfg)[1] is None
    properties, body = get(channel, queue)
    assert body == payload
    assert properties.content_type == "text/plain"
    assert properties.delivery_mode is None  # Dkron's 0: not set
    assert properties.message_id is None


def test_an_existing_queue_is_used_without_declaring_it(channel, queue):
    channel.queue_declare(queue, arguments={"x-max-length": 10})
    assert run(config(**{"queue.name": queue, "message.body": "hello"}))[1] is None
    assert get(channel, queue)[1] == b"hello"


def test_amq_default_is_read_as_the_default_exchange_as_dkrons_ui_writes_it(channel, queue):
    channel.queue_declare(queue)
    cfg = config(**{"exchange": "amq.default", "queue.name": queue, "message.body": "hi"})
    out, error = run(cfg)
    assert error is None
    assert "the default exchange" in out.text()
    assert get(channel, queue)[1] == b"hi"


def test_a_named_exchange_routes_by_the_queue_name_as_routing_key(channel, queue):
    exchange = f"{queue}-ex"
    channel.exchange_declare(exchange, exchange_type="direct", auto_delete=True)
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange, routing_key=queue)
    cfg = config(**{"exchange": exchange, "queue.name": queue, "message.body": "routed"})
    out, error = run(cfg)
    assert error is None
    assert f"exchange {exchange!r} with routing key {queue!r}" in out.text()
    assert get(channel, queue)[1] == b"routed"


def test_dkron_string_values_and_blank_keys_mean_their_defaults():
    cfg = executor.validate(
        {
            "url": URL,
            "exchange": "",
            "queue.name": "q",
            "queue.create": "",
            "queue.durable": "1",
            "message.content_type": "",
            "message.delivery_mode": "",
            "message.messageId": "",
            "message.body": "x",
            "message.base64Body": "",
        }
    )
    assert cfg.queue_create is False
    assert cfg.queue_durable is True
    assert cfg.content_type == "text/plain"
    assert cfg.delivery_mode == 0
    assert cfg.payload == b"x"


# Failures, one per way a publish can fail.


def test_a_queue_that_does_not_exist_fails_as_unroutable_instead_of_vanishing(queue):
    out, error = run(config(**{"queue.name": queue, "message.body": "lost?"}))
    assert error is not None and error.status == "failed" and error.retryable
    assert error.message == (
        f"rabbitmq: queue {queue!r} does not exist on 127.0.0.1:5672 (vhost '/'): the broker "
        "returned the message as unroutable (set queue.create to declare the queue)"
    )
    assert out.text() == ""


def test_an_exchange_that_does_not_exist_fails_naming_it(queue):
    cfg = config(**{"exchange": "no-such-exchange", "queue.name": queue, "message.body": "x"})
    error = run(cfg)[1]
    assert error is not None
    assert error.message == (
        "rabbitmq: exchange 'no-such-exchange' does not exist on 127.0.0.1:5672 (vhost '/') "
        "(NOT_FOUND - no exchange 'no-such-exchange' in vhost '/')"
    )


def test_an_exchange_with_no_binding_for_the_routing_key_fails_as_unroutable(queue):
    cfg = config(**{"exchange": "amq.direct", "queue.name": queue, "message.body": "x"})
    error = run(cfg)[1]
    assert error is not None
    assert error.message.startswith(
        f"rabbitmq: exchange 'amq.direct' on 127.0.0.1:5672 (vhost '/') routes nothing for "
        f"routing key {queue!r}: the broker returned the message as unroutable"
    )


def test_a_message_the_broker_nacks_fails_as_not_confirmed(channel, queue):
    # A full queue that rejects publishes is how RabbitMQ is made to send basic.nack.
    channel.queue_declare(queue, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    error = run(config(**{"queue.name": queue, "message.body": "x"}))[1]
    assert error is not None and error.status == "failed"
    assert error.message.startswith(
        "rabbitmq: the broker did not confirm the message (nack) on 127.0.0.1:5672"
    )


def test_declaring_an_existing_queue_with_other_flags_fails_without_retry(channel, queue):
    channel.queue_declare(queue, durable=False)
    cfg = config(
        **{"queue.name": queue, "queue.create": "true", "queue.durable": "true"},
        **{"message.body": "x"},
    )
    error = run(cfg)[1]
    assert error is not None and not error.retryable
    assert "PRECONDITION_FAILED - inequivalent arg 'durable'" in error.message


def test_a_wrong_password_is_refused_and_the_password_is_never_shown():
    url = f"amqp://guest:{WRONG_PASSWORD}@127.0.0.1:5672/"
    require(reachable("127.0.0.1", 5672), "RabbitMQ at 127.0.0.1:5672 is needed")
    cfg = executor.validate({"url": url, "queue.name": "q", "message.body": "x"})
    out, error = run(cfg)
    assert error is not None and error.status == "failed" and not error.retryable
    assert error.message == (
        "rabbitmq: 127.0.0.1:5672 (vhost '/') refused the login of user 'guest' "
        "(ACCESS_REFUSED: wrong user name or password)"
    )
    assert WRONG_PASSWORD not in error.message + out.text()


def test_an_unknown_vhost_is_refused_naming_it():
    require(reachable("127.0.0.1", 5672), "RabbitMQ at 127.0.0.1:5672 is needed")
    cfg = executor.validate(
        {
            "url": "amqp://guest:guest@127.0.0.1/no-such-vhost",
            "queue.name": "q",
            "message.body": "x",
        }
    )
    error = run(cfg)[1]
    assert error is not None and not error.retryable
    assert error.message == (
        "rabbitmq: 127.0.0.1:5672 refused user 'guest' access to vhost 'no-such-vhost': "
        "NOT_ALLOWED - vhost no-such-vhost not found"
    )


def test_a_broker_that_is_not_listening_fails_with_cannot_connect():
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # a port that was free a moment ago and is closed now
    cfg = executor.validate(
        {"url": f"amqp://guest:{WRONG_PASSWORD}@127.0.0.1:{port}/", "queue.name": "q"}
        | {"message.body": "x"}
    )
    out, error = run(cfg)
    assert error is not None and error.status == "failed" and error.retryable
    assert error.message == (
        f"rabbitmq: cannot connect to 127.0.0.1:{port} (vhost '/'): Connection refused"
    )
    assert WRONG_PASSWORD not in error.message + out.text()


def test_a_broker_that_never_answers_times_out_within_the_agents_limit(blackhole):
    cfg = executor.validate(
        {"url": f"amqp://guest:guest@127.0.0.1:{blackhole}/", "queue.name": "q"}
        | {"message.body": "x"}
    )
    started = time.monotonic()
    error = run(cfg, default_timeout=0.5)[1]
    assert time.monotonic() - started < 2
    assert error is not None and error.status == "timeout" and error.retryable
    assert error.message == (
        f"rabbitmq: timeout after 500ms while connecting to 127.0.0.1:{blackhole} (vhost '/')"
    )


def test_a_kill_stops_a_publish_at_once_and_is_not_retried(blackhole):
    cfg = executor.validate(
        {"url": f"amqp://guest:guest@127.0.0.1:{blackhole}/", "queue.name": "q"}
        | {"message.body": "x"}
    )
    ctx = ExecutionContext(job_name="job", config=cfg, output=OutputSink())
    threading.Timer(0.3, ctx.cancel.cancel, args=("killed",)).start()
    started = time.monotonic()
    with pytest.raises(ExecutorError) as caught:
        executor.execute(ctx)
    assert time.monotonic() - started < 1
    assert caught.value.status == "killed" and not caught.value.retryable
    assert caught.value.message == (
        f"rabbitmq: publish was killed while connecting to 127.0.0.1:{blackhole} (vhost '/')"
    )


def test_the_agents_soft_time_limit_is_reported_as_a_timeout(blackhole):
    cfg = executor.validate(
        {"url": f"amqp://guest:guest@127.0.0.1:{blackhole}/", "queue.name": "q"}
        | {"message.body": "x"}
    )
    ctx = ExecutionContext(job_name="job", config=cfg, output=OutputSink())
    ctx.cancel.cancel("timeout")
    with pytest.raises(ExecutorError) as caught:
        executor.execute(ctx)
    assert caught.value.status == "timeout"


def test_the_time_limit_is_thirty_seconds_as_dkron_has_no_timeout_key():
    assert executor.timeout_seconds(config(**{"queue.name": "q", "message.body": "x"})) == 30.0
    assert DEFAULT_TIMEOUT == 30.0


# Config is checked at save time, naming the key.


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"queue.name": "q", "message.body": "x"}, "url", "Field required"),
        ({"url": "", "queue.name": "q", "message.body": "x"}, "url", "url is empty"),
        (
            {"url": "http://guest:guest@host/", "queue.name": "q", "message.body": "x"},
            "url",
            "url must be an amqp:// or amqps:// URI",
        ),
        (
            {"url": "amqp://guest:guest@host:99999/", "queue.name": "q", "message.body": "x"},
            "url",
            "url is not a valid AMQP URI (amqp://user:password@host:5672/vhost)",
        ),
        (
            {"url": "amqp://guest:guest@host/?heartbeat=5", "queue.name": "q"}
            | {"message.body": "x"},
            "url",
            "url query parameters are not supported (amqps:// uses the agent's system CA "
            "certificates)",
        ),
        ({"url": URL, "message.body": "x"}, "queue.name", "Field required"),
        ({"url": URL, "queue.name": " ", "message.body": "x"}, "queue.name", "queue.name is empty"),
        ({"url": URL, "queue.name": "q"}, "message.body", "set message.body or message.base64Body"),
        (
            {"url": URL, "queue.name": "q", "message.body": "x", "message.base64Body": "eA=="},
            "message.body",
            "set message.body or message.base64Body, not both",
        ),
        (
            {"url": URL, "queue.name": "q", "message.base64Body": "not base64!"},
            "message.base64Body",
            "message.base64Body is not valid base64: Only base64 data is allowed",
        ),
        (
            {"url": URL, "queue.name": "q", "message.body": "x", "message.delivery_mode": "3"},
            "message.delivery_mode",
            "message.delivery_mode '3' must be 1 (transient) or 2 (persistent); 0 or empty "
            "leaves it unset",
        ),
        (
            {"url": URL, "queue.name": "q", "message.body": "x", "queue.create": "yes"},
            "queue.create",
            "invalid boolean 'yes': expected true or false (also 1, t, T, TRUE, True, 0, f, F, "
            "FALSE, False)",
        ),
        (
            {"url": URL, "queue.name": "q", "message.body": "x"}
            | {"queue.create": "true", "queue.exclusive": "true"},
            "queue.exclusive",
            "an exclusive queue belongs to the job's own connection and is deleted when the "
            "job ends, taking the message with it",
        ),
        (
            {"url": URL, "queue.name": "q", "message.body": "x", "queue": "q"},
            "queue",
            "unknown key",
        ),
    ],
)
def test_bad_config_is_rejected_naming_the_key(raw, key, message):
    with pytest.raises(ConfigError) as caught:
        executor.validate(raw)
    assert caught.value.errors[key] == message


def test_a_rejected_url_never_repeats_its_password():
    with pytest.raises(ConfigError) as caught:
        executor.validate(
            {"url": f"amqp://guest:{WRONG_PASSWORD}@host:0x/", "queue.name": "q"}
            | {"message.body": "x"}
        )
    assert WRONG_PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("amqp://host", ("host", 5672, "/", "guest", "guest", False)),
        ("amqp://u:p@host/", ("host", 5672, "/", "u", "p", False)),
        ("amqp://u@host:1234/%2F", ("host", 1234, "/", "u", "guest", False)),
        ("amqps://u:p%40ss@host/prod", ("host", 5671, "prod", "u", "p@ss", True)),
        ("AMQP://u:p@[::1]:5673/a%2Fb", ("::1", 5673, "a/b", "u", "p", False)),
    ],
)
def test_the_url_is_read_as_dkrons_amqp_library_reads_it(url, parsed):
    a = parse_amqp_url(url)
    assert (a.host, a.port, a.vhost, a.username, a.password, a.tls) == parsed


# Secrets: the URL carries the password, so the whole URL is write-only.


def test_the_urls_password_is_masked_in_api_responses_and_kept_when_sent_back_masked():
    stored = {"url": f"amqp://guest:{WRONG_PASSWORD}@host/", "queue.name": "q"}
    shown = mask_secrets("rabbitmq", stored)
    assert shown == {"url": f"amqp://guest:{SECRET_MASK}@host/", "queue.name": "q"}
    assert merge_secrets("rabbitmq", shown, stored)["url"] == stored["url"]
    # A client holding the whole-URL mask of older versions keeps it too.
    assert merge_secrets("rabbitmq", {**shown, "url": SECRET_MASK}, stored) == stored


def test_a_successful_run_never_prints_the_password(queue):
    cfg = config(**{"queue.name": queue, "queue.create": "true", "message.body": "x"})
    out, error = run(cfg)
    assert error is None
    assert "guest:guest" not in out.text() and ":guest@" not in out.text()
