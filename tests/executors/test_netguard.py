"""The SSRF guard (DKRON_HTTP_BLOCK_PRIVATE) against real local HTTP servers: loopback refused
when on and reached when off, a redirect to loopback refused, a host name resolving to loopback
refused, and TLS still verified against the URL's host name while connecting to the checked IP."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme

from executors import netguard
from executors.base import ExecutionContext, ExecutorError
from executors.http import HttpExecutor
from executors.output import OutputSink
from jobs.notifications import NotificationError, webhook


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: list[str]
    redirect_to = ""

    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to)  # type: ignore[attr-defined]
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"reached"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    server.hits = []  # type: ignore[attr-defined]
    server.redirect_to = ""  # type: ignore[attr-defined]
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    s = serve()
    yield s
    s.shutdown()


def run(url: str, *, block: bool) -> tuple[str, ExecutorError | None]:
    ctx = ExecutionContext(
        job_name="j", config={"method": "GET", "url": url}, output=OutputSink(), block_private=block
    )
    try:
        HttpExecutor().execute(ctx)
    except ExecutorError as exc:
        return ctx.output.text(), exc
    return ctx.output.text(), None


def port(server: ThreadingHTTPServer) -> int:
    return server.server_address[1]


def test_loopback_is_reached_when_the_guard_is_off(server) -> None:
    output, error = run(f"http://127.0.0.1:{port(server)}/", block=False)
    assert error is None and output == "reached"


def test_loopback_is_refused_when_the_guard_is_on_and_nothing_is_sent(server) -> None:
    _, error = run(f"http://127.0.0.1:{port(server)}/", block=True)

    assert error is not None and error.retryable is False
    assert error.message == (
        f"http: refused to connect to 127.0.0.1:{port(server)} (loopback address; "
        "DKRON_BLOCK_PRIVATE is on and DKRON_OUTBOUND_ALLOW does not list it)"
    )
    assert server.hits == []


def test_a_name_that_resolves_to_loopback_is_refused(server) -> None:
    # "localhost" comes from /etc/hosts: a public-looking name pointing inside works the same.
    _, error = run(f"http://localhost:{port(server)}/", block=True)

    assert error is not None and "localhost (" in error.message
    assert "loopback address" in error.message and server.hits == []


def test_a_redirect_to_loopback_is_refused(server, monkeypatch) -> None:
    # No public server exists here, so the first hop (127.0.0.1) is declared public by patching
    # the address policy (not the resolver); the redirect target 127.0.0.2 is still checked.
    inner = serve("127.0.0.2")
    server.redirect_to = f"http://127.0.0.2:{port(inner)}/inside"
    real = netguard.check_address
    monkeypatch.setattr(netguard, "check_address", lambda a: None if a == "127.0.0.1" else real(a))
    try:
        _, error = run(f"http://127.0.0.1:{port(server)}/redirect", block=True)
    finally:
        inner.shutdown()

    assert server.hits == ["/redirect"] and inner.hits == []
    assert error is not None and error.retryable is False
    assert "refused to connect to 127.0.0.2:" in error.message
    assert "(loopback address" in error.message


def test_tls_is_verified_for_the_url_host_while_connecting_to_the_checked_ip(
    monkeypatch, tmp_path
) -> None:
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    https = serve(tls=tls)
    monkeypatch.setattr(netguard, "check_address", lambda a: None)  # allow loopback here
    config = {"method": "GET", "url": f"https://localhost:{port(https)}/", "tlsRootCAsFile": ""}
    config["tlsRootCAsFile"] = str(ca_file)
    try:
        ctx = ExecutionContext(job_name="j", config=config, output=OutputSink(), block_private=True)
        HttpExecutor().execute(ctx)
        bad = dict(config, url=f"https://127.0.0.1:{port(https)}/")  # cert is for localhost
        with pytest.raises(ExecutorError, match="TLS"):
            HttpExecutor().execute(
                ExecutionContext(job_name="j", config=bad, output=OutputSink(), block_private=True)
            )
    finally:
        https.shutdown()
    assert ctx.output.text() == "reached"


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00::1", "unique-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        # Tunnelled and translated forms of private IPv4 addresses.
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("2002:a9fe:a9fe::", "link-local"),  # 6to4 of the metadata service
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo tunnel"),
        ("64:ff9b:1::a00:1", "private"),  # local-use NAT64
        ("::7f00:1", "loopback"),  # IPv4-compatible ::127.0.0.1
        ("::ffff:0:a00:1", "private"),  # IPv4-translated 10.0.0.1
        ("::ffff:169.254.169.254", "link-local"),
        ("fec0::1", "site-local"),
        ("2002:808:808::1", None),  # 6to4 of a public address
        ("93.184.215.14", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_the_address_policy(address: str, why: str | None) -> None:
    assert netguard.check_address(address) == why


def test_a_webhook_to_loopback_is_refused_for_good_when_the_guard_is_on(server) -> None:
    request = webhook.Request(url=f"http://127.0.0.1:{port(server)}/", block_private=True)

    with pytest.raises(NotificationError) as caught:
        webhook.send(request, sleep=lambda _s: None)

    assert caught.value.permanent and "loopback address" in str(caught.value)
    assert server.hits == []
    assert webhook.send(webhook.Request(url=f"http://127.0.0.1:{port(server)}/")) == 1
