"""Processor lookup by name, validation of a job's processor map, and running it after a run.

Built-ins are an explicit mapping of name to dotted class path; plugins register under the
Python entry point group `dkronweb.processors`. Classes are imported on first use only. Which
processors an operator disabled and where files may go are Django settings; this module takes
them as arguments so `processors/` stays free of Django and of `jobs/`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

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


class UnknownProcessor(LookupError):
    """No processor of that name here; the message lists the known ones and a likely match."""

    def __init__(self, name: str, known: Collection[str]) -> None:
        self.name = name
        self.known = sorted(known)
        message = f"unknown processor {name!r}"
        close = difflib.get_close_matches(name, self.known, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        message += f" Known processors: {', '.join(self.known) or '(none)'}"
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DisabledProcessor(UnknownProcessor):
    """The processor exists but the operator disabled it."""

    def __init__(self, name: str, known: Collection[str]) -> None:
        super().__init__(name, known)
        self.message = (
            f"processor {name!r} is disabled on this server. "
            f"Enabled processors: {', '.join(self.known) or '(none)'}"
        )


@functools.cache
def _sources() -> dict[str, str | EntryPoint]:
    """Name -> dotted path (built-in) or entry point (plugin). Built-ins win a name clash."""
    found: dict[str, str | EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN_PROCESSORS:
            logger.warning(
                "processor plugin %r (%s) ignored: the name belongs to a built-in processor",
                ep.name,
                ep.value,
            )
            continue
        found[ep.name] = ep
    found.update(BUILTIN_PROCESSORS)
    return found


@functools.cache
def _load(name: str) -> type[Processor]:
    source = _sources()[name]
    try:
        if isinstance(source, str):
            module_name, _, attr = source.rpartition(".")
            cls = getattr(importlib.import_module(module_name), attr)
        else:
            cls = source.load()
    except Exception as exc:  # report which plugin failed, not just the import error
        where = source if isinstance(source, str) else source.value
        raise ImportError(f"processor {name!r}: cannot load {where}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Processor)):
        raise TypeError(
            f"processor {name!r}: {cls!r} is not a subclass of processors.base.Processor"
        )
    return cls


def available(disabled: Collection[str] = ()) -> list[str]:
    """Sorted names of the processors that can be used, leaving out `disabled` ones."""
    return sorted(name for name in _sources() if name not in disabled)


def processor_class(name: str, disabled: Collection[str] = ()) -> type[Processor]:
    """The class registered as `name`; raises `UnknownProcessor` / `DisabledProcessor`."""
    if name not in _sources():
        raise UnknownProcessor(name, available(disabled))
    if name in disabled:
        raise DisabledProcessor(name, available(disabled))
    return _load(name)


def get_processor(
    name: str, options: ProcessorOptions | None = None, disabled: Collection[str] = ()
) -> Processor:
    """A ready instance of the processor `name`, bound to the operator's options."""
    return processor_class(name, disabled)(options)


def clear_cache() -> None:
    """Forget discovered plugins and loaded classes (tests; a plugin installed at run time)."""
    _sources.cache_clear()
    _load.cache_clear()


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
