"""The `grpc` executor: call one unary gRPC method found through server reflection.

Dkron's keys and success rule (the call's status equals `expectCode`, default OK), with what
Dkron leaves out: the response JSON is the output (Dkron drops it), `headers` are sent as
metadata (Dkron parses none), `expectCode` may be a status name, a kill or the deadline stops
the call mid-flight, and every way the call can fail has its own message. Like Dkron (which
uses grpcurl), no `.proto` files are needed: the server's reflection service describes the
method, and the request is built from the JSON body with those descriptors.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import difflib
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_database import DescriptorDatabase
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from google.protobuf.message import Message
from grpc_reflection.v1alpha.reflection_pb2 import (
    ServerReflectionRequest,
    ServerReflectionResponse,
)
from pydantic import BeforeValidator, Field

import confidential
from executors.base import (
    ExecutionContext,
    Executor,
    ExecutorConfig,
    ExecutorError,
    guard_failure,
    with_fire_fields,
)
from executors.netguard import GuardError, split_host_port
from executors.values import (
    GoBool,
    accepted_by,
    config_error,
    format_go_duration,
    is_blank,
    parse_headers,
    seconds_or_duration,
)

__all__ = ["GrpcConfig", "GrpcExecutor", "parse_status_code", "split_url"]

CANCEL_POLL_INTERVAL = 0.1
DEFAULT_TIMEOUT = 30.0
DEADLINE_CLOCK_SLACK = 0.1
USER_AGENT = "dkronweb-grpc-executor"

# Both reflection services, newest first, as grpcurl tries them: v1alpha is what grpcio and
# older servers offer, some newer ones (grpc-java's V1 service) offer only v1. The two protocols
# are the same messages under a different service name, so v1alpha's classes serve for both.
REFLECTION_METHODS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)

_URL = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})"
    r"/(?P<service>(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)[/.](?P<method>[A-Za-z_]\w*)"
)
_URL_HINT = 'url must be "host:port/package.Service/Method", e.g. "127.0.0.1:9000/demo.Demo/Run"'
_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")

_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
_CODES_BY_NAME = {code.name.replace("_", "").lower(): code for code in grpc.StatusCode}
_CODES_BY_NAME["canceled"] = grpc.StatusCode.CANCELLED  # Go's spelling (codes.Canceled)


def split_url(url: str) -> tuple[str, str, str]:
    """`host:port/package.Service/Method` -> (`host:port`, `package.Service`, `Method`).

    grpcurl's `package.Service.Method` form is accepted too.
    """
    match = _URL.fullmatch(url.strip())
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise ValueError(f"{_URL_HINT}; got {url!r}")
    return f"{match['host']}:{int(match['port'])}", match["service"], match["method"]


def parse_status_code(value: Any) -> grpc.StatusCode:
    """A gRPC status by number (`5`) or by name (`NOT_FOUND`, `not_found`, Go's `NotFound`)."""
    if isinstance(value, grpc.StatusCode):
        return value
    text = str(value).strip()
    if isinstance(value, bool) or not text:
        raise ValueError(f"invalid gRPC status code {value!r}")
    if text.isdigit():
        if int(text) in _CODES_BY_NUMBER:
            return _CODES_BY_NUMBER[int(text)]
        raise ValueError(f"expectCode {text} is not a gRPC status code (0-16)")
    code = _CODES_BY_NAME.get(text.replace("_", "").lower())
    if code is None:
        names = [c.name for c in grpc.StatusCode]
        close = difflib.get_close_matches(text.upper(), names, n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (one of {', '.join(names)})"
        raise ValueError(f"expectCode {text!r} is not a gRPC status code{hint}")
    return code


def _parse_expect_code(value: Any) -> Any:
    if value is None or value == "":
        return grpc.StatusCode.OK
    try:
        return parse_status_code(value)
    except ValueError as exc:
        raise config_error("expect_code", str(exc)) from None


def _parse_body(value: Any) -> Any:
    """A JSON object (as Dkron's string, or already decoded); checked against the request type
    only at run time, when the server has described it."""
    if is_blank(value):
        return ""
    if isinstance(value, dict):
        return json.dumps(value)
    if not isinstance(value, str):
        raise config_error("body", "body must be a JSON object as a string")
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError as exc:
        raise config_error("body", f"body is not valid JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise config_error("body", "body must be a JSON object (the request message)")
    return value


def _metadata_pair(name: str, value: Any) -> tuple[str, str | bytes]:
    """One metadata entry, checked against gRPC's rules so the call cannot fail on it later.

    Messages name the key, never the value: values are often credentials.
    """
    key = name.strip().lower()
    if not _METADATA_KEY.fullmatch(key):
        raise config_error(
            "headers", f"header name {name!r} is not a gRPC metadata key (a-z 0-9 - _ .)"
        )
    if key.startswith("grpc-"):
        raise config_error("headers", f"header name {name!r} is reserved by gRPC (grpc-*)")
    if not isinstance(value, str):
        raise config_error("headers", f"header {name!r} must have a string value")
    value = value.strip()
    if key.endswith("-bin"):
        try:
            return key, base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise config_error(
                "headers", f"header {name!r} is binary (-bin): its value must be base64"
            ) from None
    if not _PRINTABLE_ASCII.fullmatch(value):
        raise config_error(
            "headers",
            f"header {name!r} must be printable ASCII; name it *-bin and base64 the value "
            "to send bytes",
        )
    return key, value


def _parse_headers(value: Any) -> Any:
    """Dkron's http form or a JSON object (values.parse_headers), each entry checked as gRPC
    metadata."""
    return [_metadata_pair(name, val) for name, val in parse_headers(value, form="name: value")]


class GrpcConfig(ExecutorConfig):
    """Dkron's grpc keys plus optional TLS; values may be Dkron's strings."""

    url: Annotated[str, accepted_by(split_url, missing="url is empty", kind="url")] = Field(
        description="host:port/package.Service/Method"
    )
    body: Annotated[str, BeforeValidator(_parse_body)] = Field(
        "", description="The request message as JSON (protobuf JSON mapping); empty: {}."
    )
    headers: Annotated[list[tuple[str, str | bytes]], BeforeValidator(_parse_headers)] = Field(
        default_factory=list,
        description='Metadata: JSON array of "name: value" strings, or a JSON object.',
    )
    timeout: Annotated[float, seconds_or_duration(DEFAULT_TIMEOUT)] = Field(
        DEFAULT_TIMEOUT, description="Seconds (or a Go duration) for reflection and the call."
    )
    expect_code: Annotated[grpc.StatusCode, BeforeValidator(_parse_expect_code)] = Field(
        grpc.StatusCode.OK, alias="expectCode", description="Status meaning success (0 or OK)."
    )
    tls: GoBool = Field(False, description="Use TLS (plaintext by default, as Dkron).")
    tls_root_cas_file: str = Field(
        "", alias="tlsRootCAsFile", description="CA bundle to verify the server (PEM file)."
    )
    tls_certificate_file: str = Field(
        "", alias="tlsCertificateFile", description="Client certificate (PEM file on the agent)."
    )
    tls_certificate_key_file: str = Field(
        "", alias="tlsCertificateKeyFile", description="Client certificate's key (PEM file)."
    )

    @property
    def uses_tls(self) -> bool:
        return self.tls or bool(
            self.tls_root_cas_file or self.tls_certificate_file or self.tls_certificate_key_file
        )


class GrpcExecutor(Executor):
    name = "grpc"
    description = "Call a unary gRPC method found through server reflection; JSON in and out."
    config_schema = GrpcConfig
    # Metadata often carries tokens: every value is write-only (masked in responses, stored
    # encrypted when a key is set), the names stay readable; see confidential.
    secret_keys: ClassVar[frozenset[str]] = frozenset()
    secret_entries: ClassVar[Mapping[str, str]] = {"headers": confidential.HEADERS}
    # Where the metadata goes, and whether it travels in clear or to whom TLS trusts.
    destination_keys: ClassVar[frozenset[str]] = frozenset({"url", "tls", "tlsRootCAsFile"})

    def check_config(self, config: GrpcConfig) -> dict[str, str]:
        if bool(config.tls_certificate_file) != bool(config.tls_certificate_key_file):
            key = "tlsCertificateKeyFile" if config.tls_certificate_file else "tlsCertificateFile"
            return {key: "tlsCertificateFile and tlsCertificateKeyFile go together"}
        return {}

    def execute(self, ctx: ExecutionContext) -> None:
        config: GrpcConfig = self.config_of(ctx)
        call = _Call(config, ctx, ctx.limit(config.timeout))
        done = threading.Event()
        watcher = threading.Thread(
            target=_watch_cancel, args=(ctx, call, done), name="grpc-cancel", daemon=True
        )
        watcher.start()
        try:
            call.run()
        finally:
            done.set()
            call.close()


def _watch_cancel(ctx: ExecutionContext, call: _Call, done: threading.Event) -> None:
    """Stop the call in flight as soon as the agent cancels the run (kill or Celery's limit)."""
    while not done.is_set():
        if ctx.cancel.wait(CANCEL_POLL_INTERVAL):
            call.stop()
            return


class _Stopped(Exception):
    """Raised inside the run once `stop()` was called; turned into killed/timeout."""


class _ReflectionError(Exception):
    """The reflection service answered a request with an error other than NOT_FOUND."""


class _ReflectionDatabase(DescriptorDatabase):
    """Descriptors fetched on demand from the server's reflection service.

    grpcio-reflection's ProtoReflectionDescriptorDatabase does the same but sets no deadline,
    cannot be interrupted, and knows only v1alpha; this one asks with the run's deadline and
    metadata, under v1 or v1alpha, and registers each call so a kill can cancel it.
    """

    def __init__(self, call: _Call) -> None:
        super().__init__()
        self._call = call
        self._known: set[str] = set()
        self._methods = [
            call.channel.stream_stream(
                path,
                request_serializer=ServerReflectionRequest.SerializeToString,
                response_deserializer=ServerReflectionResponse.FromString,
            )
            for path in REFLECTION_METHODS
        ]

    def FindFileByName(self, name: str) -> FileDescriptorProto:
        try:
            return super().FindFileByName(name)
        except KeyError:
            pass
        self._add(self._ask(ServerReflectionRequest(file_by_filename=name), name))
        return super().FindFileByName(name)

    def FindFileContainingSymbol(self, symbol: str) -> FileDescriptorProto:
        try:
            return super().FindFileContainingSymbol(symbol)
        except KeyError:
            pass
        self._add(self._ask(ServerReflectionRequest(file_containing_symbol=symbol), symbol))
        return super().FindFileContainingSymbol(symbol)

    def list_services(self) -> list[str]:
        response = self._ask(ServerReflectionRequest(list_services=""), "services")
        return sorted(s.name for s in response.list_services_response.service)

    def _ask(self, request: ServerReflectionRequest, key: str) -> ServerReflectionResponse:
        """One request on its own stream; falls back to v1alpha once if v1 is unimplemented."""
        while True:
            stream = self._call.track(
                self._methods[0](
                    iter([request]),
                    timeout=self._call.remaining(),
                    metadata=self._call.metadata,
                )
            )
            try:
                response: ServerReflectionResponse = next(stream)
                break
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED and len(self._methods) > 1:
                    self._methods.pop(0)
                    continue
                raise
            finally:
                self._call.untrack(stream)
                stream.cancel()  # one answer is all we wanted; free the stream
        if response.WhichOneof("message_response") == "error_response":
            error = response.error_response
            if error.error_code == grpc.StatusCode.NOT_FOUND.value[0]:
                raise KeyError(key)
            code = _CODES_BY_NUMBER.get(error.error_code)
            name = code.name if code else str(error.error_code)
            raise _ReflectionError(f"{name}: {error.error_message}")
        return response

    def _add(self, response: ServerReflectionResponse) -> None:
        for raw in response.file_descriptor_response.file_descriptor_proto:
            proto = FileDescriptorProto.FromString(raw)
            if proto.name not in self._known:
                self._known.add(proto.name)
                self.Add(proto)


class _Call:
    """One run: the channel, the RPC in flight (so a kill can cancel it), and the deadline."""

    def __init__(self, config: GrpcConfig, ctx: ExecutionContext, limit: float) -> None:
        self.config = config
        self.ctx = ctx
        self.target, self.service_name, self.method_name = split_url(config.url)
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.metadata = tuple(config.headers) or None
        # The method's call also carries the fire key (lower-case, as gRPC metadata must be);
        # the reflection lookups before it do not, so a target that deduplicates every call
        # on `idempotency-key` still answers them.
        self.call_metadata = tuple(with_fire_fields(config.headers, ctx.fire_fields(), lower=True))
        self.channel = _channel(config, self.target, ctx)
        self._lock = threading.Lock()
        self._active: set[Any] = set()
        self._stopped = False
        self._closed = False

    @property
    def path(self) -> str:
        return f"{self.service_name}/{self.method_name}"

    # -- flow ----------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            database = _ReflectionDatabase(self)
            pool = descriptor_pool.DescriptorPool(database)
            method = self._find_method(database, pool)
            request = self._build_request(method, pool)
            code, details, response = self._invoke(method, request)
            self._judge(code, details, response, pool)
        except _Stopped:
            raise self._stopped_error() from None

    def _find_method(
        self, database: _ReflectionDatabase, pool: descriptor_pool.DescriptorPool
    ) -> MethodDescriptor:
        with self._reflection_errors():
            try:
                service = pool.FindServiceByName(self.service_name)
            except KeyError:
                service = None
            if service is None:
                raise self._service_not_found(database.list_services())
        method = service.methods_by_name.get(self.method_name)
        if method is None:
            names = sorted(service.methods_by_name)
            raise ExecutorError(
                f"grpc: method {self.method_name!r} not found in service {self.service_name}"
                f"{_did_you_mean(self.method_name, names)} Methods: {', '.join(names)}",
                retryable=False,
            )
        kind = _streaming_kind(method)
        if kind:
            raise ExecutorError(
                f"grpc: {self.path} is a {kind} method; the grpc executor calls unary methods only",
                retryable=False,
            )
        return method

    def _service_not_found(self, services: list[str]) -> ExecutorError:
        shown = [s for s in services if not s.startswith("grpc.reflection.")] or services
        return ExecutorError(
            f"grpc: service {self.service_name!r} not found on {self.target}"
            f"{_did_you_mean(self.service_name, services)} "
            f"Services: {', '.join(shown) or '(none)'}",
            retryable=False,
        )

    def _build_request(
        self, method: MethodDescriptor, pool: descriptor_pool.DescriptorPool
    ) -> Message:
        with self._reflection_errors():
            request = message_factory.GetMessageClass(method.input_type)()
            try:
                json_format.Parse(self.config.body or "{}", request, descriptor_pool=pool)
            except json_format.ParseError as exc:
                # A retry sends the same body to the same schema: fix the job instead.
                raise ExecutorError(
                    f"grpc: body does not match the request type "
                    f"{method.input_type.full_name}: {exc}",
                    retryable=False,
                ) from None
        return request

    def _invoke(
        self, method: MethodDescriptor, request: Message
    ) -> tuple[grpc.StatusCode, str, Message | None]:
        response_class = message_factory.GetMessageClass(method.output_type)
        rpc = self.channel.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_class.FromString,
        )
        future = self.track(
            rpc.future(request, timeout=self.remaining(), metadata=self.call_metadata)
        )
        try:
            return grpc.StatusCode.OK, "", future.result()
        except (grpc.RpcError, grpc.FutureCancelledError) as exc:
            if self._stopped:
                raise self._stopped_error() from None
            if not isinstance(exc, grpc.RpcError):  # pragma: no cover - only we cancel
                raise
            return exc.code(), exc.details() or "", None
        finally:
            self.untrack(future)

    def _judge(
        self,
        code: grpc.StatusCode,
        details: str,
        response: Message | None,
        pool: descriptor_pool.DescriptorPool,
    ) -> None:
        if response is not None:
            self.ctx.output.write(self._to_json(response, pool) + "\n")
        expected = self.config.expect_code
        if code == expected:
            if code != grpc.StatusCode.OK:
                suffix = f": {details}" if details else ""
                self.ctx.output.write(
                    f"grpc: {self.path} returned {code.name} as expected{suffix}\n"
                )
            return
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and self._past_deadline():
            raise self._timeout_error()
        suffix = f": {details}" if details else ""
        raise ExecutorError(f"grpc: expected {expected.name}, got {code.name}{suffix}")

    def _to_json(self, response: Message, pool: descriptor_pool.DescriptorPool) -> str:
        try:
            with self._reflection_errors():
                return json_format.MessageToJson(response, descriptor_pool=pool)
        except ExecutorError as exc:
            # The call itself succeeded; an Any whose type the server will not describe must not
            # turn that into a failure.
            if exc.status != "failed":
                raise
            return json.dumps({"error": f"cannot show the response as JSON: {exc.message}"})

    # -- errors --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reflection_errors(self) -> Iterator[None]:
        """Turn what a reflection lookup can raise (RPC errors, descriptor errors) into the
        run's ExecutorError; a stop wins over whatever the cancelled RPC reported."""
        try:
            yield
        except ExecutorError:
            if self._stopped:
                raise self._stopped_error() from None
            raise
        except Exception as exc:
            raise self.reflection_failure(exc) from None

    def reflection_failure(self, exc: BaseException) -> ExecutorError:
        if self._stopped or isinstance(exc, _Stopped):
            return self._stopped_error()
        if isinstance(exc, grpc.RpcError):
            code, details = exc.code(), exc.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE:
                return ExecutorError(f"grpc: cannot connect to {self.target}: {details}")
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return self._timeout_error(while_doing=" asking the server for the method")
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return ExecutorError(
                    f"grpc: server reflection is not enabled on {self.target}: the grpc "
                    f"executor needs it to find {self.path} (register the "
                    "grpc.reflection.v1 or v1alpha ServerReflection service on the server)",
                    retryable=False,
                )
            return ExecutorError(
                f"grpc: reflection request to {self.target} failed: {code.name}: {details}"
            )
        if isinstance(exc, _ReflectionError):
            return ExecutorError(f"grpc: reflection request to {self.target} failed: {exc}")
        return ExecutorError(
            f"grpc: cannot use the descriptors {self.target} sent for {self.path}: {exc}",
            retryable=False,
        )

    def _timeout_error(self, while_doing: str = "") -> ExecutorError:
        limit = format_go_duration(timedelta(seconds=self.limit))
        return ExecutorError(
            f"grpc: {self.path} on {self.target}: timeout after {limit}{while_doing}",
            status="timeout",
        )

    def _stopped_error(self) -> ExecutorError:
        if self.ctx.cancel.reason == "timeout":
            return ExecutorError(
                f"grpc: {self.path} on {self.target}: stopped at the run's time limit",
                status="timeout",
            )
        return ExecutorError("grpc: call was killed", retryable=False, status="killed")

    # -- deadline and cancellation -------------------------------------------------------------

    def remaining(self) -> float:
        """Seconds left for the next RPC; the run's deadline bounds reflection and call alike."""
        if self._stopped or self.ctx.cancel.is_set():
            raise _Stopped
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._timeout_error()
        return left

    def _past_deadline(self) -> bool:
        """Whether our own deadline expired, rather than the server reporting one of its own.

        gRPC keeps its own clock, so allow it to fire a little before ours.
        """
        return time.monotonic() >= self.deadline - DEADLINE_CLOCK_SLACK

    def track(self, rpc: Any) -> Any:
        with self._lock:
            self._active.add(rpc)
            stopped = self._stopped
        if stopped:
            rpc.cancel()
        return rpc

    def untrack(self, rpc: Any) -> None:
        with self._lock:
            self._active.discard(rpc)

    def stop(self) -> None:
        """Cancel whatever is in flight (the server sees CANCELLED) and refuse further RPCs."""
        with self._lock:
            self._stopped = True
            active = list(self._active)
        for rpc in active:
            rpc.cancel()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.channel.close()


def _channel(config: GrpcConfig, target: str, ctx: ExecutionContext) -> grpc.Channel:
    options: list[tuple[str, Any]] = [("grpc.primary_user_agent", USER_AGENT)]
    host, port = split_host_port(target, 443)
    try:  # the channel goes to the checked address; TLS still verifies the URL's host
        address = ctx.outbound.pin(host, port)
    except GuardError as exc:
        raise guard_failure("grpc", exc) from None
    if address != host:
        target = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        options.append(("grpc.ssl_target_name_override", host))
        options.append(("grpc.default_authority", f"{host}:{port}"))
    if not config.uses_tls:
        return grpc.insecure_channel(target, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(config.tls_root_cas_file, "tlsRootCAsFile"),
        private_key=_read(config.tls_certificate_key_file, "tlsCertificateKeyFile"),
        certificate_chain=_read(config.tls_certificate_file, "tlsCertificateFile"),
    )
    return grpc.secure_channel(target, credentials, options=options)


def _read(path: str, key: str) -> bytes | None:
    """A PEM file on the agent; a missing one is not fixed by a retry."""
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ExecutorError(
            f"grpc: cannot read {key} {path!r}: {exc.strerror or exc}", retryable=False
        ) from None


def _streaming_kind(method: MethodDescriptor) -> str:
    client, server = method.client_streaming, method.server_streaming
    if client and server:
        return "bidirectional-streaming"
    if client:
        return "client-streaming"
    if server:
        return "server-streaming"
    return ""


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else "."
