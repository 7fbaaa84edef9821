"""The executor contract: a name, a config schema, and `execute(context)`.

Executors never touch the database. The agent validates the job's config once, with
`Executor.validate`, and hands `execute` the typed result (an instance of `config_schema`) in
the context, with a bounded output sink and a cancel signal; `execute` returns on success or
raises `ExecutorError`. No executor validates again: `Executor.config_of` hands back that
instance (and validates only a raw map that a hand-built context carries).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar, overload
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

import confidential
from executors.netguard import Guard, GuardError
from executors.output import OutputSink
from executors.values import rfc3339

# The fire key's fields as every executor that talks to another system sends them (HTTP
# headers; message headers or attributes; gRPC metadata in lower case). One definition here,
# documented in docs/executors.md ("Making a target exactly-once: the fire key").
FIRE_KEY_HEADER = "Idempotency-Key"
SCHEDULED_TIME_HEADER = "X-Dkron-Scheduled-Time"
ATTEMPT_HEADER = "X-Dkron-Attempt"
EXECUTION_HEADER = "X-Dkron-Execution"

V = TypeVar("V")


def guard_failure(prefix: str, exc: GuardError) -> ExecutorError:
    """The ExecutorError for a connection the outbound guard refused or could not check."""
    return ExecutorError(f"{prefix}: {exc}", retryable=exc.retryable)


def check_outbound(ctx: ExecutionContext, prefix: str, targets: Iterable[tuple[str, int]]) -> None:
    """Check every (host, port) a client library is about to connect to by itself; raise the
    run's ExecutorError if the guard refuses one (executors.netguard.Guard.check_host)."""
    for host, port in targets:
        try:
            ctx.outbound.check_host(host, port)
        except GuardError as exc:
            raise guard_failure(prefix, exc) from None


def with_fire_fields(
    configured: Iterable[tuple[str, V]], fields: Mapping[str, str], *, lower: bool = False
) -> list[tuple[str, V | str]]:
    """The job's own (name, value) pairs, then each fire field the job does not set itself:
    a header the job's config names (case-insensitively) wins, so a job that already sends
    its own Idempotency-Key keeps it. `lower` lower-cases the fields' names (gRPC metadata).
    """
    pairs: list[tuple[str, V | str]] = list(configured)
    taken = {name.lower() for name, _ in pairs}
    for name, value in fields.items():
        if name.lower() not in taken:
            pairs.append((name.lower() if lower else name, value))
    return pairs


class ExecutorError(Exception):
    """A failed run. `retryable=False` marks failures a retry cannot fix (bad config, kill)."""

    def __init__(self, message: str, *, retryable: bool = True, status: str = "failed") -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        # "failed", "timeout" or "killed": the execution status the agent records.
        self.status = status


class ConfigError(ValueError):
    """Invalid executor config; `errors` maps a Dkron key name to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class ExecutorConfig(BaseModel):
    """Base for executor config schemas.

    Lax mode lets Dkron's string-typed values (`"true"`, `"30"`) coerce to native types;
    unknown keys are rejected so a typo is an error at save time, not a silent default.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=False)


class CancelToken:
    """Why and whether a run must stop; set by the agent on kill or on Celery's soft limit."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""  # "killed" or "timeout"

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


@dataclass
class ExecutionContext:
    """Everything an executor may know about the run it performs."""

    job_name: str
    config: Any  # an instance of the executor's `config_schema`
    output: OutputSink
    cancel: CancelToken = field(default_factory=CancelToken)
    execution_id: str = ""
    attempt: int = 1
    scheduled_at: datetime | None = None
    # Used when the config has no timeout of its own (settings.DKRON_DEFAULT_MAX_RUNTIME).
    default_timeout: float | None = None
    # The outbound guard (executors.netguard; DKRON_BLOCK_PRIVATE, DKRON_OUTBOUND_ALLOW): every
    # executor that opens a connection checks its target with it first.
    outbound: Guard = field(default_factory=Guard)
    # Shorthand for outbound=Guard(block_private=True) with no allow-list.
    block_private: bool = False
    # Names of the agent's environment variables a job process gets beyond the shell
    # executor's base allow-list (settings.DKRON["JOB_ENV_PASSTHROUGH"]); "NAME*" is a prefix.
    env_passthrough: tuple[str, ...] = ()
    # The run's parameters as environment variables (DKRON_PARAM_<NAME>), for executors that
    # start a process (shell, docker); other executors get them through the config's
    # `{{ params.<name> }}` placeholders, substituted by the agent.
    param_env: Mapping[str, str] = field(default_factory=dict)
    # The run (Dkron's execution `group`) this attempt belongs to: a manual run's fire key.
    run_id: str = ""

    @property
    def fire_key(self) -> str:
        """What a target deduplicates on: `<job>@<scheduled time>` (RFC 3339, UTC), the same
        for every attempt of one fire, on every node, whichever agent runs it; a manual run
        has no scheduled time and is `<job>@run-<run id>` instead, the same for its retries.

        ASCII only, so it fits an HTTP header and gRPC metadata as it is: a job name's
        non-ASCII letters are percent-encoded (UTF-8), its ASCII ones (a-z, 0-9, `_`, `-`)
        stay as they are.
        """
        name = quote(self.job_name, safe="")
        if self.scheduled_at is not None:
            return f"{name}@{rfc3339(self.scheduled_at)}"
        if self.run_id:
            return f"{name}@run-{self.run_id}"
        if self.execution_id:  # a context built by hand, naming only its execution
            return f"{name}@execution-{self.execution_id}"
        return ""  # a context built by hand that names no run: no fire key to send

    def fire_fields(self) -> dict[str, str]:
        """The fire key and its companions, by header name: the scheduled time (scheduled
        fires only), the attempt (from 1) and the execution id (unique per attempt and node).
        Empty for a context that names no run (built by hand, as in a plugin host)."""
        if not self.fire_key:
            return {}
        fields = {FIRE_KEY_HEADER: self.fire_key}
        if self.scheduled_at is not None:
            fields[SCHEDULED_TIME_HEADER] = rfc3339(self.scheduled_at)
        fields[ATTEMPT_HEADER] = str(self.attempt)
        if self.execution_id:
            fields[EXECUTION_HEADER] = str(self.execution_id)
        return fields

    def run_env(self) -> dict[str, str]:
        """The DKRON_* variables a job process or container gets (shell, docker, ecs): which
        run it is, and the fire key. Set after the job's own env, so a job cannot fake them."""
        return {
            "DKRON_JOB_NAME": self.job_name,
            "DKRON_EXECUTION_ID": str(self.execution_id),
            "DKRON_ATTEMPT": str(self.attempt),
            "DKRON_SCHEDULED_AT": rfc3339(self.scheduled_at),
            "DKRON_FIRE_KEY": self.fire_key,
        }

    def __post_init__(self) -> None:
        if self.block_private and not self.outbound.block_private:
            self.outbound = Guard(block_private=True, allow=self.outbound.allow)
        self.block_private = self.outbound.block_private

    @overload
    def limit(self, own: float) -> float: ...
    @overload
    def limit(self, own: None) -> float | None: ...
    def limit(self, own: float | None) -> float | None:
        """The run's time limit in seconds: the config's own, capped by the agent's default
        (`default_timeout`); the default alone when the config has none; None: no limit."""
        if own is None:
            return self.default_timeout or None
        if self.default_timeout:
            return min(own, self.default_timeout)
        return own


class Executor:
    """Subclass, set `name` and `config_schema`, implement `execute`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_schema: ClassVar[type[ExecutorConfig]] = ExecutorConfig
    # Dkron key names whose values are write-only (masked in API output, never logged).
    secret_keys: ClassVar[frozenset[str]] = frozenset()
    # Keys holding named entries whose every value is write-only, the names staying readable:
    # key -> confidential.ENV ("K=V,K2=V2") or HEADERS ('["Name: value"]').
    secret_entries: ClassVar[Mapping[str, str]] = {}
    # Keys holding a URL whose credentials are write-only, the rest readable:
    # key -> confidential.URL (password and key-like query parameters) or WEBHOOK.
    secret_urls: ClassVar[Mapping[str, str]] = {}
    # Keys that decide where the secrets go (URL, broker, region; the command or image that
    # receives an environment): a masked secret is kept only while these are unchanged.
    destination_keys: ClassVar[frozenset[str]] = frozenset()
    # True for executors that run code or touch hosts (gated by their own permission).
    runs_code: ClassVar[bool] = False
    # Keys that Dkron itself checks at save time (its Job.Validate). A bad value there is
    # refused everywhere, restore included; other config errors let a restore store the job
    # with the finding (a Dkron backup must restore whole).
    dkron_checked_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def secret_spec(cls) -> confidential.Spec:
        """The secret and destination keys, each under both spellings the schema accepts
        (Dkron's camelCase alias and the field name): `sasl_password` is as secret as
        `saslPassword`."""
        spellings: dict[str, set[str]] = {}
        for name, info in cls.config_schema.model_fields.items():
            both = {name, info.alias or name}
            for spelling in both:
                spellings[spelling] = both

        def every(keys: Iterable[str]) -> frozenset[str]:
            return frozenset(s for k in keys for s in spellings.get(k, {k}))

        def each(kinds: Mapping[str, str]) -> dict[str, str]:
            return {s: kind for k, kind in kinds.items() for s in spellings.get(k, {k})}

        return confidential.Spec(
            keys=every(cls.secret_keys),
            entries=each(cls.secret_entries),
            urls=each(cls.secret_urls),
            destinations=every(cls.destination_keys),
        )

    def validate(self, raw: dict[str, Any]) -> ExecutorConfig:
        """Parse a Dkron config map; raise `ConfigError` naming each bad key."""
        from pydantic import ValidationError

        try:
            config = self.config_schema.model_validate(raw or {})
        except ValidationError as exc:
            errors: dict[str, str] = {}
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"]) or "executor_config"
                msg = err["msg"]
                if err["type"] == "extra_forbidden":
                    msg = "unknown key"
                errors[key] = msg
            raise ConfigError(errors) from None
        problems = self.check_config(config)
        if problems:
            raise ConfigError(problems)
        return config

    def check_config(self, config: Any) -> dict[str, str]:
        """The rules that span several keys, once each key is valid on its own: a message per
        Dkron key to change; empty when the config is good."""
        return {}

    def config_of(self, ctx: ExecutionContext) -> Any:
        """The run's config as this executor's `config_schema` instance.

        The agent puts the validated instance in the context, so this normally returns it as
        it is. A context built by hand with a raw Dkron map (a plugin host, a script) has it
        validated here, once; a bad map fails the run and is not retried.
        """
        if isinstance(ctx.config, self.config_schema):
            return ctx.config
        try:
            return self.validate(ctx.config)
        except ConfigError as exc:
            raise ExecutorError(f"invalid {self.name} config: {exc}", retryable=False) from None

    def timeout_seconds(self, config: Any) -> float | None:
        """The run's own time limit, used for Celery's soft/hard limits. None if unset.

        By default the config's `timeout` (seconds, or a Go duration as a timedelta).
        """
        timeout = getattr(config, "timeout", None)
        if isinstance(timeout, timedelta):
            return timeout.total_seconds() or None
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            return float(timeout)
        return None

    def execute(self, ctx: ExecutionContext) -> None:  # pragma: no cover - interface
        raise NotImplementedError
