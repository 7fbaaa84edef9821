"""The `nats` executor: publish one message on a NATS subject and flush it to the server.

Dkron's keys, with a stricter success rule: Dkron ignores the publish error and reports success
as soon as it connected; here success means the message was published and the server answered
the flush (PING/PONG), and a permissions violation the server reports for the publish fails the
run. Plain NATS cannot tell whether anybody listens on a subject, so that is not checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import nats
from nats import errors as nerrors
from pydantic import BeforeValidator, Field, field_validator

from executors.base import ExecutionContext, Executor, ExecutorConfig, ExecutorError
from executors.publisher import Publisher
from executors.values import GoBool, comma_items, config_error, refuse_control, seconds_or_duration

__all__ = ["NatsConfig", "NatsExecutor", "debug_config"]

DEFAULT_TIMEOUT = 30.0  # seconds; Dkron has no timeout key
MASK = "********"
_SCHEMES = ("nats", "tls")
_SUBJECT_TOKEN = re.compile(r"[^\s.*>]+")


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 4222


def _parse_url(value: Any) -> Any:
    """One NATS URL or a comma list (as nats.go's Connect takes); nats:// is assumed if absent.

    Credentials in the URL are refused: the URL is shown in the job, only `password` is
    write-only.
    """
    if not isinstance(value, str):
        raise config_error("url", 'url must be a string such as "nats://127.0.0.1:4222"')
    servers: list[str] = []
    for item in comma_items(value):
        if "://" not in item:
            item = f"nats://{item}"
        try:
            parts = urlsplit(item)
            port = parts.port
        except ValueError as exc:
            raise config_error("url", f"url {item!r} is not valid: {exc}") from None
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise config_error("url", f"url {item!r} must be nats://host:port or tls://host:port")
        if parts.username or parts.password:
            raise config_error(
                "url", "url must not hold credentials; use userName and password (write-only)"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise config_error("url", f"url {item!r} must be only scheme://host:port")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        servers.append(f"{parts.scheme}://{host}:{port or 4222}")
    if not servers:
        raise config_error("missing", "url is empty")
    return servers


class NatsConfig(ExecutorConfig):
    """Dkron's nats keys (camelCase as in Dkron); values may be Dkron's strings."""

    url: Annotated[list[str], BeforeValidator(_parse_url)] = Field(
        description="nats://host:port or tls://host:port; a comma list for a cluster."
    )
    subject: str = Field(description="Subject to publish on (no wildcards).")
    message: str = Field("", description="Message body (UTF-8).")
    user_name: str = Field("", alias="userName", description="User, with password.")
    password: str = Field("", description="Write-only.", repr=False)
    debug: GoBool = Field(False, description="Prepend the config (password masked) to output.")
    timeout: Annotated[float, seconds_or_duration(DEFAULT_TIMEOUT, example="10s")] = Field(
        DEFAULT_TIMEOUT, description="Limit for connect + publish + flush; not a Dkron key."
    )

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        refuse_control("subject", value)
        if not value.strip():
            raise config_error("missing", "subject is empty")
        if not all(_SUBJECT_TOKEN.fullmatch(token) for token in value.split(".")):
            raise config_error(
                "subject",
                f"subject {value!r} is not a valid NATS subject to publish on: tokens separated "
                "by '.', no spaces, no empty tokens, no wildcards (* or >)",
            )
        return value


JETSTREAM_MSG_ID = "Nats-Msg-Id"  # JetStream deduplicates on it


class NatsExecutor(Executor):
    name = "nats"
    description = "Publish a message on a NATS subject; success is the server's flush reply."
    config_schema = NatsConfig
    secret_keys: ClassVar[frozenset[str]] = frozenset({"password"})
    destination_keys: ClassVar[frozenset[str]] = frozenset({"url"})  # the servers it logs in to

    def check_config(self, config: NatsConfig) -> dict[str, str]:
        if config.password and not config.user_name:
            return {"userName": "needed with password"}
        return {}

    def execute(self, ctx: ExecutionContext) -> None:
        config: NatsConfig = self.config_of(ctx)
        if config.debug:
            ctx.output.write(f"Config: {json.dumps(debug_config(config))}\n")
        server = _Publish(config, ctx).run()
        ctx.output.write(
            f"Result: Message successfully sent (subject {config.subject!r}, "
            f"{len(config.message.encode())} bytes, flushed to {server})\n"
        )


def debug_config(config: NatsConfig) -> dict[str, Any]:
    """The config as Dkron's keys, with the password masked."""
    shown = config.model_dump(by_alias=True)
    shown["url"] = ",".join(config.url)
    shown["timeout"] = f"{config.timeout:g}s"
    if shown.get("password"):
        shown["password"] = MASK
    return shown


class _Publish(Publisher):
    """One publish and flush, on an event loop in the worker thread; a kill or the deadline
    cancels the loop's task from the supervising thread, which closes the connection."""

    prefix = "nats"

    def __init__(self, config: NatsConfig, ctx: ExecutionContext) -> None:
        super().__init__(ctx, config.timeout)
        self.config = config
        self.phase = "connect"
        self.errors: list[Exception] = []  # what the server reported asynchronously
        self.server = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    def endpoints(self) -> list[tuple[str, int]]:
        # nats-py resolves and connects by itself: every server is checked right before.
        return [_host_port(url) for url in self.config.url]

    def publish(self) -> str:
        return asyncio.run(self._main())

    async def _main(self) -> str:
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        if self.stop.is_set():
            return ""
        return await _publish(self)

    def abandon(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has just closed
                loop.call_soon_threadsafe(task.cancel)

    def killed_text(self) -> str:
        note = " (it may still have been delivered)" if self.phase == "flush" else ""
        return f"publishing on {self.config.subject!r} was killed{note}"

    def timeout_error(self) -> ExecutorError:
        limit = f"{self.timeout:g}s"
        if self.phase == "connect":
            return _connect_failure(self, limit)
        if self.phase == "flush":
            text = f"the server {self.server} did not confirm the flush within {limit}"
        else:
            text = f"publishing on {self.config.subject!r} did not finish within {limit}"
        return ExecutorError(f"nats: {text}", status="timeout")

    def describe(self, exc: BaseException) -> ExecutorError:
        if isinstance(exc, TimeoutError | nerrors.FlushTimeoutError | nerrors.TimeoutError):
            return self.timeout_error()
        if isinstance(exc, nerrors.NoServersError):
            return _connect_failure(self)
        if isinstance(exc, OSError | nerrors.Error):
            if self.phase == "connect":
                self.errors.append(exc)
                return _connect_failure(self)
            return ExecutorError(
                f"nats: publishing on {self.config.subject!r} failed: {_reason(exc)}"
            )
        return super().describe(exc)


def _headers(progress: _Publish, client: Any) -> dict[str, str] | None:
    """The fire key as message headers, for a server that takes them (NATS 2.2+, which says
    so in its INFO); an older server would close the connection on an HPUB, so it gets the
    message without them, as from Dkron. `Nats-Msg-Id` is the fire key too: a JetStream
    stream drops a retry's copy of a message it already stored (its duplicate window)."""
    if not client._server_info.get("headers"):  # nats-py has no public accessor
        return None
    fields = progress.ctx.fire_fields()
    if not fields:
        return None
    return {**fields, JETSTREAM_MSG_ID: progress.ctx.fire_key}


async def _publish(progress: _Publish) -> str:
    config, remaining = progress.config, progress.remaining

    async def on_error(exc: Exception) -> None:
        progress.errors.append(exc)

    client = await nats.connect(
        servers=config.url,
        user=config.user_name or None,
        password=config.password or None,
        name="dkronweb",
        connect_timeout=remaining(),
        allow_reconnect=False,
        # nats-py retries a refused server forever with 0; 1 tries each server twice.
        max_reconnect_attempts=1,
        reconnect_time_wait=0.1,
        error_cb=on_error,
    )
    try:
        url = client.connected_url
        progress.server = f"{url.hostname}:{url.port}" if url else ",".join(config.url)
        progress.phase = "publish"
        try:
            await client.publish(
                config.subject, config.message.encode(), headers=_headers(progress, client)
            )
        except nerrors.MaxPayloadError:
            raise ExecutorError(
                f"nats: the message ({len(config.message.encode())} bytes) is larger than "
                f"the server's max_payload ({client.max_payload} bytes)",
                retryable=False,
            ) from None
        progress.phase = "flush"
        # nats-py 2.16 writes a flush's PING straight to the socket, ahead of a PUB still in
        # its buffer, so one PONG does not vouch for the PUB. The first flush pushes the PUB
        # out; the second PING follows it, and the server answers in order.
        await client.flush(timeout=remaining())  # type: ignore[arg-type]  # float is fine
        await client.flush(timeout=remaining())  # type: ignore[arg-type]  # float is fine
        # The server answers a refused PUB with -ERR before that PONG.
        for exc in progress.errors:
            if "permissions violation" in str(exc).lower():
                raise ExecutorError(
                    f"nats: the server refused the publish on {config.subject!r}: {_reason(exc)}",
                    retryable=False,
                )
        return progress.server
    finally:
        await client.close()


def _connect_failure(progress: _Publish, limit: str | None = None) -> ExecutorError:
    config = progress.config
    where = ",".join(config.url)
    for exc in reversed(progress.errors):
        text = _reason(exc)
        if "authorization violation" in text.lower() or isinstance(exc, nerrors.AuthorizationError):
            # A wrong user or password does not fix itself on retry.
            return ExecutorError(
                f"nats: authorization violation: {where} refused user "
                f"{config.user_name or '(none)'!r}",
                retryable=False,
            )
        if isinstance(exc, TimeoutError | nerrors.NoServersError):
            continue  # says nothing the deadline does not
        if isinstance(exc, OSError | nerrors.Error):
            return ExecutorError(f"nats: cannot connect to {where}: {text}")
    if limit is not None:
        return ExecutorError(
            f"nats: no server of {where} answered within {limit}", status="timeout"
        )
    return ExecutorError(f"nats: cannot connect to {where}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc).strip()
    if text.startswith("nats: "):
        text = text[len("nats: ") :]
    return text or type(exc).__name__
