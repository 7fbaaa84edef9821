"""The processor contract: a name, a config schema, and `process(record, config)`.

A processor ships an execution's output somewhere after the executor ended (a file, syslog, a
Fluent endpoint). Like executors, processors never touch the database or Django: the agent
hands them a plain `ExecutionRecord`, and the operator's settings arrive as `ProcessorOptions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from executors.netguard import Guard
from executors.values import GoBool

__all__ = [
    "ExecutionRecord",
    "Processor",
    "ProcessorConfig",
    "ProcessorConfigError",
    "ProcessorError",
    "ProcessorOptions",
]

DEFAULT_FLUENT_HOST = "127.0.0.1"
DEFAULT_FLUENT_PORT = 24224
DEFAULT_FLUENT_TAG = "dkron"


class ProcessorError(Exception):
    """Delivery failed (socket refused, path outside the allowed directories, disk full)."""


class ProcessorConfigError(ValueError):
    """Invalid processor config; `errors` maps a config key to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class ProcessorOptions:
    """Operator settings processors need: where files may go and the Fluent defaults."""

    log_dirs: tuple[Path, ...] = ()
    fluent_host: str = DEFAULT_FLUENT_HOST
    fluent_port: int = DEFAULT_FLUENT_PORT
    fluent_tag: str = DEFAULT_FLUENT_TAG
    # The outbound guard (DKRON_BLOCK_PRIVATE, DKRON_OUTBOUND_ALLOW) for processors that connect.
    outbound: Guard = Guard()

    @classmethod
    def from_settings(cls, dkron: Mapping[str, Any]) -> ProcessorOptions:
        """Build from the DKRON settings dict (keys PROCESSOR_LOG_DIRS and FLUENTBIT_*)."""
        port = dkron.get("FLUENTBIT_PORT") or DEFAULT_FLUENT_PORT
        return cls(
            log_dirs=tuple(Path(d) for d in dkron.get("PROCESSOR_LOG_DIRS") or ()),
            fluent_host=dkron.get("FLUENTBIT_HOST") or DEFAULT_FLUENT_HOST,
            fluent_port=int(port),
            fluent_tag=dkron.get("FLUENTBIT_TAG") or DEFAULT_FLUENT_TAG,
            outbound=Guard.from_settings(dkron),
        )


@dataclass(frozen=True)
class ExecutionRecord:
    """What a processor may know about the finished execution it ships."""

    job_name: str
    execution_id: str
    output: str
    status: str = "success"  # success, failed, timeout or killed
    node_name: str = ""
    attempt: int = 1
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    truncated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.status == "success"


class ProcessorConfig(BaseModel):
    """Base for processor config schemas.

    `forward`: Dkron's switch; "true" keeps the output in the execution record, anything
    else (the default) replaces it by a pointer to where the processor sent it. Unknown keys are
    rejected so a typo is an error at save time.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    forward: GoBool = False


class Processor:
    """Subclass, set `name` and `config_schema`, implement `process`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Writes on the host (files): creating or changing a job that uses it needs the
    # run-code permission, as for shell jobs (SPEC 11).
    touches_hosts: ClassVar[bool] = False
    config_schema: ClassVar[type[ProcessorConfig]] = ProcessorConfig

    def __init__(self, options: ProcessorOptions | None = None) -> None:
        self.options = options or ProcessorOptions()

    def validate(self, raw: Mapping[str, Any] | None) -> ProcessorConfig:
        """Parse a Dkron config map; raise `ProcessorConfigError` naming each bad key."""
        try:
            return self.config_schema.model_validate(dict(raw or {}))
        except ValidationError as exc:
            errors: dict[str, str] = {}
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"]) or "config"
                msg = err["msg"]
                if err["type"] == "extra_forbidden":
                    msg = "unknown key"
                elif msg.startswith("Value error, "):
                    msg = msg[len("Value error, ") :]
                errors[key] = msg
            raise ProcessorConfigError(errors) from None

    def process(self, record: ExecutionRecord, config: Any) -> str:  # pragma: no cover
        """Deliver the output; return where it went (for the pointer), raise ProcessorError."""
        raise NotImplementedError
