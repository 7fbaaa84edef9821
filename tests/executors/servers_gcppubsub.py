"""Pub/Sub servers for tests: the official emulator, and a stand-in for what it cannot do.

Fixtures are named `*_fixture` and registered under the short name; tests/conftest.py loads
this module as a plugin (`pytest_plugins`), so tests ask for them by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.harness import reachable, require, wait_for

EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
PROJECT = "dkronweb-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session", name="pubsub_emulator")
def pubsub_emulator_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a Pub/Sub emulator of this session's own (a JVM kept small: 2 cores and
    other test servers share the machine)."""
    require(EMULATOR.exists(), f"the Pub/Sub emulator is needed at {EMULATOR}")
    port = free_port()
    log_path = tmp_path_factory.mktemp("pubsub") / "emulator.log"
    env = dict(os.environ, JAVA_TOOL_OPTIONS="-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(EMULATOR), "--host=127.0.0.1", f"--port={port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: proc.poll() is not None or reachable("127.0.0.1", port),
            timeout=30,
            interval=0.2,
            what="the Pub/Sub emulator to listen",
        )
        if proc.poll() is not None:
            pytest.fail(f"the Pub/Sub emulator exited:\n{log_path.read_text(errors='replace')}")
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@dataclass
class Topic:
    """A topic with one ordered subscription, created with the real client on the emulator."""

    project: str
    topic: str
    subscription: str
    emulator: str

    @property
    def subscription_path(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.subscription}"

    def pull(self, n: int = 1) -> list[Any]:
        """The next `n` messages, acknowledged."""
        from google.pubsub_v1 import SubscriberClient

        client = SubscriberClient()
        got: list[Any] = []

        def pulled() -> bool:
            response = client.pull(subscription=self.subscription_path, max_messages=n, timeout=5)
            if response.received_messages:
                got.extend(response.received_messages)
                client.acknowledge(
                    subscription=self.subscription_path,
                    ack_ids=[m.ack_id for m in response.received_messages],
                )
            return len(got) >= n

        wait_for(pulled, timeout=10, what=f"{n} message(s) on {self.topic}")
        client.transport.close()
        return [m.message for m in got]


@pytest.fixture(name="pubsub_topic")
def pubsub_topic_fixture(pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Topic]:
    """A fresh topic and subscription; PUBSUB_EMULATOR_HOST points at the emulator."""
    from google.pubsub_v1 import PublisherClient, SubscriberClient, Subscription

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    name = f"dkronweb-{uuid.uuid4().hex[:12]}"
    topic = Topic(PROJECT, name, f"{name}-sub", pubsub_emulator)
    topic_path = f"projects/{PROJECT}/topics/{name}"
    publisher, subscriber = PublisherClient(), SubscriberClient()
    publisher.create_topic(name=topic_path)
    subscriber.create_subscription(
        request=Subscription(
            name=topic.subscription_path, topic=topic_path, enable_message_ordering=True
        )
    )
    yield topic
    subscriber.delete_subscription(subscription=topic.subscription_path)
    publisher.delete_topic(topic=topic_path)
    publisher.transport.close()
    subscriber.transport.close()


class StandInPublisher:
    """A gRPC server implementing only google.pubsub.v1.Publisher/Publish, for the failures
    the emulator cannot produce: it has no authentication (so no PERMISSION_DENIED) and always
    answers at once (so no timeout). The topic id picks the behaviour."""

    def __init__(self) -> None:
        from google.pubsub_v1 import PublishRequest, PublishResponse

        self.release = threading.Event()
        self.requests: list[Any] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.unary_unary_rpc_method_handler(
            self.publish,
            request_deserializer=PublishRequest.deserialize,
            response_serializer=PublishResponse.serialize,
        )
        self.server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "google.pubsub.v1.Publisher", {"Publish": handler}
                ),
            )
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def publish(self, request: Any, context: grpc.ServicerContext) -> Any:
        from google.pubsub_v1 import PublishResponse

        self.requests.append(request)
        topic = request.topic.rsplit("/", 1)[-1]
        if topic == "denied":
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "User not authorized to perform this action."
            )
        if topic == "silent":
            # Never answer until the test ends (or the client gives up).
            self.release.wait(30)
        return PublishResponse(message_ids=["stand-in-1"])

    def stop(self) -> None:
        self.release.set()
        self.server.stop(grace=None)


@pytest.fixture(name="stand_in")
def stand_in_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInPublisher]:
    server = StandInPublisher()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.address)
    yield server
    server.stop()
