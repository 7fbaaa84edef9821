"""Executor lookup by name: built-ins plus third-party plugins, and secret masking of configs.

Built-ins are an explicit mapping of name to dotted class path; plugins register under the
Python entry point group `dkronweb.executors` (the counterpart of Dkron's plugin directory).
Classes are imported on first use only, so a broken or heavy plugin costs nothing until a job
uses it. Which executors an operator has disabled is a Django setting; this module takes it as
an argument so `executors/` stays free of Django.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import logging
from collections.abc import Collection, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from executors.base import Executor

__all__ = [
    "BUILTIN_EXECUTORS",
    "ENTRY_POINT_GROUP",
    "SECRET_MASK",
    "DisabledExecutor",
    "UnknownExecutor",
    "available",
    "clear_cache",
    "executor_class",
    "get_executor",
    "mask_secrets",
    "merge_secrets",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dkronweb.executors"
SECRET_MASK = "********"

BUILTIN_EXECUTORS: dict[str, str] = {
    "shell": "executors.shell.ShellExecutor",
    "http": "executors.http.HttpExecutor",
    "kafka": "executors.kafka.KafkaExecutor",
    "nats": "executors.nats.NatsExecutor",
    "rabbitmq": "executors.rabbitmq.RabbitMQExecutor",
    "grpc": "executors.grpc.GrpcExecutor",
    "gcppubsub": "executors.gcppubsub.PubSubExecutor",
    "docker": "executors.docker.DockerExecutor",
    "ecs": "executors.ecs.EcsExecutor",
}


class UnknownExecutor(LookupError):
    """No executor of that name here; the message lists the known ones and a likely match."""

    def __init__(self, name: str, known: Collection[str]) -> None:
        self.name = name
        self.known = sorted(known)
        message = f"unknown executor {name!r}"
        close = difflib.get_close_matches(name, self.known, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        message += f" Known executors: {', '.join(self.known) or '(none)'}"
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DisabledExecutor(UnknownExecutor):
    """The executor exists but the operator disabled it; a subclass so one `except` covers both."""

    def __init__(self, name: str, known: Collection[str]) -> None:
        super().__init__(name, known)
        self.message = (
            f"executor {name!r} is disabled on this server. "
            f"Enabled executors: {', '.join(self.known) or '(none)'}"
        )


@functools.cache
def _sources() -> dict[str, str | EntryPoint]:
    """Name -> dotted path (built-in) or entry point (plugin). Built-ins win a name clash."""
    found: dict[str, str | EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN_EXECUTORS:
            logger.warning(
                "executor plugin %r (%s) ignored: the name belongs to a built-in executor",
                ep.name,
                ep.value,
            )
            continue
        found[ep.name] = ep
    found.update(BUILTIN_EXECUTORS)
    return found


@functools.cache
def _load(name: str) -> type[Executor]:
    source = _sources()[name]
    try:
        if isinstance(source, str):
            module_name, _, attr = source.rpartition(".")
            cls = getattr(importlib.import_module(module_name), attr)
        else:
            cls = source.load()
    except Exception as exc:  # report which plugin failed, not just the import error
        where = source if isinstance(source, str) else source.value
        raise ImportError(f"executor {name!r}: cannot load {where}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise TypeError(f"executor {name!r}: {cls!r} is not a subclass of executors.base.Executor")
    return cls


def available(disabled: Collection[str] = ()) -> list[str]:
    """Sorted names of the executors that can be used, leaving out `disabled` ones."""
    return sorted(name for name in _sources() if name not in disabled)


def executor_class(name: str, disabled: Collection[str] = ()) -> type[Executor]:
    """The class registered as `name`; raises `UnknownExecutor` / `DisabledExecutor`."""
    if name not in _sources():
        raise UnknownExecutor(name, available(disabled))
    if name in disabled:
        raise DisabledExecutor(name, available(disabled))
    return _load(name)


def get_executor(name: str, disabled: Collection[str] = ()) -> Executor:
    """A ready instance of the executor `name` (executors hold no per-run state)."""
    return executor_class(name, disabled)()


def clear_cache() -> None:
    """Forget discovered plugins and loaded classes (tests; a plugin installed at run time)."""
    _sources.cache_clear()
    _load.cache_clear()


# Used for an executor whose class cannot be loaded (plugin uninstalled): its secret keys are
# unknown, so mask anything whose name looks secret rather than risk showing a password.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "apikey", "api_key")


def _secret_keys(name: str, config: Mapping[str, Any]) -> set[str]:
    try:
        return set(_load(name).secret_keys) if name in _sources() else _guess(config)
    except (ImportError, TypeError):
        return _guess(config)


def _guess(config: Mapping[str, Any]) -> set[str]:
    return {k for k in config if any(word in k.lower() for word in _SECRET_WORDS)}


def mask_secrets(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `config` with each non-empty secret value replaced by `SECRET_MASK`.

    For API responses and logs. An empty value stays empty so a client can tell "not set".
    """
    masked = dict(config)
    for key in _secret_keys(name, config):
        if masked.get(key) not in (None, ""):
            masked[key] = SECRET_MASK
    return masked


def merge_secrets(name: str, new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """The config to store when a client sends `new` over a stored `old` (write-only secrets).

    A secret key that `new` omits, or sends back as the mask it was shown, keeps its stored
    value; sending any other value (including "") replaces it.
    """
    merged = dict(new)
    for key in _secret_keys(name, {**old, **new}):
        if key not in new or new[key] == SECRET_MASK:
            if key in old:
                merged[key] = old[key]
            else:
                merged.pop(key, None)  # a mask with nothing behind it means "not set"
    return merged
