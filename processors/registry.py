"""Processor lookup by name, validation of a job's processor map, and running it after a run.

Built-ins are an explicit mapping of name to dotted class path; plugins register under the
Python entry point group `dkronweb.processors`. Classes are imported on first use only. Which
processors an operator disabled and where files may go are Django settings; this module takes
them as arguments so `processors/` stays free of Django and of `jobs/`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from plugins import PluginRegistry, UnknownPlugin, disabled_message
from processors.base import (
    ExecutionRecord,
    Processor,
    ProcessorConfigError,
    ProcessorOptions,
)

__all__ = [
    "BUILTIN_PROCESSORS",
    "ENTRY_POINT_GROUP",
    "DisabledProcessor",
    "ProcessingResult",
    "UnknownProcessor",
    "available",
    "clear_cache",
    "get_processor",
    "processor_class",
    "run_processors",
    "validate_processors",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dkronweb.processors"

BUILTIN_PROCESSORS: dict[str, str] = {
    "log": "processors.log.LogProcessor",
    "files": "processors.files.FilesProcessor",
    "syslog": "processors.syslog.SyslogProcessor",
    "fluent": "processors.fluent.FluentProcessor",
}


class UnknownProcessor(UnknownPlugin):
    """No processor of that name here; the message lists the known ones and a likely match."""

    kind = "processor"


class DisabledProcessor(UnknownProcessor):
    """The processor exists but the operator disabled it."""

    def __init__(self, name: str, known: Collection[str]) -> None:
        super().__init__(name, known)
        self.message = disabled_message("processor", name, self.known)


_registry: PluginRegistry[Processor] = PluginRegistry(
    kind="processor",
    group=ENTRY_POINT_GROUP,
    builtins=BUILTIN_PROCESSORS,
    base=Processor,
    unknown=UnknownProcessor,
    disabled=DisabledProcessor,
)


def available(disabled: Collection[str] = ()) -> list[str]:
    """Sorted names of the processors that can be used, leaving out `disabled` ones."""
    return _registry.available(disabled)


def processor_class(name: str, disabled: Collection[str] = ()) -> type[Processor]:
    """The class registered as `name`; raises `UnknownProcessor` / `DisabledProcessor`."""
    return _registry.get_class(name, disabled)


def get_processor(
    name: str, options: ProcessorOptions | None = None, disabled: Collection[str] = ()
) -> Processor:
    """A ready instance of the processor `name`, bound to the operator's options."""
    return processor_class(name, disabled)(options)


def clear_cache() -> None:
    """Forget discovered plugins and loaded classes (tests; a plugin installed at run time)."""
    _registry.clear_cache()


def validate_processors(
    processors: Any, options: ProcessorOptions, disabled: Collection[str] = ()
) -> dict[str, str]:
    """Errors of a job's processor map, keyed `processors.<name>[.<key>]`; empty when valid."""
    if processors in (None, ""):
        return {}
    if not isinstance(processors, Mapping):
        return {"processors": "must be an object mapping processor names to their config"}
    errors: dict[str, str] = {}
    for name, raw in processors.items():
        where = f"processors.{name}"
        if raw is not None and not isinstance(raw, Mapping):
            errors[where] = 'must be an object of config keys, e.g. {"forward": "true"}'
            continue
        try:
            processor = get_processor(name, options, disabled)
        except UnknownProcessor as exc:
            errors[where] = str(exc)
            continue
        except (ImportError, TypeError) as exc:
            errors[where] = str(exc)
            continue
        try:
            processor.validate(raw)
        except ProcessorConfigError as exc:
            for key, msg in exc.errors.items():
                errors[f"{where}.{key}"] = msg
    return errors


@dataclass
class ProcessingResult:
    """What running a job's processors did: where the output went and what failed."""

    delivered: dict[str, str] = field(default_factory=dict)  # name -> location
    failed: dict[str, str] = field(default_factory=dict)  # name -> error
    # Locations of processors that delivered the output with forward false.
    not_forwarded: dict[str, str] = field(default_factory=dict)

    @property
    def replace_output(self) -> bool:
        return bool(self.not_forwarded)

    def pointer(self) -> str:
        """The short text stored instead of the output when it is not forwarded."""
        places = "; ".join(f"{name}: {where}" for name, where in self.delivered.items())
        return f"output sent to {places}"


def run_processors(
    processors: Mapping[str, Any] | None,
    record: ExecutionRecord,
    options: ProcessorOptions,
    disabled: Collection[str] = (),
    *,
    log: logging.Logger = logger,
) -> ProcessingResult:
    """Run each processor once, in name order; a failing one is logged and never raises.

    The output is to be replaced by `pointer()` only when a processor with forward false
    actually delivered it: if every such processor failed, the record keeps the output, so a
    broken destination never loses it.
    """
    result = ProcessingResult()
    for name in sorted(processors or {}):
        raw = (processors or {})[name]
        try:
            processor = get_processor(name, options, disabled)
            config = processor.validate(raw if isinstance(raw, Mapping) else {})
            where = processor.process(record, config)
        except Exception as exc:
            log.warning(
                "processor %s failed for job=%s execution=%s: %s",
                name,
                record.job_name,
                record.execution_id,
                exc,
            )
            result.failed[name] = str(exc)
            continue
        result.delivered[name] = where
        if not getattr(config, "forward", False):
            result.not_forwarded[name] = where
    return result
