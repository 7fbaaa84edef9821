"""Lookup of pluggable classes by name: built-ins plus Python entry points.

Executors and processors are both found this way: an explicit mapping of built-in names to
dotted class paths, merged with an entry point group for third-party plugins (the counterpart
of Dkron's plugin directory). Classes are imported on first use only, so a broken or heavy
plugin costs nothing until a job uses it; `missing` tells whether one could load without
importing it (the agent's start-up check). Free of Django and of `jobs/`, like its users.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Collection, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class UnknownPlugin(LookupError):
    """No plugin of that name here; the message lists the known ones and a likely match."""

    kind = "plugin"

    def __init__(self, name: str, known: Collection[str]) -> None:
        self.name = name
        self.known = sorted(known)
        message = f"unknown {self.kind} {name!r}"
        close = difflib.get_close_matches(name, self.known, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        message += f" Known {self.kind}s: {', '.join(self.known) or '(none)'}"
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def disabled_message(kind: str, name: str, enabled: Collection[str]) -> str:
    names = ", ".join(enabled) or "(none)"
    return f"{kind} {name!r} is disabled on this server. Enabled {kind}s: {names}"


class PluginRegistry(Generic[T]):
    """Name -> class for one kind of plugin (`base` is the class every plugin must extend).

    `unknown` and `disabled` are the kind's own exception classes (`disabled` a subclass of
    `unknown`, so one `except` covers both). Built-ins win a name clash with a plugin.
    `requires` names, per built-in, the modules it imports when it runs (its client
    libraries), for `missing`.
    """

    def __init__(
        self,
        *,
        kind: str,
        group: str,
        builtins: Mapping[str, str],
        base: type[T],
        unknown: type[UnknownPlugin],
        disabled: type[UnknownPlugin],
        requires: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.kind, self.group, self.builtins, self.base = kind, group, builtins, base
        self.requires = requires or {}
        self.unknown, self.disabled = unknown, disabled
        self.sources = functools.cache(self._sources)
        self.load = functools.cache(self._load)

    def _sources(self) -> dict[str, str | EntryPoint]:
        found: dict[str, str | EntryPoint] = {}
        for ep in entry_points(group=self.group):
            if ep.name in self.builtins:
                log.warning(
                    "%s plugin %r (%s) ignored: the name belongs to a built-in %s",
                    self.kind,
                    ep.name,
                    ep.value,
                    self.kind,
                )
                continue
            found[ep.name] = ep
        found.update(self.builtins)
        return found

    def _load(self, name: str) -> type[T]:
        source = self.sources()[name]
        try:
            if isinstance(source, str):
                module_name, _, attr = source.rpartition(".")
                cls = getattr(importlib.import_module(module_name), attr)
            else:
                cls = source.load()
        except Exception as exc:  # report which plugin failed, not just the import error
            where = source if isinstance(source, str) else source.value
            raise ImportError(f"{self.kind} {name!r}: cannot load {where}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            base = f"{self.base.__module__}.{self.base.__qualname__}"
            raise TypeError(f"{self.kind} {name!r}: {cls!r} is not a subclass of {base}")
        return cls

    def missing(self, name: str) -> list[str]:
        """The modules the plugin `name` needs that are not installed; empty when all are.

        Found without importing any of them, parent packages included, so it costs nothing
        like loading the class: a process that checks every plugin this way holds none of
        their client libraries. A built-in's needs are its module and its `requires`; an
        entry point's are its module (what that imports in turn shows only when it loads).
        """
        source = self.sources()[name]
        if isinstance(source, str):
            needed = [source.rpartition(".")[0], *self.requires.get(name, ())]
        else:
            needed = [source.module]
        return [module for module in needed if not _installed(module)]

    def available(self, disabled: Collection[str] = ()) -> list[str]:
        """Sorted names of the plugins that can be used, leaving out `disabled` ones."""
        return sorted(name for name in self.sources() if name not in disabled)

    def get_class(self, name: str, disabled: Collection[str] = ()) -> type[T]:
        """The class registered as `name`; raises the kind's unknown / disabled error."""
        if name not in self.sources():
            raise self.unknown(name, self.available(disabled))
        if name in disabled:
            raise self.disabled(name, self.available(disabled))
        return self.load(name)

    def clear_cache(self) -> None:
        """Forget discovered plugins and loaded classes (tests; a plugin installed at run time)."""
        self.sources.cache_clear()
        self.load.cache_clear()


def _installed(module: str) -> bool:
    """Whether `module` can be imported, found without importing it or its parent packages.

    `importlib.util.find_spec("a.b")` would import `a` first (for a namespace such as
    `google`, cheap; for a package whose `__init__` imports its client, not): so each level is
    looked up in the one above it, as the import system would, with nothing executed.
    """
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name: nothing is imported
        for depth in range(1, len(parts)):
            name = ".".join(parts[: depth + 1])
            if name in sys.modules:  # imported already (os.path, say)
                spec = sys.modules[name].__spec__
                continue
            if spec is None or spec.submodule_search_locations is None:
                return False
            spec = _find_in(name, spec.submodule_search_locations)
    except (ImportError, ValueError):  # `module` is odd (empty parts, a broken spec)
        return False
    return spec is not None


def _find_in(name: str, path: Any) -> importlib.machinery.ModuleSpec | None:
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is not None and (spec := find_spec(name, list(path))) is not None:
            return spec
    return None
