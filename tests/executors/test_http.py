"""The http executor against a real local HTTPS server with a throwaway CA (trustme)."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme

from executors.base import ConfigError, ExecutionContext, ExecutorError
from executors.http import HttpConfig, HttpExecutor
from executors.output import OutputSink
from tests.executors import fire


class Handler(BaseHTTPRequestHandler):
    """Small test endpoints: fixed bodies, chosen status codes, echoes, and slow answers."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.handle_any()

    def do_POST(self) -> None:
        self.handle_any()

    def handle_any(self) -> None:
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/hello":
            self.reply(200, b"hello world")
        elif path == "/thirty-as":
            self.reply(200, b"a" * 30 + b"!")  # the body that makes (a+)+$ backtrack for minutes
        elif path.startswith("/status/"):
            self.reply(int(path.rsplit("/", 1)[1]), b"body of the status page")
        elif path == "/headers":
            self.reply(200, json.dumps(dict(self.headers.items())).encode())
        elif path == "/echo":
            self.reply(200, json.dumps({"method": self.command, "body": body.decode()}).encode())
        elif path.startswith("/sleep/"):
            time.sleep(float(path.rsplit("/", 1)[1]))
            self.reply(200, b"late")
        elif path == "/whoami":
            peer = (
                self.connection.getpeercert()
                if isinstance(self.connection, ssl.SSLSocket)
                else None
            )
            names = [value for _, value in (peer or {}).get("subjectAltName", ())]
            self.reply(200, ("client: " + ",".join(names)).encode())
        else:
            self.reply(404, b"not found")

    def reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    """stdlib server; with a TLS context, the handshake runs in the request's own thread so a
    client that fails it cannot stall the accept loop."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(10)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with conn:
            super().finish_request(conn, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or are killed leave broken pipes behind; expected here

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pki(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PEM files as a user would point the job at: the CA, a client cert and its key."""
    folder = tmp_path_factory.mktemp("pki")
    client = ca.issue_cert("client.example.org")
    files = {
        "ca": folder / "ca.pem",
        "cert": folder / "client.pem",
        "key": folder / "client.key",
        "combined": folder / "client-combined.pem",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["cert"]))
    client.private_key_pem.write_to_path(str(files["key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(files["combined"]))
    return {name: str(path) for name, path in files.items()}


def _serve(tls: ssl.SSLContext | None) -> Iterator[Server]:
    server = Server(tls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _server_tls(ca: trustme.CA, verify_mode: ssl.VerifyMode) -> ssl.SSLContext:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(tls)
    ca.configure_trust(tls)
    tls.verify_mode = verify_mode
    return tls


@pytest.fixture(scope="module")
def https(ca: trustme.CA) -> Iterator[Server]:
    """Asks for a client certificate but does not require one."""
    yield from _serve(_server_tls(ca, ssl.CERT_OPTIONAL))


@pytest.fixture(scope="module")
def mtls(ca: trustme.CA) -> Iterator[Server]:
    """Refuses clients without a certificate from the CA."""
    yield from _serve(_server_tls(ca, ssl.CERT_REQUIRED))


@pytest.fixture(scope="module")
def plain() -> Iterator[Server]:
    yield from _serve(None)


def make_context(config: dict[str, Any], **ctx_args: Any) -> ExecutionContext:
    return ExecutionContext(
        job_name="ping", config=HttpExecutor().validate(config), output=OutputSink(), **ctx_args
    )


def run(config: dict[str, Any], **ctx_args: Any) -> tuple[ExecutionContext, ExecutorError | None]:
    ctx = make_context(config, **ctx_args)
    try:
        HttpExecutor().execute(ctx)
    except ExecutorError as exc:
        return ctx, exc
    return ctx, None


def get(server: Server, path: str, pki: dict[str, str], **config: Any) -> dict[str, Any]:
    return {"method": "GET", "url": server.url + path, "tlsRootCAsFile": pki["ca"], **config}


# --- requests and expectations ---------------------------------------------------------------


def test_a_request_succeeds_and_the_response_body_is_the_output(
    https: Server, pki: dict[str, str]
) -> None:
    ctx, error = run(get(https, "/hello", pki))
    assert error is None
    assert ctx.output.text() == "hello world"


def test_plain_http_works_too(plain: Server) -> None:
    ctx, error = run({"method": "GET", "url": plain.url + "/hello"})
    assert error is None
    assert ctx.output.text() == "hello world"


def test_any_status_code_is_success_when_expect_code_is_empty(
    https: Server, pki: dict[str, str]
) -> None:
    _, error = run(get(https, "/status/500", pki))
    assert error is None


def test_a_status_code_in_expect_code_is_success(https: Server, pki: dict[str, str]) -> None:
    _, error = run(get(https, "/status/206", pki, expectCode="200,206"))
    assert error is None


def test_a_status_code_not_in_expect_code_fails_saying_what_was_expected(
    https: Server, pki: dict[str, str]
) -> None:
    ctx, error = run(get(https, "/status/503", pki, expectCode="200, 204"))
    assert error is not None
    assert error.message == "http: expected status code 200,204, got 503"
    assert (error.status, error.retryable) == ("failed", True)
    assert ctx.output.text() == "body of the status page"


def test_a_body_matching_expect_body_is_success(https: Server, pki: dict[str, str]) -> None:
    _, error = run(get(https, "/hello", pki, expectBody="wor+ld$"))
    assert error is None


def test_a_body_not_matching_expect_body_fails(https: Server, pki: dict[str, str]) -> None:
    _, error = run(get(https, "/hello", pki, expectBody="^goodbye"))
    assert error is not None
    assert error.message == "http: response body does not match expectBody '^goodbye'"


def test_a_catastrophic_expect_body_is_answered_at_once(plain: Server) -> None:
    # Python's re backtracks on (a+)+$ for over a minute, holding the interpreter; RE2 does not.
    outcome: list[ExecutorError | None] = []
    config = {"method": "GET", "url": plain.url + "/thirty-as", "expectBody": "(a+)+$"}
    worker = threading.Thread(target=lambda: outcome.append(run(config)[1]), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=5)

    assert not worker.is_alive(), "the match still runs after 5 s"
    assert time.monotonic() - started < 2
    assert outcome[0] is not None
    assert outcome[0].message == "http: response body does not match expectBody '(a+)+$'"


def test_expect_body_uses_go_s_regexp_syntax(https: Server, pki: dict[str, str]) -> None:
    _, error = run(get(https, "/hello", pki, expectBody=r"(?i)HELLO\s+\pL+$"))
    assert error is None


def test_the_timeout_still_fires_with_an_expect_body(plain: Server) -> None:
    started = time.monotonic()
    _, error = run(
        {"method": "GET", "url": plain.url + "/sleep/5", "timeout": "1", "expectBody": "(a+)+$"}
    )
    assert error is not None
    assert error.status == "timeout"
    assert time.monotonic() - started < 3


def test_a_backreference_in_expect_body_is_refused_saying_re2_syntax_is_used() -> None:
    with pytest.raises(ConfigError) as info:
        HttpExecutor().validate({"method": "GET", "url": "http://x", "expectBody": r"(a)\1"})
    message = info.value.errors["expectBody"]
    assert "not a valid RE2 regular expression" in message
    assert "Go's regexp syntax" in message


def test_a_one_and_a_half_megabyte_expect_body_is_refused_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        HttpExecutor().validate(
            {"method": "GET", "url": "http://x", "expectBody": "(a|b)" * 300_000}
        )
    assert time.monotonic() - started < 1
    assert "at most 65536 bytes" in info.value.errors["expectBody"]


def test_header_values_containing_colons_arrive_intact(https: Server, pki: dict[str, str]) -> None:
    headers = json.dumps(["X-Time: 12:30:00", "X-Callback: https://example.org:8443/hook"])
    ctx, error = run(get(https, "/headers", pki, headers=headers))
    assert error is None
    received = json.loads(ctx.output.text())
    assert received["X-Time"] == "12:30:00"
    assert received["X-Callback"] == "https://example.org:8443/hook"


def test_two_attempts_of_one_fire_send_the_same_idempotency_key(plain: Server) -> None:
    seen = []
    for args in fire.attempts():
        ctx, error = run({"method": "GET", "url": plain.url + "/headers"}, **args)
        assert error is None
        seen.append(json.loads(ctx.output.text()))
    first, retry = seen
    assert first["Idempotency-Key"] == retry["Idempotency-Key"] == fire.key("ping")
    assert first["X-Dkron-Scheduled-Time"] == retry["X-Dkron-Scheduled-Time"] == fire.SCHEDULED_TEXT
    assert (first["X-Dkron-Attempt"], retry["X-Dkron-Attempt"]) == ("1", "2")
    assert (first["X-Dkron-Execution"], retry["X-Dkron-Execution"]) == ("101", "102")


def test_a_manual_run_sends_its_run_as_the_key_and_no_scheduled_time(plain: Server) -> None:
    ctx, error = run(
        {"method": "GET", "url": plain.url + "/headers"}, run_id="7", execution_id="70"
    )
    assert error is None
    received = json.loads(ctx.output.text())
    assert received["Idempotency-Key"] == "ping@run-7"
    assert "X-Dkron-Scheduled-Time" not in received


def test_the_jobs_own_idempotency_key_header_wins(plain: Server) -> None:
    headers = json.dumps(["idempotency-key: order-42"])
    config = {"method": "GET", "url": plain.url + "/headers", "headers": headers}
    ctx, error = run(config, **fire.attempts()[0])
    assert error is None
    received = json.loads(ctx.output.text())
    assert received["idempotency-key"] == "order-42"  # as the job spelled it
    assert "Idempotency-Key" not in received
    assert received["X-Dkron-Attempt"] == "1"


def test_a_post_sends_the_body(https: Server, pki: dict[str, str]) -> None:
    config = get(https, "/echo", pki, method="post", body='{"hello": "world"}')
    ctx, error = run(config)
    assert error is None
    assert json.loads(ctx.output.text()) == {"method": "POST", "body": '{"hello": "world"}'}


def test_debug_prepends_the_config_without_credentials(https: Server, pki: dict[str, str]) -> None:
    headers = json.dumps(["Authorization: Bearer s3cret-token", "Accept: text/plain"])
    ctx, error = run(get(https, "/hello", pki, headers=headers, debug="true"))
    assert error is None
    output = ctx.output.text()
    assert output.startswith("Config: {")
    # Every header value is write-only, as in API responses (confidential).
    assert "Authorization: ********" in output
    assert "Accept: ********" in output
    assert "s3cret" not in output and "text/plain" not in output
    assert output.endswith("HTTP/1.1 200\nhello world")


# --- failures: time, kill, connection ---------------------------------------------------------


def test_a_slow_server_fails_after_the_timeout(https: Server, pki: dict[str, str]) -> None:
    started = time.monotonic()
    _, error = run(get(https, "/sleep/3", pki, timeout="1"))
    assert time.monotonic() - started < 2
    assert error is not None
    assert error.message == f"http: GET 127.0.0.1:{https.server_address[1]}: timeout after 1s"
    assert (error.status, error.retryable) == ("timeout", True)


def test_a_kill_stops_the_request_and_is_not_retried(https: Server, pki: dict[str, str]) -> None:
    ctx = make_context(get(https, "/sleep/5", pki))
    threading.Timer(0.3, ctx.cancel.cancel, args=("killed",)).start()
    started = time.monotonic()
    with pytest.raises(ExecutorError) as info:
        HttpExecutor().execute(ctx)
    assert time.monotonic() - started < 1.3
    assert (info.value.status, info.value.retryable) == ("killed", False)


def test_a_closed_port_fails_saying_it_cannot_connect() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, error = run({"method": "GET", "url": f"http://127.0.0.1:{port}/"})
    assert error is not None
    assert error.message.startswith(f"http: cannot connect to 127.0.0.1:{port}")


# --- TLS -------------------------------------------------------------------------------------


def test_a_server_whose_ca_is_not_trusted_is_refused(https: Server) -> None:
    _, error = run({"method": "GET", "url": https.url + "/hello"})
    assert error is not None
    assert error.message.startswith("http: TLS handshake with 127.0.0.1:")
    assert "CERTIFICATE_VERIFY_FAILED" in error.message


def test_tls_no_verify_peer_accepts_an_untrusted_server(https: Server) -> None:
    ctx, error = run({"method": "GET", "url": https.url + "/hello", "tlsNoVerifyPeer": "true"})
    assert error is None
    assert ctx.output.text() == "hello world"


def test_a_server_requiring_a_client_certificate_refuses_a_client_without_one(
    mtls: Server, pki: dict[str, str]
) -> None:
    _, error = run(get(mtls, "/whoami", pki))
    assert error is not None
    # TLS 1.3 sends the refusal after the handshake; the server closes with our request unread,
    # so the kernel may turn the close into a reset that arrives before the alert is read.
    assert re.search("CERTIFICATE_REQUIRED|Connection reset", error.message), error.message


def test_the_client_certificate_and_key_files_are_presented(
    mtls: Server, pki: dict[str, str]
) -> None:
    config = get(mtls, "/whoami", pki, tlsCertificateFile=pki["cert"])
    ctx, error = run({**config, "tlsCertificateKeyFile": pki["key"]})
    assert error is None
    assert ctx.output.text() == "client: client.example.org"


def test_a_certificate_file_holding_the_key_too_is_enough(
    mtls: Server, pki: dict[str, str]
) -> None:
    ctx, error = run(get(mtls, "/whoami", pki, tlsCertificateFile=pki["combined"]))
    assert error is None
    assert ctx.output.text() == "client: client.example.org"


def test_a_missing_ca_file_fails_without_retry(https: Server, tmp_path: Path) -> None:
    config = {"method": "GET", "url": https.url, "tlsRootCAsFile": str(tmp_path / "none.pem")}
    _, error = run(config)
    assert error is not None
    assert error.retryable is False
    assert "cannot load tlsRootCAsFile" in error.message


# --- config validation -----------------------------------------------------------------------


def test_config_accepts_dkrons_string_values() -> None:
    config = HttpExecutor().validate(
        {
            "method": "get",
            "url": "https://example.org/x",
            "headers": '["Content-Type: application/json"]',
            "timeout": "15",
            "expectCode": "200, 206",
            "expectBody": "ok",
            "debug": "true",
            "tlsNoVerifyPeer": "false",
            "tlsCertificateFile": "",
            "tlsCertificateKeyFile": "",
            "tlsRootCAsFile": "",
        }
    )
    assert isinstance(config, HttpConfig)
    assert config.method == "GET"
    assert config.headers == [("Content-Type", "application/json")]
    assert (config.timeout, config.expect_code, config.debug) == (15, [200, 206], True)
    assert HttpExecutor().timeout_seconds(config) == 15.0


def test_config_defaults_follow_dkron() -> None:
    config = HttpExecutor().validate({"method": "GET", "url": "http://x", "timeout": ""})
    assert isinstance(config, HttpConfig)
    assert (config.timeout, config.expect_code, config.headers) == (30, [], [])


def test_headers_may_be_given_as_a_list() -> None:
    config = HttpExecutor().validate(
        {"method": "GET", "url": "http://x", "headers": ["X-A: 1:2", "X-B:"]}
    )
    assert isinstance(config, HttpConfig)
    assert config.headers == [("X-A", "1:2"), ("X-B", "")]


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"method": ""}, "method", "method is empty"),
        ({"method": "GE T"}, "method", "not a valid HTTP method"),
        ({"url": ""}, "url", "url is empty"),
        ({"url": "ftp://example.org"}, "url", "http:// or https://"),
        ({"timeout": "30s"}, "timeout", "whole seconds"),
        ({"timeout": "0"}, "timeout", "whole seconds"),
        ({"expectCode": "2xx"}, "expectCode", "not an HTTP status code"),
        ({"expectBody": "(["}, "expectBody", "not a valid RE2 regular expression"),
        ({"headers": "Content-Type: x"}, "headers", "JSON array"),
        ({"headers": '["NoColon"]'}, "headers", 'not of the form "Name: value"'),
        ({"debug": "yes"}, "debug", "invalid boolean"),
        ({"expect_codes": "200"}, "expect_codes", "unknown key"),
        ({"tlsCertificateKeyFile": "/k.pem"}, "tlsCertificateKeyFile", "tlsCertificateFile"),
    ],
)
def test_config_rejects_bad_values_naming_the_key(
    raw: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        HttpExecutor().validate({"method": "GET", "url": "http://example.org", **raw})
    assert key in info.value.errors
    assert message in info.value.errors[key]
