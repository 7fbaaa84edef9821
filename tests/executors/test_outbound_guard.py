"""The outbound guard (DKRON_BLOCK_PRIVATE) for every executor that opens a connection: each one
aimed at a raw socket on 127.0.0.1 is refused and the socket receives nothing; the allow-list
(DKRON_OUTBOUND_ALLOW) lets a named host through to the machine's real NATS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from executors.base import ExecutionContext, ExecutorError
from executors.netguard import Guard, parse_allow
from executors.output import OutputSink
from executors.registry import get_executor
from tests.listener import Listener, listening

BLOCK = Guard(block_private=True)

# executor name -> its config aimed at 127.0.0.1:port
TARGETS: dict[str, Callable[[int], dict[str, Any]]] = {
    "nats": lambda port: {"url": f"nats://127.0.0.1:{port}", "subject": "s", "message": "m"},
    "kafka": lambda port: {"brokerAddress": f"127.0.0.1:{port}", "topic": "t", "message": "m"},
    "rabbitmq": lambda port: {
        "url": f"amqp://guest:guest@127.0.0.1:{port}/",
        "queue.name": "q",
        "message.body": "m",
    },
    "grpc": lambda port: {"url": f"127.0.0.1:{port}/demo.Demo/Run", "timeout": "3"},
    "ecs": lambda port: {
        "cluster": "c",
        "taskdefName": "web",
        "region": "us-east-1",
        "endpointUrl": f"http://127.0.0.1:{port}",
    },
    "http": lambda port: {"method": "GET", "url": f"http://127.0.0.1:{port}/"},
}


def run(name: str, raw: dict[str, Any], guard: Guard) -> ExecutorError | None:
    executor = get_executor(name)
    ctx = ExecutionContext(
        job_name="j", config=executor.validate(raw), output=OutputSink(), outbound=guard
    )
    try:
        executor.execute(ctx)
    except ExecutorError as exc:
        return exc
    return None


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_an_executor_aimed_at_loopback_is_refused_and_nothing_connects(name: str) -> None:
    with listening() as listener:
        error = run(name, TARGETS[name](listener.port), BLOCK)

    assert error is not None
    assert error.retryable is False
    assert f"refused to connect to 127.0.0.1:{listener.port} (loopback address" in error.message
    assert listener.received == []


def test_gcppubsub_aimed_at_an_emulator_on_loopback_is_refused(monkeypatch) -> None:
    with listening() as listener:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{listener.port}")
        error = run(
            "gcppubsub", {"project": "my-project", "topic": "topic-1", "data": "eA=="}, BLOCK
        )

    assert error is not None and "(loopback address" in error.message
    assert listener.received == []


def test_docker_aimed_at_a_tcp_host_on_loopback_is_refused(monkeypatch) -> None:
    with listening() as listener:
        monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{listener.port}")
        error = run("docker", {"image": "alpine"}, BLOCK)

    assert error is not None and "(loopback address" in error.message
    assert listener.received == []


def test_a_name_resolving_to_loopback_is_refused_too() -> None:
    with listening() as listener:
        error = run(
            "nats", TARGETS["nats"](listener.port) | {"url": f"localhost:{listener.port}"}, BLOCK
        )

    assert error is not None and f"localhost (127.0.0.1:{listener.port})" in error.message
    assert listener.received == []


@pytest.mark.parametrize("allow", ["127.0.0.1:4222", "localhost:4222", "127.0.0.0/8", "LocalHost."])
def test_the_allow_list_lets_a_named_host_through(allow: str) -> None:
    url = "nats://localhost:4222"
    guard = Guard(block_private=True, allow=parse_allow(allow))
    error = run("nats", {"url": url, "subject": "guard.allowed", "message": "m"}, guard)

    assert error is None


def test_the_allow_list_port_is_part_of_the_rule() -> None:
    guard = Guard(block_private=True, allow=parse_allow("127.0.0.1:4223"))
    error = run("nats", {"url": "nats://127.0.0.1:4222", "subject": "s", "message": "m"}, guard)

    assert error is not None and "refused to connect to 127.0.0.1:4222" in error.message


def test_with_the_guard_off_loopback_is_reached() -> None:
    listener = Listener()
    try:
        run("nats", TARGETS["nats"](listener.port) | {"timeout": "1s"}, Guard())
    finally:
        listener.close()
    assert listener.received == ["connect"]


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ("10.0.0.0/8", "network=IPv4Network('10.0.0.0/8')"),
        ("kafka.internal:9092", "name='kafka.internal', port=9092"),
        ("[::1]:4222", "network=IPv6Network('::1/128'), name='', port=4222"),
        ("fd00::/8", "network=IPv6Network('fd00::/8')"),
    ],
)
def test_allow_list_entries_are_cidrs_addresses_or_names_with_optional_ports(
    entry: str, rule: str
) -> None:
    assert rule in repr(parse_allow(entry)[0])


@pytest.mark.parametrize("entry", ["kafka internal", "10.0.0.0/33", "host:99999", "[::1"])
def test_a_bad_allow_list_entry_is_refused_naming_it(entry: str) -> None:
    with pytest.raises(ValueError, match="DKRON_OUTBOUND_ALLOW entry"):
        parse_allow(entry)


def test_every_built_in_executor_that_connects_is_attacked_here() -> None:
    # A new executor that connects anywhere gets a case above (TARGETS or its own test);
    # only shell connects nowhere itself.
    from executors.registry import BUILTIN_EXECUTORS

    covered = {*TARGETS, "gcppubsub", "docker"}
    assert set(BUILTIN_EXECUTORS) - covered == {"shell"}
