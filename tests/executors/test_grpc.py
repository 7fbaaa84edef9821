"""The grpc executor against real grpcio servers on loopback, described only by reflection."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme

from executors.base import ConfigError, ExecutionContext, ExecutorError
from executors.grpc import GrpcConfig, GrpcExecutor
from executors.output import OutputSink
from tests.executors import fire
from tests.executors.servers_grpc import GreeterServer, serving


@pytest.fixture(scope="session")
def greeter() -> Iterator[GreeterServer]:
    """The usual setup: grpcio's own (v1alpha) reflection service."""
    with serving("v1alpha") as server:
        yield server


@pytest.fixture(scope="session")
def no_reflection() -> Iterator[GreeterServer]:
    with serving(None) as server:
        yield server


@pytest.fixture(scope="session")
def v1_only() -> Iterator[GreeterServer]:
    with serving("v1") as server:
        yield server


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_greeter(ca: trustme.CA) -> Iterator[GreeterServer]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    credentials = grpc.ssl_server_credentials(
        [(cert.private_key_pem.bytes(), cert.cert_chain_pems[0].bytes())]
    )
    with serving("v1alpha", credentials) as server:
        yield server


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("grpc-pki") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def make_context(config: dict[str, Any], **kwargs: Any) -> ExecutionContext:
    return ExecutionContext(
        job_name="call", config=GrpcExecutor().validate(config), output=OutputSink(), **kwargs
    )


def run(config: dict[str, Any], **kwargs: Any) -> tuple[ExecutionContext, ExecutorError | None]:
    ctx = make_context(config, **kwargs)
    try:
        GrpcExecutor().execute(ctx)
    except ExecutorError as exc:
        return ctx, exc
    return ctx, None


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- successful calls ------------------------------------------------------------------------


def test_a_call_succeeds_and_the_server_receives_the_body_and_metadata(
    greeter: GreeterServer,
) -> None:
    body = {
        "name": "Ada",
        "tags": ["a", "b", "c"],
        "address": {"city": "London", "zip": 1815},
        "sentAt": "2024-05-01T12:30:00Z",
        "mood": "HAPPY",
    }
    headers = ["x-request-id: r-1", "x-callback: https://example.org:8443/hook", "X-Upper: Yes"]
    ctx, error = run(
        {
            "url": greeter.url("SayHello"),
            "body": json.dumps(body),
            "headers": json.dumps(headers),
        }
    )
    assert error is None, error.message

    received = greeter.servicer.last("SayHello")
    assert received.request == {
        "name": "Ada",
        "tags": ["a", "b", "c"],
        "address": {"city": "London", "zip": 1815},
        "sent_at": "2024-05-01T12:30:00Z",
        "mood": "HAPPY",
    }
    assert received.metadata["x-request-id"] == "r-1"
    assert received.metadata["x-callback"] == "https://example.org:8443/hook"
    assert received.metadata["x-upper"] == "Yes"
    assert received.metadata["user-agent"].startswith("dkronweb-grpc-executor")

    output = json.loads(ctx.output.text())
    assert output["message"] == "Hello, Ada!"
    assert output["tagCount"] == 3
    assert output["metadata"]["x-request-id"] == "r-1"
    assert ctx.output.text().endswith("}\n")


def test_headers_may_be_a_json_object_and_binary_headers_are_sent_as_bytes(
    greeter: GreeterServer,
) -> None:
    ctx, error = run(
        {
            "url": greeter.url("SayHello"),
            "body": '{"name": "obj"}',
            "headers": json.dumps({"x-tenant": "t1", "x-blob-bin": "AAEC/w=="}),
        }
    )
    assert error is None
    received = greeter.servicer.last("SayHello")
    assert received.request == {"name": "obj"}
    assert received.metadata["x-tenant"] == "t1"
    assert received.metadata["x-blob-bin"] == "AAEC/w=="  # the server saw bytes 00 01 02 ff


def test_the_metadata_goes_with_the_reflection_requests_too(greeter: GreeterServer) -> None:
    _, error = run({"url": greeter.url("SayHello"), "headers": '["x-tenant: t-reflect"]'})
    assert error is None
    reflection = [
        metadata
        for method, metadata in greeter.recorder.seen
        if method == "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    ]
    assert reflection
    assert reflection[-1]["x-tenant"] == "t-reflect"


def test_two_attempts_of_one_fire_send_the_same_fire_key_metadata(greeter: GreeterServer) -> None:
    seen = []
    for args in fire.attempts():
        _, error = run({"url": greeter.url("SayHello"), "headers": '["x-tenant: t1"]'}, **args)
        assert error is None
        seen.append(greeter.servicer.last("SayHello").metadata)
    first, retry = seen
    assert first["x-tenant"] == "t1"
    assert first["idempotency-key"] == retry["idempotency-key"] == fire.key("call")
    assert first["x-dkron-scheduled-time"] == fire.SCHEDULED_TEXT
    assert (first["x-dkron-attempt"], retry["x-dkron-attempt"]) == ("1", "2")


def test_the_reflection_requests_carry_no_fire_key(greeter: GreeterServer) -> None:
    # A target that deduplicates every call on it must still answer the lookups.
    greeter.recorder.seen.clear()
    _, error = run({"url": greeter.url("SayHello")}, **fire.attempts()[0])
    assert error is None
    reflection = [
        metadata
        for method, metadata in greeter.recorder.seen
        if method == "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    ]
    assert reflection
    assert not any("idempotency-key" in metadata for metadata in reflection)


def test_an_empty_body_sends_an_empty_request(greeter: GreeterServer) -> None:
    ctx, error = run({"url": greeter.url("SayHello")})
    assert error is None
    assert greeter.servicer.last("SayHello").request == {}
    assert json.loads(ctx.output.text())["message"] == "Hello, !"


def test_the_method_may_be_written_with_a_dot_as_grpcurl_allows(greeter: GreeterServer) -> None:
    _, error = run({"url": f"{greeter.address}/dkrontest.Greeter.SayHello"})
    assert error is None


def test_a_server_offering_only_v1_reflection_is_understood(v1_only: GreeterServer) -> None:
    ctx, error = run({"url": v1_only.url("SayHello"), "body": '{"name": "v1"}'})
    assert error is None
    assert json.loads(ctx.output.text())["message"] == "Hello, v1!"


def test_tls_with_the_servers_ca_succeeds(tls_greeter: GreeterServer, ca_file: str) -> None:
    config = {"url": tls_greeter.url("SayHello"), "body": '{"name": "tls"}'}
    ctx, error = run({**config, "tls": "true", "tlsRootCAsFile": ca_file})
    assert error is None
    assert json.loads(ctx.output.text())["message"] == "Hello, tls!"


def test_tls_with_an_untrusted_server_cannot_connect(tls_greeter: GreeterServer) -> None:
    _, error = run({"url": tls_greeter.url("SayHello"), "tls": "true"})
    assert error is not None
    assert error.message.startswith(f"grpc: cannot connect to {tls_greeter.address}: ")


# --- expectCode --------------------------------------------------------------------------------


@pytest.mark.parametrize("expect", ["NOT_FOUND", "not_found", "NotFound", "5"])
def test_an_error_status_equal_to_expect_code_is_success(
    greeter: GreeterServer, expect: str
) -> None:
    body = '{"code": "NOT_FOUND", "details": "no such greeting"}'
    ctx, error = run({"url": greeter.url("Fail"), "body": body, "expectCode": expect})
    assert error is None
    assert ctx.output.text() == (
        "grpc: dkrontest.Greeter/Fail returned NOT_FOUND as expected: no such greeting\n"
    )


def test_a_status_other_than_ok_fails_with_the_status_and_details(
    greeter: GreeterServer,
) -> None:
    body = '{"code": "NOT_FOUND", "details": "no such greeting"}'
    ctx, error = run({"url": greeter.url("Fail"), "body": body})
    assert error is not None
    assert error.message == "grpc: expected OK, got NOT_FOUND: no such greeting"
    assert (error.status, error.retryable) == ("failed", True)
    assert ctx.output.text() == ""


def test_ok_when_an_error_was_expected_fails_and_still_shows_the_response(
    greeter: GreeterServer,
) -> None:
    ctx, error = run(
        {"url": greeter.url("SayHello"), "body": '{"name": "x"}', "expectCode": "NOT_FOUND"}
    )
    assert error is not None
    assert error.message == "grpc: expected NOT_FOUND, got OK"
    assert json.loads(ctx.output.text())["message"] == "Hello, x!"


def test_deadline_exceeded_reported_by_the_server_itself_is_a_plain_status_mismatch(
    greeter: GreeterServer,
) -> None:
    body = '{"code": "DEADLINE_EXCEEDED", "details": "the database was slow"}'
    _, error = run({"url": greeter.url("Fail"), "body": body})
    assert error is not None
    assert error.message == "grpc: expected OK, got DEADLINE_EXCEEDED: the database was slow"
    assert error.status == "failed"


# --- failures --------------------------------------------------------------------------------


def test_a_closed_port_fails_saying_it_cannot_connect() -> None:
    port = closed_port()
    started = time.monotonic()
    _, error = run({"url": f"127.0.0.1:{port}/dkrontest.Greeter/SayHello"})
    assert time.monotonic() - started < 5
    assert error is not None
    assert error.message.startswith(f"grpc: cannot connect to 127.0.0.1:{port}: ")
    assert (error.status, error.retryable) == ("failed", True)


def test_a_server_without_reflection_is_named_as_the_reason(
    no_reflection: GreeterServer,
) -> None:
    _, error = run({"url": no_reflection.url("SayHello")})
    assert error is not None
    assert error.message.startswith(
        f"grpc: server reflection is not enabled on {no_reflection.address}: "
    )
    assert "dkrontest.Greeter/SayHello" in error.message
    assert error.retryable is False
    assert no_reflection.servicer.count("SayHello") == 0


def test_an_unknown_service_fails_suggesting_the_closest_one(greeter: GreeterServer) -> None:
    _, error = run({"url": greeter.url("SayHello", service="dkrontest.Greter")})
    assert error is not None
    assert error.message == (
        f"grpc: service 'dkrontest.Greter' not found on {greeter.address}; "
        "did you mean 'dkrontest.Greeter'? Services: dkrontest.Greeter"
    )
    assert error.retryable is False


def test_an_unknown_method_fails_suggesting_the_closest_one(greeter: GreeterServer) -> None:
    _, error = run({"url": greeter.url("SayHelo")})
    assert error is not None
    assert error.message == (
        "grpc: method 'SayHelo' not found in service dkrontest.Greeter; did you mean "
        "'SayHello'? Methods: Chatter, Fail, SayHello, Slow"
    )
    assert error.retryable is False


def test_an_unknown_service_with_no_close_match_lists_the_services(
    greeter: GreeterServer,
) -> None:
    _, error = run({"url": greeter.url("Run", service="billing.Invoices")})
    assert error is not None
    assert error.message == (
        f"grpc: service 'billing.Invoices' not found on {greeter.address}. "
        "Services: dkrontest.Greeter"
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"nmae": "x"}', 'has no field named "nmae"'),
        ('{"tags": 5}', "Failed to parse tags field"),
        ('{"mood": "SLEEPY"}', "SLEEPY"),
    ],
)
def test_a_body_that_does_not_fit_the_request_type_fails_without_retry(
    greeter: GreeterServer, body: str, reason: str
) -> None:
    before = greeter.servicer.count("SayHello")
    _, error = run({"url": greeter.url("SayHello"), "body": body})
    assert error is not None
    assert error.message.startswith(
        "grpc: body does not match the request type dkrontest.HelloRequest: "
    )
    assert reason in error.message
    assert error.retryable is False
    assert greeter.servicer.count("SayHello") == before  # nothing was sent


def test_a_streaming_method_is_refused_without_calling_it(greeter: GreeterServer) -> None:
    _, error = run({"url": greeter.url("Chatter")})
    assert error is not None
    assert error.message == (
        "grpc: dkrontest.Greeter/Chatter is a server-streaming method; "
        "the grpc executor calls unary methods only"
    )
    assert error.retryable is False
    assert greeter.servicer.count("Chatter") == 0


def test_header_values_never_appear_in_the_output_or_the_error(greeter: GreeterServer) -> None:
    headers = json.dumps(["authorization: Bearer s3cret-token"])
    body = '{"code": "PERMISSION_DENIED", "details": "denied"}'
    ctx, error = run({"url": greeter.url("Fail"), "body": body, "headers": headers})
    assert error is not None
    assert greeter.servicer.last("Fail").metadata["authorization"] == "Bearer s3cret-token"
    assert "s3cret" not in error.message + ctx.output.text()
    assert GrpcExecutor.secret_keys == frozenset()  # metadata stays editable, like http's headers


# --- time and cancellation -------------------------------------------------------------------


def test_a_slow_method_fails_with_status_timeout_after_the_timeout(
    greeter: GreeterServer,
) -> None:
    started = time.monotonic()
    _, error = run({"url": greeter.url("Slow"), "body": '{"seconds": 5}', "timeout": "1"})
    assert time.monotonic() - started < 2
    assert error is not None
    assert error.message == f"grpc: dkrontest.Greeter/Slow on {greeter.address}: timeout after 1s"
    assert (error.status, error.retryable) == ("timeout", True)
    received = greeter.servicer.last("Slow")
    assert received.cancelled.wait(2)  # the deadline reached the server too


def test_timeout_accepts_a_go_duration(greeter: GreeterServer) -> None:
    started = time.monotonic()
    _, error = run({"url": greeter.url("Slow"), "body": '{"seconds": 5}', "timeout": "300ms"})
    assert time.monotonic() - started < 1.5
    assert error is not None
    assert error.status == "timeout"
    assert error.message.endswith("timeout after 300ms")


def test_the_agents_default_timeout_bounds_the_call(greeter: GreeterServer) -> None:
    _, error = run({"url": greeter.url("Slow"), "body": '{"seconds": 5}'}, default_timeout=0.5)
    assert error is not None
    assert error.status == "timeout"
    assert error.message.endswith("timeout after 500ms")


def test_a_kill_cancels_the_call_on_the_server_and_is_not_retried(
    greeter: GreeterServer,
) -> None:
    ctx = make_context({"url": greeter.url("Slow"), "body": '{"seconds": 10}'})
    threading.Timer(0.5, ctx.cancel.cancel, args=("killed",)).start()
    started = time.monotonic()
    with pytest.raises(ExecutorError) as info:
        GrpcExecutor().execute(ctx)
    assert time.monotonic() - started < 1.5
    assert info.value.message == "grpc: call was killed"
    assert (info.value.status, info.value.retryable) == ("killed", False)
    assert greeter.servicer.last("Slow").cancelled.wait(2)


def test_a_cancel_for_the_time_limit_ends_with_status_timeout(greeter: GreeterServer) -> None:
    ctx = make_context({"url": greeter.url("Slow"), "body": '{"seconds": 10}'})
    threading.Timer(0.3, ctx.cancel.cancel, args=("timeout",)).start()
    with pytest.raises(ExecutorError) as info:
        GrpcExecutor().execute(ctx)
    assert (info.value.status, info.value.retryable) == ("timeout", True)
    assert "stopped at the run's time limit" in info.value.message


def test_a_kill_before_the_call_stops_it_during_reflection(greeter: GreeterServer) -> None:
    ctx = make_context({"url": greeter.url("SayHello"), "body": '{"name": "never"}'})
    ctx.cancel.cancel("killed")
    before = greeter.servicer.count("SayHello")
    with pytest.raises(ExecutorError) as info:
        GrpcExecutor().execute(ctx)
    assert info.value.status == "killed"
    assert greeter.servicer.count("SayHello") == before


# --- config validation -----------------------------------------------------------------------


def test_config_accepts_dkrons_string_values() -> None:
    config = GrpcExecutor().validate(
        {
            "url": "127.0.0.1:9000/demo.DemoService/Demo",
            "body": '{"key": "value"}',
            "headers": '["x-a: 1:2"]',
            "timeout": "15",
            "expectCode": "0",
            "tls": "false",
        }
    )
    assert isinstance(config, GrpcConfig)
    assert (config.timeout, config.expect_code, config.tls) == (15.0, grpc.StatusCode.OK, False)
    assert config.headers == [("x-a", "1:2")]
    assert GrpcExecutor().timeout_seconds(config) == 15.0


def test_config_defaults_follow_dkron() -> None:
    config = GrpcExecutor().validate({"url": "h:1/S/M", "timeout": "", "expectCode": ""})
    assert isinstance(config, GrpcConfig)
    assert (config.timeout, config.expect_code, config.body, config.headers) == (
        30.0,
        grpc.StatusCode.OK,
        "",
        [],
    )
    assert not config.uses_tls


def test_a_body_given_as_an_object_is_kept_as_json() -> None:
    config = GrpcExecutor().validate({"url": "h:1/S/M", "body": {"name": "x"}})
    assert isinstance(config, GrpcConfig)
    assert json.loads(config.body) == {"name": "x"}


def test_a_ca_file_alone_turns_tls_on() -> None:
    config = GrpcExecutor().validate({"url": "h:1/S/M", "tlsRootCAsFile": "/ca.pem"})
    assert isinstance(config, GrpcConfig)
    assert config.uses_tls


def test_an_ipv6_host_is_accepted() -> None:
    GrpcExecutor().validate({"url": "[::1]:50051/pkg.Svc/Method"})


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"url": ""}, "url", "url is empty"),
        ({"url": "127.0.0.1:9000"}, "url", "host:port/package.Service/Method"),
        ({"url": "127.0.0.1/demo.Demo/Run"}, "url", "host:port/package.Service/Method"),
        ({"url": "grpc://h:1/S/M"}, "url", "host:port/package.Service/Method"),
        ({"url": "h:70000/S/M"}, "url", "host:port/package.Service/Method"),
        ({"body": "{not json"}, "body", "not valid JSON"),
        ({"body": "[1, 2]"}, "body", "must be a JSON object"),
        ({"timeout": "0"}, "timeout", "must be positive"),
        ({"timeout": "soon"}, "timeout", "must be seconds"),
        ({"timeout": "-5s"}, "timeout", "must be positive"),
        ({"expectCode": "17"}, "expectCode", "not a gRPC status code (0-16)"),
        ({"expectCode": "NOT_FOUD"}, "expectCode", "did you mean NOT_FOUND?"),
        ({"headers": "x-a: 1"}, "headers", "JSON array"),
        ({"headers": '["no-colon"]'}, "headers", '"name: value"'),
        ({"headers": '["bad name: 1"]'}, "headers", "not a gRPC metadata key"),
        ({"headers": '["grpc-timeout: 1S"]'}, "headers", "reserved"),
        ({"headers": '["x-a: caf\u00e9"]'}, "headers", "printable ASCII"),
        ({"headers": '["x-b-bin: !!"]'}, "headers", "base64"),
        ({"tls": "yes"}, "tls", "invalid boolean"),
        ({"expectcode": "0"}, "expectcode", "unknown key"),
        ({"tlsCertificateFile": "/c.pem"}, "tlsCertificateKeyFile", "go together"),
        ({"tlsCertificateKeyFile": "/k.pem"}, "tlsCertificateFile", "go together"),
    ],
)
def test_config_rejects_bad_values_naming_the_key(
    raw: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        GrpcExecutor().validate({"url": "127.0.0.1:9000/demo.Demo/Run", **raw})
    assert key in info.value.errors, info.value.errors
    assert message in info.value.errors[key]


def test_a_header_error_names_the_header_but_not_its_value() -> None:
    with pytest.raises(ConfigError) as info:
        GrpcExecutor().validate({"url": "h:1/S/M", "headers": '["x-token: s3cr\u00e9t"]'})
    assert "x-token" in info.value.errors["headers"]
    assert "s3cr" not in info.value.errors["headers"]


def test_a_missing_ca_file_fails_without_retry(tmp_path: Path) -> None:
    config = {"url": "127.0.0.1:1/S/M", "tlsRootCAsFile": str(tmp_path / "none.pem")}
    _, error = run(config)
    assert error is not None
    assert error.message.startswith("grpc: cannot read tlsRootCAsFile ")
    assert error.retryable is False
