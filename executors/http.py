"""The `http` executor: make one HTTP(S) request and check its status code and body.

Dkron's keys and success rule (the request completes, then `expectCode`, then `expectBody`),
without Dkron's quirks: header values may contain ':', a bad `timeout`, `headers` or
`expectBody` is rejected at save time instead of being ignored, and a kill stops the request.
`expectBody` is RE2 syntax, as Go's regexp in Dkron, matched in linear time (executors.regex).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import httpx
from pydantic import BeforeValidator, Field, field_validator

import confidential
from executors import guarded_http, netguard
from executors.base import (
    ExecutionContext,
    Executor,
    ExecutorConfig,
    ExecutorError,
    with_fire_fields,
)
from executors.regex import RegexError, compile_user_regex
from executors.values import (
    GoBool,
    check_text,
    comma_items,
    config_error,
    header_pairs,
    whole_seconds,
)

__all__ = ["HttpConfig", "HttpExecutor"]

CANCEL_POLL_INTERVAL = 0.1
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: method and header names


def _parse_codes(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise config_error("expect_code", 'expectCode must be a comma list such as "200,206"')
    codes: list[int] = []
    for part in comma_items(value):
        if not part.isdigit() or not 100 <= int(part) <= 599:
            raise config_error(
                "expect_code", f"expectCode {part!r} is not an HTTP status code (100-599)"
            )
        codes.append(int(part))
    return codes


class HttpConfig(ExecutorConfig):
    """Dkron's http keys (camelCase as in Dkron); values may be Dkron's strings."""

    method: str = Field(description="Request method, e.g. GET or POST.")
    url: str = Field(description="http:// or https:// URL.")
    headers: Annotated[list[tuple[str, str]], header_pairs(objects=False, name=_TOKEN)] = Field(
        default_factory=list, description='JSON array of "Name: value" strings.'
    )
    body: str = Field("", description="Request body.")
    timeout: Annotated[int, whole_seconds(30)] = Field(
        30, description="Seconds for the whole request, body included."
    )
    expect_code: Annotated[list[int], BeforeValidator(_parse_codes)] = Field(
        default_factory=list, alias="expectCode", description="Accepted codes; empty: any."
    )
    expect_body: str = Field(
        "", alias="expectBody", description="RE2 (Go) regex searched in the body."
    )
    debug: GoBool = Field(False, description="Prepend the config (secrets masked) to output.")
    tls_no_verify_peer: GoBool = Field(
        False, alias="tlsNoVerifyPeer", description="Skip TLS certificate verification (unsafe)."
    )
    tls_certificate_file: str = Field(
        "", alias="tlsCertificateFile", description="Client certificate (PEM file on the agent)."
    )
    tls_certificate_key_file: str = Field(
        "", alias="tlsCertificateKeyFile", description="Client certificate's key (PEM file)."
    )
    tls_root_cas_file: str = Field(
        "", alias="tlsRootCAsFile", description="CA bundle to verify the server (PEM file)."
    )

    @field_validator("method")
    @classmethod
    def _method_token(cls, value: str) -> str:
        value = check_text(
            value, _TOKEN, "method {value!r} is not a valid HTTP method", missing="method is empty"
        )
        # Go sends the method as written and servers reject "get"; upper-case it instead.
        return value.upper()

    @field_validator("url")
    @classmethod
    def _url_http(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise config_error("missing", "url is empty")
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise config_error("url", f"url {value!r} is not valid: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise config_error("url", f"url {value!r} must be an http:// or https:// URL")
        return value

    @field_validator("expect_body")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            compile_user_regex(value)
        except RegexError as exc:
            raise config_error("regex", f"expectBody {exc}") from None
        return value


class HttpExecutor(Executor):
    name = "http"
    description = "Make an HTTP request; success is the expected status code and body."
    config_schema = HttpConfig
    secret_keys: ClassVar[frozenset[str]] = frozenset()
    secret_entries: ClassVar[Mapping[str, str]] = {"headers": confidential.HEADERS}
    secret_urls: ClassVar[Mapping[str, str]] = {"url": confidential.URL}
    # Where the headers (and the URL's own credentials) go, and who may answer as that server.
    destination_keys: ClassVar[frozenset[str]] = frozenset(
        {"url", "tlsNoVerifyPeer", "tlsRootCAsFile"}
    )

    def check_config(self, config: HttpConfig) -> dict[str, str]:
        if config.tls_certificate_key_file and not config.tls_certificate_file:
            return {"tlsCertificateKeyFile": "needs tlsCertificateFile as well"}
        return {}

    def execute(self, ctx: ExecutionContext) -> None:
        config: HttpConfig = self.config_of(ctx)
        tls = _tls_context(config)
        if config.debug:
            ctx.output.write(f"Config: {json.dumps(debug_config(config))}\n")
        status, body = asyncio.run(_supervise(config, ctx, tls))
        if config.expect_code and status not in config.expect_code:
            expected = ",".join(str(c) for c in config.expect_code)
            raise ExecutorError(f"http: expected status code {expected}, got {status}")
        if config.expect_body:
            text = body.decode("utf-8", "replace")
            # RE2: linear in the body, so a pattern cannot hold the agent (executors.regex).
            if not compile_user_regex(config.expect_body).search(text):
                raise ExecutorError(
                    f"http: response body does not match expectBody {config.expect_body!r}"
                )


def debug_config(config: HttpConfig) -> dict[str, Any]:
    """The config as Dkron's keys, every header value masked (Dkron printed them; header
    values are write-only, confidential)."""
    shown = config.model_dump(by_alias=True)
    shown["headers"] = confidential.mask_header_pairs(config.headers)
    shown["url"] = confidential.mask(HttpExecutor.secret_spec(), shown)["url"]
    shown["expectCode"] = ",".join(str(c) for c in config.expect_code)
    return shown


def _tls_context(config: HttpConfig) -> ssl.SSLContext:
    """Go's semantics: a CA file replaces the system roots; client cert and key are PEM files.

    The files live on the agent, so a missing one is found only here; a retry will not create
    it, hence not retryable.
    """
    try:
        tls = ssl.create_default_context(cafile=config.tls_root_cas_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ExecutorError(
            f"http: cannot load tlsRootCAsFile {config.tls_root_cas_file!r}: {exc}",
            retryable=False,
        ) from None
    if config.tls_no_verify_peer:
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    if config.tls_certificate_file:
        try:
            tls.load_cert_chain(
                config.tls_certificate_file, config.tls_certificate_key_file or None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ExecutorError(
                f"http: cannot load client certificate {config.tls_certificate_file!r}: {exc}",
                retryable=False,
            ) from None
    return tls


async def _supervise(
    config: HttpConfig, ctx: ExecutionContext, tls: ssl.SSLContext
) -> tuple[int, bytes]:
    """Run the request as a task so that the deadline and a kill can abort it mid-read.

    httpx's timeouts bound each network operation; Dkron's (Go's Client.Timeout) bounds the
    whole request including the body, which only a task we can cancel gives us.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.timeout
    task = asyncio.create_task(_request(config, ctx, tls))
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0 or ctx.cancel.is_set():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if remaining > 0 and ctx.cancel.reason != "timeout":
                raise ExecutorError("http: request was killed", retryable=False, status="killed")
            raise ExecutorError(
                f"http: {config.method} {_where(config.url)}: timeout after {config.timeout}s",
                status="timeout",
            )
        await asyncio.wait({task}, timeout=min(CANCEL_POLL_INTERVAL, remaining))
    try:
        return task.result()
    except netguard.BlockedAddress as exc:
        raise ExecutorError(f"http: {exc}", retryable=False) from None
    except httpx.TimeoutException:
        raise ExecutorError(
            f"http: {config.method} {_where(config.url)}: timeout after {config.timeout}s",
            status="timeout",
        ) from None
    except httpx.ConnectError as exc:
        reason = _reason(exc)
        if _is_tls_error(exc):
            raise ExecutorError(
                f"http: TLS handshake with {_where(config.url)} failed: {reason}"
            ) from None
        raise ExecutorError(f"http: cannot connect to {_where(config.url)}: {reason}") from None
    except ssl.SSLError as exc:
        # With TLS 1.3 a server refusing our client certificate says so only after the
        # handshake, at the first read, and httpcore passes that error through unwrapped.
        raise ExecutorError(f"http: TLS error with {_where(config.url)}: {exc}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise ExecutorError(
            f"http: {config.method} {_where(config.url)} failed: {_reason(exc)}"
        ) from None


async def _request(
    config: HttpConfig, ctx: ExecutionContext, tls: ssl.SSLContext
) -> tuple[int, bytes]:
    """Send the request and stream the body into the output; return status and body tail."""
    tail = bytearray()
    limit = ctx.output.limit
    # With the guard on, every connection (redirects included) goes through netguard.
    transport = (
        guarded_http.async_transport(ctx.outbound, verify=tls) if ctx.block_private else None
    )
    async with (
        httpx.AsyncClient(
            verify=tls, timeout=config.timeout, follow_redirects=True, transport=transport
        ) as client,
        client.stream(
            config.method,
            config.url,
            # The fire key (Idempotency-Key and the X-Dkron-* headers) unless the job sets
            # a header of the same name itself: a target can deduplicate retries on it.
            headers=with_fire_fields(config.headers, ctx.fire_fields()),
            content=config.body.encode() if config.body else None,
        ) as response,
    ):
        if config.debug:
            ctx.output.write(f"Response: {response.http_version} {response.status_code}\n")
        async for chunk in response.aiter_bytes():
            ctx.output.write(chunk)
            tail += chunk
            if len(tail) > limit:
                del tail[: len(tail) - limit]
        return response.status_code, bytes(tail)


def _where(url: str) -> str:
    """host:port of a URL, for messages: never the path, query or credentials it may hold."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{host}:{port}"


def _is_tls_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "SSL" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(exc: BaseException) -> str:
    """The first non-empty message along the cause chain (httpx often wraps an empty one)."""
    seen: BaseException | None = exc
    while seen is not None:
        if str(seen):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__
