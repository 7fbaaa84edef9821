"""Executor lookup by name: built-ins plus third-party plugins, and secret masking of configs.

Built-ins are an explicit mapping of name to dotted class path; plugins register under the
Python entry point group `dkronweb.executors` (the counterpart of Dkron's plugin directory).
Classes are imported on first use only, so a broken or heavy plugin costs nothing until a job
uses it. Which executors an operator has disabled is a Django setting; this module takes it as
an argument so `executors/` stays free of Django.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from executors.base import Executor
from plugins import PluginRegistry, UnknownPlugin, disabled_message

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


class UnknownExecutor(UnknownPlugin):
    """No executor of that name here; the message lists the known ones and a likely match."""

    kind = "executor"


class DisabledExecutor(UnknownExecutor):
    """The executor exists but the operator disabled it; a subclass so one `except` covers both."""

    def __init__(self, name: str, known: Collection[str]) -> None:
        super().__init__(name, known)
        self.message = disabled_message("executor", name, self.known)


_registry: PluginRegistry[Executor] = PluginRegistry(
    kind="executor",
    group=ENTRY_POINT_GROUP,
    builtins=BUILTIN_EXECUTORS,
    base=Executor,
    unknown=UnknownExecutor,
    disabled=DisabledExecutor,
)


def available(disabled: Collection[str] = ()) -> list[str]:
    """Sorted names of the executors that can be used, leaving out `disabled` ones."""
    return _registry.available(disabled)


def executor_class(name: str, disabled: Collection[str] = ()) -> type[Executor]:
    """The class registered as `name`; raises `UnknownExecutor` / `DisabledExecutor`."""
    return _registry.get_class(name, disabled)


def get_executor(name: str, disabled: Collection[str] = ()) -> Executor:
    """A ready instance of the executor `name` (executors hold no per-run state)."""
    return executor_class(name, disabled)()


def clear_cache() -> None:
    """Forget discovered plugins and loaded classes (tests; a plugin installed at run time)."""
    _registry.clear_cache()


# Used for an executor whose class cannot be loaded (plugin uninstalled): its secret keys are
# unknown, so mask anything whose name looks secret rather than risk showing a password.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "apikey", "api_key")


def _secret_keys(name: str, config: Mapping[str, Any]) -> set[str]:
    try:
        return (
            set(_registry.load(name).secret_keys) if name in _registry.sources() else _guess(config)
        )
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
