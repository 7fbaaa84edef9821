"""The `kafka` executor: produce one message to a Kafka topic and wait for acks=all.

Dkron's keys and success rule (the broker acknowledged the message with acks=all). A missing
topic is the broker's to create, as with Dkron's producer (`auto.create.topics.enable`, Kafka's
default); `createTopic: "false"` fails the run instead. Unlike Dkron, bad values are rejected at
save time, the SASL password never reaches the output or the logs, and a kill or the job's
timeout stops the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import ssl
import time
import uuid
from typing import Annotated, Any, ClassVar

from kafka import KafkaAdminClient, KafkaProducer
from kafka import errors as kerrors
from kafka.protocol.metadata import MetadataRequest
from pydantic import BeforeValidator, Field, field_validator

from executors.base import (
    ExecutionContext,
    Executor,
    ExecutorConfig,
    ExecutorError,
    with_fire_fields,
)
from executors.netguard import split_host_port
from executors.publisher import Publisher
from executors.values import (
    GoBool,
    check_text,
    comma_items,
    config_error,
    header_pairs,
    seconds_or_duration,
)

__all__ = ["KafkaConfig", "KafkaExecutor", "debug_config"]

DEFAULT_TIMEOUT = 30.0  # seconds; Dkron has no timeout key (Sarama's own limits are ~30 s)
MASK = "********"
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST_PORT = re.compile(
    r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:\[\]/]+)):(?P<port>\d{1,5})"
)
_MECHANISMS = {
    "sha256": "SCRAM-SHA-256",
    "scram-sha-256": "SCRAM-SHA-256",
    "sha512": "SCRAM-SHA-512",
    "scram-sha-512": "SCRAM-SHA-512",
    "plain": "PLAIN",
}


def _parse_brokers(value: Any) -> Any:
    """Dkron's comma list of host:port; every entry needs a port (Sarama cannot dial without)."""
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str):
        raise config_error("broker_address", 'brokerAddress must be a string "host:port,..."')
    brokers: list[str] = []
    for item in comma_items(value):
        match = _HOST_PORT.fullmatch(item)
        if not match or not 1 <= int(match.group("port")) <= 65535:
            raise config_error(
                "broker_address",
                f"broker {item!r} is not host:port (e.g. kafka-1:9092 or [::1]:9092)",
            )
        brokers.append(item)
    if not brokers:
        raise config_error("missing", "brokerAddress is empty")
    return brokers


def _parse_mechanism(value: Any) -> Any:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise config_error("sasl_mechanism", "saslMechanism must be sha256, sha512 or plain")
    text = value.strip().lower()
    if not text:
        return ""
    if text not in _MECHANISMS:
        raise config_error(
            "sasl_mechanism",
            f"invalid SASL mechanism {value!r}: must be 'sha256', 'sha512' or 'plain'",
        )
    return _MECHANISMS[text]


class KafkaConfig(ExecutorConfig):
    """Dkron's kafka keys (camelCase as in Dkron); values may be Dkron's strings."""

    broker_address: Annotated[list[str], BeforeValidator(_parse_brokers)] = Field(
        alias="brokerAddress", description="Comma list of bootstrap brokers, host:port."
    )
    topic: str = Field(description="Topic to produce to.")
    key: str = Field("", description="Record key; empty sends no key (null).")
    message: str = Field("", description="Record value (UTF-8).")
    headers: Annotated[list[tuple[str, str]], header_pairs()] = Field(
        default_factory=list, description='["Name: value"] or {"Name": "value"}.'
    )
    tls_enable: GoBool = Field(False, alias="tlsEnable", description="Connect with TLS.")
    tls_insecure_skip_verify: GoBool = Field(
        False, alias="tlsInsecureSkipVerify", description="Do not verify the broker certificate."
    )
    sasl_username: str = Field(
        "", alias="saslUsername", description="SASL user (PLAIN or SCRAM); needs saslPassword."
    )
    sasl_password: str = Field("", alias="saslPassword", description="Write-only.", repr=False)
    sasl_mechanism: Annotated[str, BeforeValidator(_parse_mechanism)] = Field(
        "", alias="saslMechanism", description="sha256, sha512 (SCRAM) or plain."
    )
    create_topic: GoBool = Field(
        True,
        alias="createTopic",
        description=(
            "Let the broker create a missing topic (it does when its auto.create.topics.enable "
            "is on, Kafka's default), as Dkron does; false fails the run when the topic does "
            "not exist. Not a Dkron key."
        ),
    )
    debug: GoBool = Field(False, description="Prepend the config (password masked) to output.")
    timeout: Annotated[float, seconds_or_duration(DEFAULT_TIMEOUT)] = Field(
        DEFAULT_TIMEOUT, description="Limit for connect + produce + ack; not a Dkron key."
    )

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        message = (
            "topic {value!r} is not a valid Kafka topic name "
            "(up to 249 of a-z, A-Z, 0-9, '.', '_', '-')"
        )
        value = check_text(value, _TOPIC, message, missing="topic is empty", kind="topic")
        if value in (".", ".."):
            raise config_error("topic", message.format(value=value))
        return value


class KafkaExecutor(Executor):
    name = "kafka"
    description = "Produce a message to a Kafka topic; success is the broker's acks=all."
    config_schema = KafkaConfig
    secret_keys: ClassVar[frozenset[str]] = frozenset({"saslPassword"})
    # Where the password goes, and whether it can be read on the way (TLS off, PLAIN).
    destination_keys: ClassVar[frozenset[str]] = frozenset(
        {"brokerAddress", "tlsEnable", "tlsInsecureSkipVerify", "saslMechanism"}
    )

    def check_config(self, config: KafkaConfig) -> dict[str, str]:
        errors: dict[str, str] = {}
        if config.sasl_username and not config.sasl_password:
            errors["saslPassword"] = "needed with saslUsername"
        if config.sasl_password and not config.sasl_username:
            errors["saslUsername"] = "needed with saslPassword"
        if config.sasl_username and config.sasl_password and not config.sasl_mechanism:
            errors["saslMechanism"] = (
                "invalid SASL mechanism: must be 'sha256', 'sha512' or 'plain' when "
                "saslUsername and saslPassword are set"
            )
        if config.sasl_mechanism and not (config.sasl_username or config.sasl_password):
            errors["saslMechanism"] = "needs saslUsername and saslPassword"
        if config.tls_insecure_skip_verify and not config.tls_enable:
            errors["tlsInsecureSkipVerify"] = "needs tlsEnable"
        return errors

    def execute(self, ctx: ExecutionContext) -> None:
        config: KafkaConfig = self.config_of(ctx)
        if config.debug:
            ctx.output.write(f"Config: {json.dumps(debug_config(config))}\n")
        if config.sasl_mechanism == "PLAIN" and not config.tls_enable:
            ctx.output.write("Warning: SASL PLAIN without tlsEnable sends the password in clear\n")
        meta = _Produce(config, ctx).run()
        ctx.output.write(
            "Result: successfully produced the message on Kafka broker "
            f"(topic {meta.topic!r}, partition {meta.partition}, offset {meta.offset})\n"
        )


def debug_config(config: KafkaConfig) -> dict[str, Any]:
    """The config as Dkron's keys, with the SASL password masked."""
    shown = config.model_dump(by_alias=True)
    shown["brokerAddress"] = ",".join(config.broker_address)
    shown["headers"] = [f"{name}: {value}" for name, value in config.headers]
    shown["timeout"] = _seconds(config.timeout)
    if shown.get("saslPassword"):
        shown["saslPassword"] = MASK
    return shown


class _ClientErrors(logging.Handler):
    """Collects the connection errors kafka-python only logs while it retries a bootstrap.

    kafka-python retries a refused connection, a failed TLS handshake or a refused SASL login
    until its bootstrap timeout and then raises only "Unable to bootstrap"; the cause is in its
    log records. Records from this run's threads (the worker, named after the run's unique
    client id, and the clients' I/O threads, which kafka-python names after it too) are kept
    so the failure can say what went wrong.
    """

    def __init__(self, client_id: str) -> None:
        super().__init__(logging.DEBUG)
        self.client_id = client_id
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.client_id not in (record.threadName or ""):
            return
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, BaseException) and not isinstance(arg, kerrors.KafkaTimeoutError):
                self.errors.append(arg)


class _Produce(Publisher):
    """One produce. kafka-python's calls block (bootstrap, metadata, the ack future) and
    cannot be interrupted, so every client timeout is set to what is left of the job's
    timeout: an abandoned worker ends on its own within the same deadline and closes its
    clients.
    """

    prefix = "kafka"

    def __init__(self, config: KafkaConfig, ctx: ExecutionContext) -> None:
        super().__init__(ctx, config.timeout)
        self.config = config
        self.client_id = f"dkronweb-kafka-{uuid.uuid4().hex[:12]}"
        self.phase = "connect"
        self.errors = _ClientErrors(self.client_id)

    @property
    def where(self) -> str:
        return ",".join(self.config.broker_address)

    def endpoints(self) -> list[tuple[str, int]]:
        # kafka-python resolves and connects by itself: every bootstrap broker is checked.
        return [split_host_port(b, 9092) for b in self.config.broker_address]

    def thread_name(self) -> str:
        return self.client_id  # _ClientErrors knows this run's records by it

    def run(self) -> Any:
        kafka_log = logging.getLogger("kafka")
        kafka_log.addHandler(self.errors)
        try:
            meta = super().run()
        finally:
            kafka_log.removeHandler(self.errors)
        if meta is None:  # the worker saw the cancel before sending
            raise self.timeout_error() if self.ctx.cancel.reason == "timeout" else self.killed()
        return meta

    def early_failure(self) -> ExecutorError | None:
        # kafka-python retries a refused login until its timeout; it will not pass.
        return self._auth_failure()

    def killed_text(self) -> str:
        note = " (it may still have been delivered)" if self.phase == "ack" else ""
        return f"producing to {self.config.topic!r} was killed{note}"

    def _remaining_ms(self) -> int:
        return max(1, int((self.deadline - time.monotonic()) * 1000))

    def _common(self) -> dict[str, Any]:
        config = self.config
        options: dict[str, Any] = {
            "bootstrap_servers": config.broker_address,
            "client_id": self.client_id,
            "security_protocol": "PLAINTEXT",
            "reconnect_backoff_max_ms": 1000,
        }
        if config.tls_enable:
            tls = ssl.create_default_context()
            if config.tls_insecure_skip_verify:
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
            options["ssl_context"] = tls
            options["security_protocol"] = "SSL"
        if config.sasl_mechanism:
            options["security_protocol"] = "SASL_SSL" if config.tls_enable else "SASL_PLAINTEXT"
            options["sasl_mechanism"] = config.sasl_mechanism
            options["sasl_plain_username"] = config.sasl_username
            options["sasl_plain_password"] = config.sasl_password
        return options

    def publish(self) -> Any:
        config = self.config
        # 1. Look the topic up, allowing the broker to create it only with createTopic. The
        #    answer tells a broker that will not create it (unknown topic) from one that is
        #    creating it (no leader yet), so the run fails at once instead of at its timeout;
        #    Sarama, Dkron's client, also fails on the unknown topic after its metadata retries.
        #    kafka-python 3.0.12 never lets the producer's own metadata requests forbid
        #    creation, so with createTopic false this lookup is what keeps the topic uncreated.
        admin = KafkaAdminClient(
            **self._common(),
            bootstrap_timeout_ms=self._remaining_ms(),
            request_timeout_ms=self._remaining_ms(),
        )
        try:
            self.phase = "metadata"
            described = _topic_metadata(admin, config.topic, create=config.create_topic)
        finally:
            admin.close()
        error = kerrors.for_code(described["error_code"])
        creating = config.create_topic and error is kerrors.LeaderNotAvailableError
        if error in (kerrors.UnknownTopicOrPartitionError, kerrors.TopicAuthorizationFailedError):
            raise error()
        if error is not kerrors.NoError and not creating:
            raise ExecutorError(
                f"kafka: topic {config.topic!r} is not available on {self.where}: "
                f"{_reason(error())}"
            )
        if self.stopped():
            return None
        if config.debug:
            partitions = len(described.get("partitions") or [])
            if creating:
                self.ctx.output.write(f"Topic {config.topic!r} is being created by the broker\n")
            else:
                self.ctx.output.write(f"Topic {config.topic!r} has {partitions} partition(s)\n")
        # 2. Produce and wait for the acknowledgement of all in-sync replicas.
        self.phase = "connect"
        remaining = self._remaining_ms()
        producer = KafkaProducer(
            **self._common(),
            acks="all",
            allow_auto_create_topics=config.create_topic,
            linger_ms=0,
            bootstrap_timeout_ms=remaining,
            max_block_ms=remaining,
            request_timeout_ms=remaining,
            delivery_timeout_ms=remaining,
        )
        delivered = False
        try:
            if self.stopped():  # never send after the run was reported killed or timed out
                return None
            self.phase = "send"
            future = producer.send(
                config.topic,
                value=config.message.encode(),
                key=config.key.encode() if config.key else None,
                # The fire key after the job's own headers (one the job names itself wins).
                headers=[(name, value.encode()) for name, value in self.headers()],
            )
            self.phase = "ack"
            meta = future.get(timeout=self._remaining_ms() / 1000)
            delivered = True
            return meta
        finally:
            # kafka-python cannot drop a queued record (close(0) raises while one is pending),
            # so wait for it to expire: its delivery timeout ends at this run's deadline.
            wait = 1.0 if delivered else self._remaining_ms() / 1000 + 1
            with contextlib.suppress(Exception):
                producer.close(timeout=wait)

    def headers(self) -> list[tuple[str, str]]:
        return with_fire_fields(self.config.headers, self.ctx.fire_fields())

    def timeout_error(self) -> ExecutorError:
        cause = self._connection_failure()
        if cause is not None and self.phase in ("connect", "metadata"):
            return cause
        limit = _seconds(self.timeout)
        if self.phase == "ack":
            text = f"the broker did not confirm the message within {limit} (acks=all)"
        elif self.phase in ("metadata", "send"):
            text = f"no metadata for topic {self.config.topic!r} within {limit}"
        else:
            text = f"no broker of {self.where} answered within {limit}"
        return ExecutorError(f"kafka: {text}", status="timeout")

    def _auth_failure(self) -> ExecutorError | None:
        for exc in self.errors.errors:
            if isinstance(exc, _AUTH_ERRORS):
                return _auth_refused(self.where, exc)
        return None

    def _connection_failure(self) -> ExecutorError | None:
        """The last connection error the client logged, as a clear failure; None if none."""
        for exc in reversed(self.errors.errors):
            if isinstance(exc, _AUTH_ERRORS):
                return _auth_refused(self.where, exc)
            if isinstance(exc, TimeoutError):
                continue  # says nothing the deadline does not
            if isinstance(exc, kerrors.KafkaConnectionError | OSError):
                reason = _reason(exc)
                if "ECONNREFUSED" in reason or isinstance(exc, ConnectionRefusedError):
                    reason = "connection refused"
                if "Handshake failed" in reason or "SSL" in reason:
                    return ExecutorError(f"kafka: TLS handshake with {self.where} failed: {reason}")
                return ExecutorError(f"kafka: cannot connect to {self.where}: {reason}")
        return None

    def describe(self, exc: BaseException) -> ExecutorError:
        topic = self.config.topic
        limit = _seconds(self.timeout)
        if isinstance(exc, kerrors.UnknownTopicOrPartitionError):
            why = (
                "and the broker does not create topics (auto.create.topics.enable is off)"
                if self.config.create_topic
                else '(createTopic is "false")'
            )
            return ExecutorError(f"kafka: topic {topic!r} does not exist on {self.where} {why}")
        if isinstance(exc, kerrors.TopicAuthorizationFailedError):
            return ExecutorError(
                f"kafka: not authorized to use topic {topic!r} on {self.where}", retryable=False
            )
        if isinstance(exc, _AUTH_ERRORS):
            return _auth_refused(self.where, exc)
        if isinstance(exc, kerrors.AuthorizationError):
            # e.g. no IDEMPOTENT_WRITE on a pre-3.0 cluster with ACLs
            return ExecutorError(
                f"kafka: not authorized on {self.where}: {_reason(exc)}", retryable=False
            )
        if isinstance(exc, kerrors.KafkaTimeoutError):
            if self.phase in ("connect", "metadata"):
                cause = self._connection_failure()
                if cause is not None:
                    return cause
                return ExecutorError(
                    f"kafka: no broker of {self.where} answered within {limit}", status="timeout"
                )
            if self.phase == "send":
                return ExecutorError(
                    f"kafka: no metadata for topic {topic!r} within {limit}", status="timeout"
                )
            return ExecutorError(
                f"kafka: the broker did not confirm the message within {limit} (acks=all)",
                status="timeout",
            )
        if isinstance(exc, kerrors.KafkaConnectionError):
            cause = self._connection_failure()
            return cause or ExecutorError(f"kafka: cannot connect to {self.where}: {_reason(exc)}")
        if isinstance(exc, kerrors.BrokerResponseError):
            return ExecutorError(
                f"kafka: the broker refused the message for topic {topic!r}: {_reason(exc)}",
                retryable=bool(getattr(exc, "retriable", True)),
            )
        return ExecutorError(f"kafka: producing to {topic!r} failed: {_reason(exc)}")


_AUTH_ERRORS = (
    kerrors.SaslAuthenticationFailedError,
    kerrors.UnsupportedSaslMechanismError,
    kerrors.IllegalSaslStateError,
)


def _topic_metadata(admin: KafkaAdminClient, topic: str, *, create: bool) -> dict[str, Any]:
    """The broker's metadata for one topic, asking it to create a missing one when `create`.

    KafkaAdminClient.describe_topics always sends allow_auto_topic_creation=false, so the
    request goes through the admin client's own connection manager instead.
    """

    async def lookup() -> dict[str, Any]:
        request = MetadataRequest(
            topics=[MetadataRequest.MetadataRequestTopic(name=topic)],
            allow_auto_topic_creation=create,
            include_cluster_authorized_operations=False,
            include_topic_authorized_operations=False,
        )
        response = await admin._manager.send(request)
        return dict(response.to_dict())

    metadata = admin._manager.run(lookup)
    [described] = [t for t in metadata["topics"] if t["name"] == topic]
    return dict(described)


def _auth_refused(where: str, exc: BaseException) -> ExecutorError:
    # A wrong password or a missing ACL does not fix itself on retry.
    return ExecutorError(
        f"kafka: authentication refused by {where}: {_reason(exc)}", retryable=False
    )


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _reason(exc: BaseException) -> str:
    """The error's own words: kafka-python nests "Name: " prefixes and "[Error N]" tags."""
    if isinstance(exc, kerrors.KafkaError):
        text = str(exc.args[0]) if exc.args else ""
        if not text and isinstance(exc, kerrors.BrokerResponseError):
            text = f"{exc.message or type(exc).__name__}: {exc.description or ''}".rstrip(": ")
        prefix = re.compile(r"^(?:\[Error -?\d+\] )?[A-Z][A-Za-z]+(?:Error|Exception): ")
        while prefix.match(text):
            text = prefix.sub("", text, count=1)
    else:
        text = str(exc)
    return text.strip() or type(exc).__name__
