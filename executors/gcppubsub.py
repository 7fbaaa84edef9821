"""The `gcppubsub` executor: publish one message to a Google Cloud Pub/Sub topic.

Dkron's keys (`project`, `topic`, `data`, `attributes`) plus `orderingKey` and `timeout`. The
output is the message id the server assigned, as in Dkron. Credentials come from Google's
usual chain (Application Default Credentials); `PUBSUB_EMULATOR_HOST` points the client at an
emulator instead, as every Google client library does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from typing import Annotated, Any, ClassVar

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
from executors.values import base64_bytes, check_text, config_error, whole_seconds

__all__ = ["PubSubConfig", "PubSubExecutor"]

DEFAULT_TIMEOUT = 15  # seconds; Dkron's publish timeout
MAX_ATTRIBUTES = 100  # Pub/Sub's limit per message
# Pub/Sub's rule for topic ids: 3-255 characters, a letter first, not starting with "goog".
_TOPIC_ID = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
# Project ids (and the legacy "domain.com:project" form); anything with '/' would change the path.
_PROJECT_ID = re.compile(r"[a-z0-9][a-z0-9.:\-]*[a-z0-9]")


def _parse_attributes(value: Any) -> Any:
    """A JSON object of string values, as Dkron's string, or an object sent as JSON."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise config_error(
                "gcppubsub", f'attributes must be a JSON object such as {{"key": "value"}}: {exc}'
            ) from None
    if not isinstance(value, dict):
        raise config_error("gcppubsub", 'attributes must be a JSON object such as {"key": "value"}')
    for key, item in value.items():
        if not key:
            raise config_error("gcppubsub", "an attribute name is empty")
        if not isinstance(item, str):
            raise config_error("gcppubsub", f"the value of attribute {key!r} must be a string")
    return value


class PubSubConfig(ExecutorConfig):
    """Dkron's gcppubsub keys; values may be Dkron's strings (attributes as a JSON string)."""

    project: str = Field(description="Google Cloud project id.")
    topic: str = Field(description="Topic id within the project (not the full path).")
    data: Annotated[bytes, base64_bytes("data")] = Field(b"", description="Message data, base64.")
    attributes: Annotated[dict[str, str], BeforeValidator(_parse_attributes)] = Field(
        default_factory=dict, description='JSON object of string values, e.g. {"k": "v"}.'
    )
    ordering_key: str = Field("", alias="orderingKey", description="Message ordering key.")
    timeout: Annotated[int, whole_seconds(DEFAULT_TIMEOUT, kind="gcppubsub")] = Field(
        DEFAULT_TIMEOUT, description="Seconds for the publish, retries included."
    )

    @field_validator("project")
    @classmethod
    def _project_id(cls, value: str) -> str:
        return check_text(
            value,
            _PROJECT_ID,
            "project {value!r} is not a Google Cloud project id",
            missing="missing project",
            kind="gcppubsub",
        )

    @field_validator("topic")
    @classmethod
    def _topic_id(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise config_error("missing", "missing topic")
        if value.startswith("projects/"):
            raise config_error(
                "gcppubsub",
                "topic takes the topic's id (e.g. my-topic), not its full path; "
                "the project goes in project",
            )
        if not _TOPIC_ID.fullmatch(value) or value.lower().startswith("goog"):
            raise config_error(
                "gcppubsub",
                f"topic {value!r} is not a valid topic id (3-255 characters: letters, digits "
                "and - _ . ~ + %, starting with a letter and not with 'goog')",
            )
        return value


class PubSubExecutor(Executor):
    name = "gcppubsub"
    description = "Publish a message to a Google Cloud Pub/Sub topic; output is its message id."
    config_schema = PubSubConfig
    secret_keys: ClassVar[frozenset[str]] = frozenset()

    def check_config(self, config: PubSubConfig) -> dict[str, str]:
        if not config.data and not config.attributes:
            # Pub/Sub rejects a message with neither (Dkron checks this too).
            return {"data": "at least one of data and attributes must be set"}
        return {}

    def execute(self, ctx: ExecutionContext) -> None:
        config: PubSubConfig = self.config_of(ctx)
        message_id = _Publish(config, ctx).run()
        # Dkron's output is the message id alone; processors may rely on that.
        ctx.output.write(f"{message_id}\n")


class _Publish(Publisher):
    """One Publish RPC.

    This uses the generated client (`google.pubsub_v1.PublisherClient`), the one underneath
    `google.cloud.pubsub_v1.PublisherClient`, and not that batching wrapper: the wrapper takes
    attributes as keyword arguments (an attribute named `data`, `timeout` or `ordering_key`
    collides with its parameters), and with an ordering key it retries forever, whereas one
    RPC with our own retry and deadline is all a single message needs. The ordering key is a
    field of the message; client-side ordering only matters across several messages.
    """

    prefix = "gcppubsub"
    grace = 1.0  # api_core's retry gives up at `timeout`; the grace lets it report its last error

    def __init__(self, config: PubSubConfig, ctx: ExecutionContext) -> None:
        super().__init__(ctx, float(config.timeout))
        self.config = config
        self.topic = f"projects/{config.project}/topics/{config.topic}"
        self.target = os.environ.get("PUBSUB_EMULATOR_HOST") or "pubsub.googleapis.com:443"
        self.client: Any = None
        self.last_error: BaseException | None = None  # the last retried error, if any
        self.lock = threading.Lock()

    def endpoints(self) -> list[tuple[str, int]]:
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        return [split_host_port(emulator, 8085) if emulator else ("pubsub.googleapis.com", 443)]

    def publish(self) -> str:
        # Google's libraries are imported on first run (about 0.25 s), not when the API
        # validates a job's config at save time.
        from google.api_core import retry as retries
        from google.pubsub_v1 import PublisherClient, PubsubMessage

        try:
            client = PublisherClient()
            with self.lock:
                if self.stop.is_set():
                    _close(client)
                    return ""
                self.client = client
            retry = retries.Retry(
                predicate=retries.if_exception_type(*_retryable()),
                initial=0.1,
                maximum=2.0,
                multiplier=2.0,
                timeout=self.timeout,
                on_error=self._note,
            )
            message = PubsubMessage(
                data=self.config.data,
                attributes=self.attributes(),
                ordering_key=self.config.ordering_key,
            )
            response = client.publish(
                topic=self.topic, messages=[message], retry=retry, timeout=self.timeout
            )
            return str(response.message_ids[0])
        finally:
            with self.lock:
                if self.client is not None:
                    _close(self.client)

    def attributes(self) -> dict[str, str]:
        """The job's attributes, then the fire key's (one the job names itself wins), within
        Pub/Sub's 100 attributes a message: a job already at the limit publishes as before."""
        pairs = with_fire_fields(self.config.attributes.items(), self.ctx.fire_fields())
        return dict(pairs) if len(pairs) <= MAX_ATTRIBUTES else dict(self.config.attributes)

    def _note(self, exc: BaseException) -> None:
        self.last_error = exc

    def abandon(self) -> None:
        """Close the channel so the RPC in flight fails and the worker thread ends."""
        with self.lock:
            if self.client is not None:
                _close(self.client)

    def killed_text(self) -> str:
        return f"publish to {self.topic} was killed"

    def timeout_error(self) -> ExecutorError:
        from google.api_core import exceptions as gexc

        last = self.last_error
        detail = ""
        if last is not None and not isinstance(last, gexc.DeadlineExceeded):
            detail = f" (last error: {_describe(last)})"
        return ExecutorError(
            f"gcppubsub: timeout after {self.timeout:g}s publishing to {self.topic} "
            f"at {self.target}{detail}",
            status="timeout",
        )

    def describe(self, exc: BaseException) -> ExecutorError:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc

        if isinstance(exc, gexc.RetryError):
            cause = exc.cause or self.last_error
            if isinstance(cause, gexc.ServiceUnavailable):
                return ExecutorError(
                    f"gcppubsub: cannot connect to {self.target}: {_describe(cause)} "
                    f"(gave up after {self.timeout:g}s)"
                )
            return self.timeout_error()
        if isinstance(exc, gexc.NotFound):
            return ExecutorError(f"gcppubsub: topic {self.topic} does not exist")
        if isinstance(exc, gexc.PermissionDenied | gexc.Unauthenticated):
            return ExecutorError(
                f"gcppubsub: permission denied publishing to {self.topic}: {_describe(exc)}",
                retryable=False,
            )
        if isinstance(exc, gexc.DeadlineExceeded):
            return self.timeout_error()
        if isinstance(exc, gexc.ServiceUnavailable):
            return ExecutorError(f"gcppubsub: cannot connect to {self.target}: {_describe(exc)}")
        if isinstance(exc, gexc.InvalidArgument):
            return ExecutorError(
                f"gcppubsub: the server rejected the message for {self.topic}: {_describe(exc)}",
                retryable=False,
            )
        if isinstance(exc, gexc.GoogleAPICallError):
            return ExecutorError(
                f"gcppubsub: publish to {self.topic} failed: {exc.code}: {_describe(exc)}"
            )
        if isinstance(exc, auth_exc.GoogleAuthError):
            reason = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
            return ExecutorError(
                f"gcppubsub: no usable Google credentials on this agent ({reason}); set "
                "GOOGLE_APPLICATION_CREDENTIALS, run on Google Cloud, or set "
                "PUBSUB_EMULATOR_HOST for an emulator"
            )
        return ExecutorError(f"gcppubsub: publish to {self.topic} failed: {exc!r}")


def _retryable() -> tuple[type[Exception], ...]:
    """The errors Google's own Publish retry settings retry."""
    from google.api_core import exceptions as gexc

    return (
        gexc.Aborted,
        gexc.DeadlineExceeded,
        gexc.InternalServerError,
        gexc.ResourceExhausted,
        gexc.ServiceUnavailable,
        gexc.Unknown,
    )


def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        client.transport.close()


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    return str(message or exc) or type(exc).__name__
