"""Executor lookup by name: built-ins plus third-party plugins, and what each declares secret.

Built-ins are an explicit mapping of name to dotted class path; plugins register under the
Python entry point group `dkronweb.executors` (the counterpart of Dkron's plugin directory).
Classes are imported on first use only, so a broken or heavy plugin costs nothing until a job
uses it: an agent that runs only shell and http jobs never imports boto3, Google's or gRPC's
libraries, kafka-python, nats or pika (`missing` tells whether they are installed without
importing them; tests/agent/test_agent_imports.py). Which executors an operator has disabled is
a Django setting; this module takes it as an argument so `executors/` stays free of Django.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

import confidential
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
    "missing",
    "secret_spec",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dkronweb.executors"
SECRET_MASK = confidential.MASK

BUILTIN_EXECUTORS: dict[str, str] = {
    "shell": "executors.shell.ShellExecutor",
    "http": "executors.http.HttpExecutor",
    "kafka": "executors.kafka.KafkaExecutor",
    "nats": "executors.nats.NatsExecutor",
    "rabbitmq": "executors.rabbitmq.RabbitMQExecutor",
    "grpc": "executors.grpc.GrpcExecutor",
    "gcppubsub": "executors.gcppubsub.PubSubExecutor",
    "docker": "executors.docker.DockerExecutor",
    "ecs": "executors.ecs.executor.EcsExecutor",
}

# The client libraries each built-in imports when it runs (at module level or on first use),
# by module name: what `missing` looks for, so a check need not import them. Keep in step with
# the modules' imports (tests/agent/test_agent_imports.py compares them).
BUILTIN_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "shell": ("psutil",),
    "http": ("httpx", "re2"),
    "kafka": ("kafka",),
    "nats": ("nats",),
    "rabbitmq": ("pika",),
    "grpc": ("grpc", "grpc_reflection", "google.protobuf"),
    "gcppubsub": ("google.pubsub_v1", "google.api_core", "google.auth"),
    "docker": ("docker",),
    "ecs": ("boto3", "botocore"),
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
    requires=BUILTIN_REQUIREMENTS,
)


def available(disabled: Collection[str] = ()) -> list[str]:
    """Sorted names of the executors that can be used, leaving out `disabled` ones."""
    return _registry.available(disabled)


def executor_class(name: str, disabled: Collection[str] = ()) -> type[Executor]:
    """The class registered as `name`; raises `UnknownExecutor` / `DisabledExecutor`."""
    return _registry.get_class(name, disabled)


def missing(name: str) -> list[str]:
    """The modules the executor `name` needs that are not installed (none imported to tell)."""
    if name not in _registry.sources():
        raise UnknownExecutor(name, available())
    return _registry.missing(name)


def get_executor(name: str, disabled: Collection[str] = ()) -> Executor:
    """A ready instance of the executor `name` (executors hold no per-run state)."""
    return executor_class(name, disabled)()


def clear_cache() -> None:
    """Forget discovered plugins and loaded classes (tests; a plugin installed at run time)."""
    _registry.clear_cache()


def secret_spec(name: str, config: Mapping[str, Any]) -> confidential.Spec:
    """What is secret in the executor's config and which keys decide where it goes.

    For an executor whose class cannot be loaded (plugin uninstalled) they are unknown, so
    `confidential.guess` treats as secret anything whose key looks so rather than risk
    showing a password.
    """
    try:
        if name in _registry.sources():
            return _registry.load(name).secret_spec()
    except (ImportError, TypeError):
        pass
    return confidential.guess(config)


def mask_secrets(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `config` with each non-empty secret value replaced by `SECRET_MASK`.

    For API responses, exports, pages and logs: secret keys, the values of entry keys
    (environment variables, headers, metadata) and the credentials inside URLs alike. An
    empty value stays empty so a client can tell "not set".
    """
    return confidential.mask(secret_spec(name, config), config)


def merge_secrets(
    name: str, new: Mapping[str, Any], old: Mapping[str, Any], *, old_name: str | None = None
) -> dict[str, Any]:
    """The config to store when a client sends `new` over a stored `old` (write-only secrets).

    A secret key that `new` omits, or any secret value (a key's, an env var's, a header's, a
    URL's password) sent back as the mask it was shown, keeps its stored value; sending any
    other value (including "") replaces it. A mask with nothing stored behind it is left out.
    A stored value is kept only while its destination keys are unchanged, and the executor
    (`old_name`, the stored job's) too; otherwise `confidential.SecretNotKept` names what to
    resend.
    """
    moved = "executor" if old_name and old and old_name != name else ""
    return confidential.merge(secret_spec(name, {**old, **new}), new, old, moved=moved)
