"""The `rabbitmq` executor: publish one message to RabbitMQ and wait for the broker's confirm.

Dkron's keys (`url`, `exchange`, `queue.*`, `message.*`), but where Dkron fires and forgets
(no publisher confirms, `mandatory` off, so a message to a missing queue or exchange vanishes
and the job still succeeds), this executor publishes with confirms and `mandatory`, so success
means the broker took the message into a queue.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import (
    AMQPConnectorException,
    AMQPConnectorStackTimeout,
)
from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

import confidential
from executors.base import (
    ExecutionContext,
    Executor,
    ExecutorConfig,
    ExecutorError,
    guard_failure,
)
from executors.netguard import GuardError
from executors.publisher import Publisher
from executors.values import (
    GoBool,
    accepted_by,
    base64_bytes,
    config_error,
    format_go_duration,
    refuse_control,
)

__all__ = ["AmqpAddress", "RabbitMQConfig", "RabbitMQExecutor", "parse_amqp_url"]

# Dkron has no timeout key for rabbitmq; a publish that takes longer than this is stuck.
DEFAULT_TIMEOUT = 30.0
# RabbitMQ's management UI calls the default exchange "amq.default" and Dkron's UI fills that
# name in, but the broker knows no exchange of that name (publishing to it fails with 404).
DEFAULT_EXCHANGE_ALIASES = frozenset({"", "amq.default"})


@dataclass(frozen=True)
class AmqpAddress:
    """An AMQP URI taken apart the way Go's amqp091 `ParseURI` does (Dkron's parser)."""

    tls: bool
    host: str
    port: int
    vhost: str
    username: str
    password: str

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def where(self) -> str:
        """host:port and vhost, for messages; never the credentials."""
        return f"{self.hostport} (vhost {self.vhost!r})"


def parse_amqp_url(value: str) -> AmqpAddress:
    """Parse `amqp[s]://user:pass@host:port/vhost`; errors never repeat the URL (it may hold a
    password)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise ValueError(
            "url is not a valid AMQP URI (amqp://user:password@host:5672/vhost)"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps"):
        raise ValueError("url must be an amqp:// or amqps:// URI")
    if not parts.hostname:
        raise ValueError("url has no host (amqp://user:password@host:5672/vhost)")
    if parts.query or parts.fragment:
        raise ValueError(
            "url query parameters are not supported (amqps:// uses the agent's system CA "
            "certificates)"
        )
    # Go's defaults: guest/guest, and a user without a password keeps the default password.
    username = unquote(parts.username) if parts.username is not None else "guest"
    password = unquote(parts.password) if parts.password is not None else "guest"
    # Go: an empty path or "/" means vhost "/"; otherwise everything after the first "/".
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return AmqpAddress(
        tls=scheme == "amqps",
        host=parts.hostname,
        port=port or (5671 if scheme == "amqps" else 5672),
        vhost=vhost,
        username=username,
        password=password,
    )


def _parse_delivery_mode(value: Any) -> Any:
    if value is None or value == "":
        return 0
    text = str(value).strip()
    if isinstance(value, bool) or text not in ("0", "1", "2"):
        raise config_error(
            "delivery_mode",
            f"message.delivery_mode {value!r} must be 1 (transient) or 2 (persistent); "
            "0 or empty leaves it unset",
        )
    return int(text)


def _blank_is_default(default: str) -> Any:
    def parse(value: Any) -> Any:
        return default if value is None or value == "" else value

    return BeforeValidator(parse)


class RabbitMQConfig(ExecutorConfig):
    """Dkron's rabbitmq keys, dotted as in Dkron; values may be Dkron's strings ("true", "2")."""

    url: Annotated[str, accepted_by(parse_amqp_url, missing="url is empty", kind="url")] = Field(
        description="amqp:// or amqps:// URI with credentials and vhost (secret)."
    )
    exchange: str = Field("", description='Exchange; "" (or "amq.default") is the default one.')
    queue_name: str = Field(alias="queue.name", description="Queue, also the routing key.")
    queue_create: GoBool = Field(False, alias="queue.create", description="Declare the queue.")
    queue_durable: GoBool = Field(
        False, alias="queue.durable", description="A declared queue survives a broker restart."
    )
    queue_auto_delete: GoBool = Field(
        False, alias="queue.auto_delete", description="Delete it when its last consumer leaves."
    )
    queue_exclusive: GoBool = Field(
        False, alias="queue.exclusive", description="Declare it for this connection only."
    )
    content_type: Annotated[str, _blank_is_default("text/plain")] = Field(
        "text/plain", alias="message.content_type", description="MIME type of the body."
    )
    delivery_mode: Annotated[int, BeforeValidator(_parse_delivery_mode)] = Field(
        0, alias="message.delivery_mode", description="1 transient, 2 persistent, 0 unset."
    )
    message_id: str = Field("", alias="message.messageId", description="AMQP message-id property.")
    body: str = Field("", alias="message.body", description="Message body as text.")
    base64_body: Annotated[bytes | None, base64_bytes("message.base64Body", blank=None)] = Field(
        None, alias="message.base64Body", description="Message body as base64 (binary)."
    )

    @field_validator("exchange", "queue_name", "content_type", "message_id")
    @classmethod
    def _wire_text(cls, value: str, info: ValidationInfo) -> str:
        field = cls.model_fields[info.field_name or ""]
        return refuse_control(field.alias or info.field_name or "", value)

    @field_validator("queue_name")
    @classmethod
    def _queue_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise config_error("missing", "queue.name is empty")
        if len(value.encode()) > 255:
            raise config_error("queue", "queue.name is longer than 255 bytes (AMQP's limit)")
        return value

    @property
    def payload(self) -> bytes:
        return self.base64_body if self.base64_body is not None else self.body.encode()

    @property
    def exchange_name(self) -> str:
        return "" if self.exchange.strip() in DEFAULT_EXCHANGE_ALIASES else self.exchange


class RabbitMQExecutor(Executor):
    name = "rabbitmq"
    description = "Publish a message to RabbitMQ; success is the broker's publisher confirm."
    config_schema = RabbitMQConfig
    # The AMQP URI carries the password, so the whole URL is write-only.
    # The URL's password is write-only; its user, host and vhost stay readable, and the
    # password is kept only while the rest of the URL is unchanged.
    secret_urls: ClassVar[Mapping[str, str]] = {"url": confidential.URL}
    destination_keys: ClassVar[frozenset[str]] = frozenset({"url"})

    def check_config(self, config: RabbitMQConfig) -> dict[str, str]:
        if config.body and config.base64_body is not None:
            return {"message.body": "set message.body or message.base64Body, not both"}
        if not config.body and config.base64_body is None:
            return {"message.body": "set message.body or message.base64Body"}
        if config.queue_create and config.queue_exclusive:
            return {
                "queue.exclusive": "an exclusive queue belongs to the job's own connection "
                "and is deleted when the job ends, taking the message with it"
            }
        return {}

    def timeout_seconds(self, config: Any) -> float | None:
        return DEFAULT_TIMEOUT

    def execute(self, ctx: ExecutionContext) -> None:
        config: RabbitMQConfig = self.config_of(ctx)
        publish = _Publish(config, parse_amqp_url(config.url), ctx)
        publish.run()
        ctx.output.write(f"rabbitmq: {publish.summary()}; the broker confirmed it\n")


class _Publish(Publisher):
    """One publish with publisher confirms.

    pika's BlockingConnection cannot be interrupted from another thread, so on a kill or the
    deadline the worker is told to stop (`stop`): it checks that before each step and ends by
    itself. Its own network waits are bounded by the same deadline (pika's socket, stack and
    blocked-connection timeouts), so an abandoned worker dies soon after.
    """

    prefix = "rabbitmq"

    def __init__(self, config: RabbitMQConfig, address: AmqpAddress, ctx: ExecutionContext) -> None:
        super().__init__(ctx, DEFAULT_TIMEOUT)
        self.config = config
        self.address = address
        self.job_name = ctx.job_name
        self.connect_host = address.host  # the checked address with the outbound guard on
        self.phase = "connecting to"
        self.connected = False

    def check_endpoints(self) -> None:
        try:  # pika connects to the checked address; TLS still names the URL's host
            self.connect_host = self.ctx.outbound.pin(self.address.host, self.address.port)
        except GuardError as exc:
            raise guard_failure("rabbitmq", exc) from None

    def killed_text(self) -> str:
        return f"publish was killed while {self.phase} {self.address.where}"

    def describe(self, exc: BaseException) -> ExecutorError:
        return _failure(exc, self)

    def summary(self) -> str:
        config = self.config
        exchange = config.exchange_name
        via = f"exchange {exchange!r}" if exchange else "the default exchange"
        text = (
            f"published {len(config.payload)} bytes to {via} with routing key "
            f"{config.queue_name!r} on {self.address.where}"
        )
        if config.message_id:
            text += f", message id {config.message_id!r}"
        return text

    def timeout_error(self) -> ExecutorError:
        limit = format_go_duration(timedelta(seconds=self.timeout))
        return ExecutorError(
            f"rabbitmq: timeout after {limit} while {self.phase} {self.address.where}",
            status="timeout",
        )

    def publish(self) -> None:
        config = self.config
        connection = pika.BlockingConnection(self._parameters())
        self.connected = True
        try:
            if self.stop.is_set():  # killed or timed out while connecting: do nothing more
                return
            self.phase = "opening a channel on"
            channel = connection.channel()
            channel.confirm_delivery()
            if config.queue_create:
                self.phase = f"declaring queue {config.queue_name!r} on"
                channel.queue_declare(
                    queue=config.queue_name,
                    durable=config.queue_durable,
                    auto_delete=config.queue_auto_delete,
                    exclusive=config.queue_exclusive,
                )
            if self.stop.is_set():
                return
            self.phase = "waiting for the broker to confirm the message on"
            channel.basic_publish(
                exchange=config.exchange_name,
                routing_key=config.queue_name,
                body=config.payload,
                properties=pika.BasicProperties(
                    content_type=config.content_type,
                    delivery_mode=config.delivery_mode or None,
                    # The fire key, unless the job sets message.messageId itself; the
                    # fire's fields also as headers (docs/executors.md, the fire key).
                    message_id=config.message_id or self.ctx.fire_key or None,
                    headers=self.ctx.fire_fields() or None,
                ),
                mandatory=True,
            )
        finally:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                if connection.is_open:
                    connection.close()

    def _parameters(self) -> pika.ConnectionParameters:
        address = self.address
        tls = None
        if address.tls:
            tls = pika.SSLOptions(ssl.create_default_context(), server_hostname=address.host)
        # The supervisor gives up at the deadline; a little slack lets it report the timeout
        # itself rather than pika's own stack-timeout message.
        limit = self.timeout + 1.0
        return pika.ConnectionParameters(
            host=self.connect_host,
            port=address.port,
            virtual_host=address.vhost,
            credentials=pika.PlainCredentials(
                address.username, address.password, erase_on_connect=True
            ),
            ssl_options=tls,
            connection_attempts=1,
            socket_timeout=limit,
            stack_timeout=limit,
            blocked_connection_timeout=limit,
            client_properties={"connection_name": f"dkronweb job {self.job_name}"},
        )


def _failure(exc: BaseException, publish: _Publish) -> ExecutorError:
    """A message for each way a publish fails; none of them can contain the password."""
    config, address = publish.config, publish.address
    where = address.where
    if isinstance(
        exc, pika.exceptions.ProbableAuthenticationError | pika.exceptions.AuthenticationError
    ):
        return ExecutorError(
            f"rabbitmq: {where} refused the login of user {address.username!r} "
            f"(ACCESS_REFUSED: wrong user name or password)",
            retryable=False,
        )
    if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
        return ExecutorError(
            f"rabbitmq: {address.hostport} refused user {address.username!r} access to vhost "
            f"{address.vhost!r}: {_reply_text(exc)}",
            retryable=False,
        )
    if isinstance(exc, pika.exceptions.UnroutableError):
        exchange = config.exchange_name
        if not exchange:
            return ExecutorError(
                f"rabbitmq: queue {config.queue_name!r} does not exist on {where}: the broker "
                "returned the message as unroutable (set queue.create to declare the queue)"
            )
        return ExecutorError(
            f"rabbitmq: exchange {exchange!r} on {where} routes nothing for routing key "
            f"{config.queue_name!r}: the broker returned the message as unroutable (bind a "
            "queue to the exchange)"
        )
    if isinstance(exc, pika.exceptions.NackError):
        return ExecutorError(
            f"rabbitmq: the broker did not confirm the message (nack) on {where}; the queue "
            "may be full or the broker short of resources"
        )
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker) and exc.reply_code == 404:
        return ExecutorError(
            f"rabbitmq: exchange {config.exchange_name!r} does not exist on {where} "
            f"({exc.reply_text})"
        )
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
        # 403 ACCESS_REFUSED (no write permission), 406
        # PRECONDITION_FAILED (queue exists with other flags), 405 RESOURCE_LOCKED (exclusive).
        return ExecutorError(
            f"rabbitmq: the broker refused the publish on {where}: {exc.reply_text}",
            retryable=exc.reply_code not in (403, 406),
        )
    if isinstance(exc, AMQPConnectorStackTimeout):
        return ExecutorError(
            f"rabbitmq: timeout connecting to {where}: no AMQP handshake", status="timeout"
        )
    if isinstance(exc, pika.exceptions.ConnectionClosedByBroker):
        return ExecutorError(f"rabbitmq: {where} closed the connection: {exc.reply_text}")
    if not publish.connected and isinstance(
        exc, pika.exceptions.AMQPError | AMQPConnectorException | OSError
    ):
        return ExecutorError(f"rabbitmq: cannot connect to {where}: {_root_reason(exc)}")
    if isinstance(exc, pika.exceptions.AMQPError | OSError):
        return ExecutorError(
            f"rabbitmq: lost the connection to {where} before the broker confirmed the "
            f"message: {_root_reason(exc)}"
        )
    return ExecutorError(f"rabbitmq: publish failed on {where}: {exc!r}")


def _reply_text(exc: BaseException) -> str:
    """The broker's close reason that pika wraps in its `Probable...Error` arguments."""
    for arg in exc.args:
        text = getattr(arg, "reply_text", None) or str(arg)
        match = re.search(r"\(\d+\)\s*['\"]?(.*?)['\"]?\s*$", text)
        if match:
            return match.group(1)
    return str(exc)


def _root_reason(exc: BaseException) -> str:
    """The socket error (or broker reply) inside pika's nested connection errors."""
    seen: Any = exc
    for _ in range(10):
        if isinstance(seen, OSError):
            return seen.strerror or str(seen) or type(seen).__name__
        inner = getattr(seen, "exception", None)
        if inner is None and getattr(seen, "exceptions", None):
            inner = seen.exceptions[-1]
        if inner is None and seen.args and isinstance(seen.args[0], BaseException):
            inner = seen.args[0]
        if inner is None:
            break
        seen = inner
    return str(seen) or type(seen).__name__
