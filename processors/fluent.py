"""The `fluent` processor: send the output to a Fluentd / Fluent Bit forward endpoint.

One event in the forward protocol's message mode (`[tag, time, record]`, msgpack over TCP),
sent with the `fluent-logger` library. `host`, `port` and `tag` on the job override the
operator's defaults, which come from Dkron's environment (FLUENTBIT_HOST, FLUENTBIT_PORT,
FLUENTBIT_TAG). The record carries the job, the execution id, the node, the status and the
output.
"""

from __future__ import annotations

import time
from typing import Any

from fluent.sender import EventTime, FluentSender
from pydantic import field_validator

from executors.netguard import GuardError
from executors.values import config_error, parse_go_duration, refuse_control
from processors.base import ExecutionRecord, Processor, ProcessorConfig, ProcessorError

__all__ = ["FluentConfig", "FluentProcessor"]

DEFAULT_TIMEOUT = 3.0  # seconds, fluent-logger's default


class FluentConfig(ProcessorConfig):
    host: str = ""  # "" = the operator's FLUENTBIT_HOST
    port: int | None = None
    tag: str = ""
    timeout: float = DEFAULT_TIMEOUT

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            port = int(str(value).strip()) if not isinstance(value, bool) else -1
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise config_error("port", f"port {value!r} must be a number from 1 to 65535")
        return port

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return DEFAULT_TIMEOUT
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str):
            try:
                if value.strip().isdigit():  # Dkron-style bare seconds, "5"
                    seconds = float(value)
                else:
                    seconds = parse_go_duration(value).total_seconds()
            except ValueError as exc:
                raise config_error("timeout", str(exc)) from None
        else:
            raise config_error("timeout", "timeout must be a duration such as 5s")
        if seconds <= 0:
            raise config_error("timeout", "timeout must be positive")
        return seconds

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        return refuse_control("tag", value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        refuse_control("host", value)
        if any(c.isspace() for c in value):
            raise config_error("host", "host must not contain spaces")
        return value


class FluentProcessor(Processor):
    name = "fluent"
    description = "Send the output to a Fluentd / Fluent Bit forward endpoint"
    config_schema = FluentConfig

    def target(self, config: FluentConfig) -> tuple[str, int, str]:
        """Host, port and tag: the job's keys, else the operator's FLUENTBIT_* defaults."""
        return (
            config.host or self.options.fluent_host,
            config.port or self.options.fluent_port,
            config.tag or self.options.fluent_tag,
        )

    def process(self, record: ExecutionRecord, config: Any) -> str:
        host, port, tag = self.target(config)
        event = {
            "job": record.job_name,
            "execution": record.execution_id,
            "node": record.node_name,
            "status": record.status,
            "success": record.success,
            "attempt": record.attempt,
            "output": record.output,
            "truncated": record.truncated,
            "started_at": record.started_at.isoformat() if record.started_at else "",
            "finished_at": record.finished_at.isoformat() if record.finished_at else "",
        }
        try:  # the sender connects to the checked address (plain TCP: nothing else names it)
            address = self.options.outbound.pin(host, port)
        except GuardError as exc:
            raise ProcessorError(f"fluent: {exc}") from None
        sender = FluentSender(tag, host=address, port=port, timeout=config.timeout)
        try:
            sent = sender.emit_with_time("", EventTime.from_unix_nano(time.time_ns()), event)
            error = sender.last_error
            sender.pendings = None  # never retry on close: the failure is reported now
        finally:
            sender.close()
        if not sent:
            raise ProcessorError(f"fluent: cannot send to {host}:{port}: {error}")
        return f"fluent {host}:{port} tag {tag}"
