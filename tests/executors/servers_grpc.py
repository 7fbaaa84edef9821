"""Real gRPC servers for the grpc executor's tests, built from grpc_service/dkrontest.proto.

The .proto is compiled with grpcio-tools into a temporary folder when first needed, so no
generated code is committed. Each server records what it received so tests can assert on the
server side, and serves reflection as chosen: grpcio's standard v1alpha service, only the v1
service (as some newer servers do), or none.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import importlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import json_format
from grpc_reflection.v1alpha import reflection, reflection_pb2

PROTO_DIR = Path(__file__).resolve().parent / "grpc_service"
SERVICE = "dkrontest.Greeter"
V1_REFLECTION = "grpc.reflection.v1.ServerReflection"


@functools.cache
def generated() -> tuple[ModuleType, ModuleType]:
    """(dkrontest_pb2, dkrontest_pb2_grpc), compiled from the .proto for this test session."""
    out = tempfile.mkdtemp(prefix="dkrontest-proto-")
    atexit.register(shutil.rmtree, out, True)  # the modules stay imported; the files can go
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "dkrontest.proto",
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, out)
    try:
        pb2 = importlib.import_module("dkrontest_pb2")
        pb2_grpc = importlib.import_module("dkrontest_pb2_grpc")
    finally:
        sys.path.remove(out)
    return pb2, pb2_grpc


@dataclass
class Received:
    """One call as the server saw it."""

    method: str
    request: dict[str, Any]
    metadata: dict[str, str]
    cancelled: threading.Event = field(default_factory=threading.Event)


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    """Invocation metadata; binary (-bin) values base64-encoded so they fit a string map."""
    return {
        key: base64.b64encode(value).decode() if isinstance(value, bytes) else value
        for key, value in context.invocation_metadata()
    }


def make_servicer() -> Any:
    pb2, pb2_grpc = generated()

    class Greeter(pb2_grpc.GreeterServicer):  # type: ignore[name-defined]
        def __init__(self) -> None:
            self.calls: list[Received] = []
            self._lock = threading.Lock()

        def record(self, method: str, request: Any, context: grpc.ServicerContext) -> Received:
            received = Received(
                method,
                json_format.MessageToDict(request, preserving_proto_field_name=True),
                _metadata(context),
            )
            with self._lock:
                self.calls.append(received)
            return received

        def last(self, method: str) -> Received | None:
            with self._lock:
                return next((c for c in reversed(self.calls) if c.method == method), None)

        def count(self, method: str) -> int:
            with self._lock:
                return sum(1 for c in self.calls if c.method == method)

        def SayHello(self, request: Any, context: grpc.ServicerContext) -> Any:
            received = self.record("SayHello", request, context)
            return pb2.HelloReply(
                message=f"Hello, {request.name}!",
                metadata=received.metadata,
                tag_count=len(request.tags),
            )

        def Fail(self, request: Any, context: grpc.ServicerContext) -> Any:
            self.record("Fail", request, context)
            context.abort(getattr(grpc.StatusCode, request.code), request.details)

        def Slow(self, request: Any, context: grpc.ServicerContext) -> Any:
            received = self.record("Slow", request, context)
            until = time.monotonic() + request.seconds
            while time.monotonic() < until:
                if not context.is_active():  # the client cancelled or its deadline passed
                    received.cancelled.set()
                    return pb2.HelloReply()
                time.sleep(0.02)
            return pb2.HelloReply(message="finally")

        def Chatter(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            self.record("Chatter", request, context)
            yield pb2.HelloReply(message="one")

    return Greeter()


class MethodRecorder(grpc.ServerInterceptor):
    """Every method called on the server, reflection included, with its metadata."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str | bytes]]] = []

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        metadata = dict(handler_call_details.invocation_metadata or ())
        self.seen.append((handler_call_details.method, metadata))
        return continuation(handler_call_details)


@dataclass
class GreeterServer:
    """A running server on 127.0.0.1 and what it received."""

    server: grpc.Server
    port: int
    servicer: Any
    recorder: MethodRecorder

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, method: str, service: str = SERVICE) -> str:
        return f"{self.address}/{service}/{method}"


def start(
    reflection_service: str | None = "v1alpha",
    credentials: grpc.ServerCredentials | None = None,
) -> GreeterServer:
    """A Greeter server; `reflection_service` is "v1alpha" (grpcio's own), "v1" or None."""
    pb2, pb2_grpc = generated()
    recorder = MethodRecorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), interceptors=[recorder])
    servicer = make_servicer()
    pb2_grpc.add_GreeterServicer_to_server(servicer, server)
    if reflection_service == "v1alpha":
        reflection.enable_server_reflection([SERVICE, reflection.SERVICE_NAME], server)
    elif reflection_service == "v1":
        # grpcio ships only v1alpha; v1 is the same protocol under another name.
        handler = reflection.ReflectionServicer([SERVICE, V1_REFLECTION])
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    V1_REFLECTION,
                    {
                        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                            handler.ServerReflectionInfo,
                            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                            response_serializer=(
                                reflection_pb2.ServerReflectionResponse.SerializeToString
                            ),
                        )
                    },
                )
            ]
        )
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return GreeterServer(server, port, servicer, recorder)


@contextlib.contextmanager
def serving(*args: Any, **kwargs: Any) -> Iterator[GreeterServer]:
    running = start(*args, **kwargs)
    try:
        yield running
    finally:
        running.server.stop(grace=0)
