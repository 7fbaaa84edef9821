"""The nats executor against real nats-server instances (the machine's on 4222 and private ones
for passwords, permissions and max_payload), and a stand-in for a server that never confirms."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from typing import Any

import nats
import pytest

from executors.base import ConfigError, ExecutionContext, ExecutorError
from executors.nats import DEFAULT_TIMEOUT, NatsConfig, NatsExecutor
from executors.output import OutputSink
from executors.registry import SECRET_MASK, mask_secrets
from tests.executors import fire
from tests.executors.servers_nats import (
    MAX_PAYLOAD,
    PASSWORD,
    PERMS_PASSWORD,
    PERMS_USER,
    USER,
    NatsServer,
    NatsStandIn,
    receive,
)

executor = NatsExecutor()


def make_context(config: dict[str, Any], **ctx_args: Any) -> ExecutionContext:
    return ExecutionContext(
        job_name="publish", config=executor.validate(config), output=OutputSink(), **ctx_args
    )


def run(config: dict[str, Any], **ctx_args: Any) -> tuple[ExecutionContext, ExecutorError | None]:
    ctx = make_context(config, **ctx_args)
    try:
        executor.execute(ctx)
    except ExecutorError as exc:
        return ctx, exc
    return ctx, None


def subject() -> str:
    return f"dkronweb.test.{uuid.uuid4().hex[:10]}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- publishing ------------------------------------------------------------------------------


def test_a_message_is_published_and_arrives_on_the_subject(nats_local: str) -> None:
    on = subject()
    config = {"url": nats_local, "subject": on, "message": '{"hello": "world"}'}
    (ctx, error), message = receive(nats_local, on, lambda: run(config))
    assert error is None
    assert message is not None
    assert message.data == b'{"hello": "world"}'
    assert ctx.output.text() == (
        f"Result: Message successfully sent (subject {on!r}, 18 bytes, flushed to 127.0.0.1:4222)\n"
    )


def test_two_attempts_of_one_fire_carry_the_same_fire_key_header(nats_local: str) -> None:
    seen = []
    for args in fire.attempts():
        on = subject()
        config = {"url": nats_local, "subject": on, "message": "tick"}
        (_, error), message = receive(nats_local, on, lambda c=config, a=args: run(c, **a))
        assert error is None and message is not None
        seen.append(message.headers)
    first, retry = seen
    assert first["Idempotency-Key"] == retry["Idempotency-Key"] == fire.key("publish")
    assert first["X-Dkron-Scheduled-Time"] == fire.SCHEDULED_TEXT
    assert (first["X-Dkron-Attempt"], retry["X-Dkron-Attempt"]) == ("1", "2")
    assert first["Nats-Msg-Id"] == retry["Nats-Msg-Id"] == fire.key("publish")


def test_a_jetstream_stream_stores_a_fire_once_when_its_retry_publishes_again(
    nats_jetstream: NatsServer,
) -> None:
    # The retry of an attempt whose flush was lost publishes the same message again: the
    # stream deduplicates on Nats-Msg-Id, the fire key.
    on = subject()

    async def stream(action: str) -> int:
        client = await nats.connect(nats_jetstream.url)
        try:
            js = client.jetstream()
            name = on.replace(".", "-")
            if action == "create":
                await js.add_stream(name=name, subjects=[on])
            return int((await js.stream_info(name)).state.messages)
        finally:
            await client.close()

    asyncio.run(stream("create"))
    for args in fire.attempts():
        _, error = run({"url": nats_jetstream.url, "subject": on, "message": "tick"}, **args)
        assert error is None
    assert asyncio.run(stream("count")) == 1
    other = {"scheduled_at": fire.SCHEDULED_AT.replace(hour=11), "execution_id": "201"}
    _, error = run({"url": nats_jetstream.url, "subject": on}, **other)
    assert error is None
    assert asyncio.run(stream("count")) == 2  # another fire is another message


def test_an_empty_message_is_published_too(nats_local: str) -> None:
    on = subject()
    (_, error), message = receive(nats_local, on, lambda: run({"url": nats_local, "subject": on}))
    assert error is None
    assert message is not None and message.data == b""


def test_the_right_password_is_accepted(nats_auth: NatsServer) -> None:
    on = subject()
    config = {
        "url": nats_auth.url,
        "subject": on,
        "message": "with credentials",
        "userName": USER,
        "password": PASSWORD,
    }
    (_, error), message = receive(
        nats_auth.url, on, lambda: run(config), user=USER, password=PASSWORD
    )
    assert error is None
    assert message is not None and message.data == b"with credentials"


def test_a_down_server_in_the_list_is_skipped(nats_local: str) -> None:
    on = subject()
    config = {"url": f"nats://127.0.0.1:{closed_port()},{nats_local}", "subject": on}
    (_, error), message = receive(nats_local, on, lambda: run(config))
    assert error is None
    assert message is not None


def test_debug_prepends_the_config_with_the_password_masked(nats_auth: NatsServer) -> None:
    config = {
        "url": nats_auth.url,
        "subject": subject(),
        "userName": USER,
        "password": PASSWORD + "-secret",
        "debug": "true",
    }
    ctx, error = run(config)
    assert error is not None  # wrong password, on purpose: a failure must not leak it either
    output = ctx.output.text()
    assert output.startswith("Config: {")
    assert '"password": "********"' in output
    assert "-secret" not in output + error.message


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "who"),
    [({"userName": USER, "password": "wrong"}, "'u'"), ({}, "'(none)'")],
)
def test_bad_credentials_fail_with_an_authorization_violation_and_no_retry(
    nats_auth: NatsServer, credentials: dict[str, str], who: str
) -> None:
    _, error = run({"url": nats_auth.url, "subject": "a.b", **credentials})
    assert error is not None
    assert error.message == f"nats: authorization violation: {nats_auth.url} refused user {who}"
    assert (error.status, error.retryable) == ("failed", False)


def test_a_closed_port_fails_saying_it_cannot_connect() -> None:
    port = closed_port()
    started = time.monotonic()
    _, error = run({"url": f"nats://127.0.0.1:{port}", "subject": "a.b"})
    assert time.monotonic() - started < 2
    assert error is not None
    assert error.message == f"nats: cannot connect to nats://127.0.0.1:{port}: connection refused"
    assert (error.status, error.retryable) == ("failed", True)


def test_a_publish_the_server_forbids_fails_naming_the_violation(
    nats_limited: NatsServer,
) -> None:
    # Dkron ignores this error and reports success; the server says it before the flush's PONG.
    config = {
        "url": nats_limited.url,
        "subject": "forbidden.jobs",
        "userName": PERMS_USER,
        "password": PERMS_PASSWORD,
    }
    _, error = run(config)
    assert error is not None
    assert error.message == (
        "nats: the server refused the publish on 'forbidden.jobs': permissions violation for "
        'publish to "forbidden.jobs"'
    )
    assert (error.status, error.retryable) == ("failed", False)


def test_a_message_larger_than_the_servers_max_payload_fails(nats_limited: NatsServer) -> None:
    config = {
        "url": nats_limited.url,
        "subject": "allowed.jobs",
        "message": "x" * (MAX_PAYLOAD + 1),
        "userName": PERMS_USER,
        "password": PERMS_PASSWORD,
    }
    _, error = run(config)
    assert error is not None
    assert error.message == (
        f"nats: the message ({MAX_PAYLOAD + 1} bytes) is larger than the server's max_payload "
        f"({MAX_PAYLOAD} bytes)"
    )
    assert error.retryable is False


def test_a_flush_the_server_never_confirms_fails_with_a_timeout(
    nats_no_pong: NatsStandIn,
) -> None:
    # A real nats-server always answers PING; the stand-in does not, after the handshake.
    started = time.monotonic()
    _, error = run({"url": nats_no_pong.url, "subject": "a.b", "message": "m", "timeout": "1s"})
    assert time.monotonic() - started < 2
    assert error is not None
    assert error.message == (
        f"nats: the server 127.0.0.1:{nats_no_pong.port} did not confirm the flush within 1s"
    )
    assert (error.status, error.retryable) == ("timeout", True)
    assert b"PUB a.b " in nats_no_pong.received and b"\r\nm\r\n" in nats_no_pong.received


def test_a_server_that_never_answers_times_out(nats_silent: NatsStandIn) -> None:
    started = time.monotonic()
    _, error = run({"url": nats_silent.url, "subject": "a.b", "timeout": "1s"})
    assert time.monotonic() - started < 2
    assert error is not None
    assert error.message == f"nats: no server of {nats_silent.url} answered within 1s"
    assert (error.status, error.retryable) == ("timeout", True)


def test_the_agents_maximum_runtime_caps_the_timeout(nats_no_pong: NatsStandIn) -> None:
    started = time.monotonic()
    _, error = run({"url": nats_no_pong.url, "subject": "a.b"}, default_timeout=1)
    assert time.monotonic() - started < 2
    assert error is not None and error.status == "timeout"


def test_a_kill_during_the_flush_stops_at_once_and_is_not_retried(
    nats_no_pong: NatsStandIn,
) -> None:
    ctx = make_context({"url": nats_no_pong.url, "subject": "a.b"})
    threading.Timer(0.3, ctx.cancel.cancel, args=("killed",)).start()
    started = time.monotonic()
    with pytest.raises(ExecutorError) as info:
        executor.execute(ctx)
    assert time.monotonic() - started < 1.3
    assert info.value.message == (
        "nats: publishing on 'a.b' was killed (it may still have been delivered)"
    )
    assert (info.value.status, info.value.retryable) == ("killed", False)


def test_the_agents_time_limit_cancel_is_a_timeout(nats_silent: NatsStandIn) -> None:
    ctx = make_context({"url": nats_silent.url, "subject": "a.b"})
    threading.Timer(0.3, ctx.cancel.cancel, args=("timeout",)).start()
    with pytest.raises(ExecutorError) as info:
        executor.execute(ctx)
    assert (info.value.status, info.value.retryable) == ("timeout", True)


# --- config ----------------------------------------------------------------------------------


def test_config_accepts_dkrons_string_values() -> None:
    config = executor.validate(
        {
            "url": "nats://nats-1:4222, tls://nats-2:4443,nats-3",
            "subject": "jobs.done",
            "message": "",
            "userName": "",
            "password": "",
            "debug": "false",
        }
    )
    assert isinstance(config, NatsConfig)
    assert config.url == ["nats://nats-1:4222", "tls://nats-2:4443", "nats://nats-3:4222"]
    assert (config.user_name, config.password, config.debug) == ("", "", False)
    assert executor.timeout_seconds(config) == DEFAULT_TIMEOUT


@pytest.mark.parametrize(("timeout", "seconds"), [("2s", 2.0), ("45", 45.0), (3, 3.0)])
def test_timeout_takes_a_go_duration_or_seconds(timeout: Any, seconds: float) -> None:
    config = executor.validate({"url": "nats://n:4222", "subject": "s", "timeout": timeout})
    assert executor.timeout_seconds(config) == seconds


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"url": ""}, "url", "url is empty"),
        ({"url": "http://n:4222"}, "url", "nats://host:port or tls://host:port"),
        ({"url": "nats://user:pw@n:4222"}, "url", "must not hold credentials"),
        ({"url": "nats://n:4222/path"}, "url", "only scheme://host:port"),
        ({"url": "nats://n:99999"}, "url", "not valid"),
        ({"subject": ""}, "subject", "subject is empty"),
        ({"subject": "jobs.*"}, "subject", "no wildcards"),
        ({"subject": "jobs.>"}, "subject", "no wildcards"),
        ({"subject": "a..b"}, "subject", "no empty tokens"),
        ({"subject": "a b"}, "subject", "no spaces"),
        ({"password": "p"}, "userName", "needed with password"),
        ({"debug": "yes"}, "debug", "invalid boolean"),
        ({"timeout": "-1s"}, "timeout", "greater than zero"),
        ({"user": "u"}, "user", "unknown key"),
    ],
)
def test_config_rejects_bad_values_naming_the_key(
    raw: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        executor.validate({"url": "nats://n:4222", "subject": "s", **raw})
    assert key in info.value.errors
    assert message in info.value.errors[key]


def test_the_password_is_write_only() -> None:
    assert executor.secret_keys == frozenset({"password"})
    masked = mask_secrets("nats", {"url": "nats://n:4222", "password": "pw", "userName": "u"})
    assert masked == {"url": "nats://n:4222", "password": SECRET_MASK, "userName": "u"}
    config = executor.validate(
        {"url": "nats://n:4222", "subject": "s", "userName": "u", "password": "pw-9"}
    )
    assert "pw-9" not in repr(config)
