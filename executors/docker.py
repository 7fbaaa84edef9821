"""The `docker` executor: run a container through the Docker API that `DOCKER_HOST` names.

Dkron Pro shells out to the docker CLI; this talks to the API with the docker SDK, so it works
with Docker Engine and with Podman's Docker-compatible service alike. The container's logs are
streamed into the output while it runs, its exit code decides success, and a timeout or a kill
stops it. It is removed afterwards unless `remove` is false, and it never outlives the run.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator

import confidential
from executors.base import (
    ExecutionContext,
    Executor,
    ExecutorConfig,
    ExecutorError,
    check_outbound,
)
from executors.values import (
    GoBoolDefaultTrue,
    GoTimeout,
    JsonEnvMap,
    comma_items,
    config_error,
    format_go_duration,
    is_blank,
    json_if_bracketed,
    matching,
    split_command,
)

__all__ = ["DockerConfig", "DockerExecutor", "check"]

POLL_INTERVAL = 0.1  # how often cancel and timeout are checked while waiting
API_TIMEOUT = 60  # seconds for one ordinary API call (create, start, kill, remove)
STOP_WAIT = 10.0  # after a kill, how long to wait for the engine to report the exit
LOG_DRAIN_TIMEOUT = 5.0  # after the exit, how long the log stream may take to end
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"  # what the SDK uses without DOCKER_HOST

# Labels on every container, so an operator (and the tests) can find what a run started.
LABEL_JOB = "dkronweb.job"
LABEL_EXECUTION = "dkronweb.execution"
LABEL_ATTEMPT = "dkronweb.attempt"

# distribution/reference's grammar: [domain[:port]/]path[:tag][@digest], path lower-case.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"  # noqa: E501
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_VOLUME_MODES = frozenset({"ro", "rw", "z", "Z"})
_USER = re.compile(r"[^:\s]+(:[^:\s]+)?")
_NETWORK = re.compile(r"\S+")
_USER_HINT = 'user {value!r} must be "user", "uid" or "user:group"'
_IMAGE_HINT = (
    "image {value!r} is not a valid image reference "
    "(e.g. busybox, busybox:1.36, registry.example.com:5000/team/app:v2)"
)


def check() -> str | None:
    """A problem that keeps this executor from working on this host, or None (system checks)."""
    try:
        import docker  # noqa: F401
    except ImportError as exc:
        return (
            f"docker executor: the docker SDK cannot be imported ({exc}); "
            "install the `docker` Python package"
        )
    return None


def _argv(key: str) -> Any:
    """A parser for `command`/`entrypoint`: a JSON array of strings, or a string split as a
    POSIX shell would (quotes respected, no expansion; use ["sh", "-c", "..."] for a shell)."""

    def parse(value: Any) -> Any:
        if is_blank(value):
            return None
        if isinstance(value, str):
            value = json_if_bracketed(value, key, "[")
        if isinstance(value, str):
            try:
                value = split_command(value)
            except ValueError as exc:  # unbalanced quotes
                raise config_error(key, f"cannot split {key}: {exc}") from None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise config_error(
                key, f'{key} must be a string or a JSON array of strings, e.g. ["sh", "-c", "…"]'
            )
        return value or None

    return parse


def _parse_volumes(value: Any) -> Any:
    """A list or a comma list of `host:container[:mode]`; normalised to that string form."""
    if is_blank(value):
        return []
    if isinstance(value, str):
        value = json_if_bracketed(value, "volumes", "[")
    if isinstance(value, str):
        value = comma_items(value)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise config_error(
            "volumes", 'volumes must be a list or a comma list of "host:container[:ro]"'
        )
    binds: list[str] = []
    for item in value:
        parts = item.strip().split(":")
        if len(parts) not in (2, 3):
            raise config_error(
                "volumes", f'volume {item!r} is not of the form "host:container[:ro]"'
            )
        host, container = parts[0], parts[1]
        mode = parts[2] if len(parts) == 3 else "rw"
        if not (host.startswith("/") or _VOLUME_NAME.fullmatch(host)):
            raise config_error(
                "volumes",
                f"volume {item!r}: the host side must be an absolute path or a volume name",
            )
        if not container.startswith("/"):
            raise config_error(
                "volumes", f"volume {item!r}: the container side must be an absolute path"
            )
        if mode not in _VOLUME_MODES:
            raise config_error("volumes", f"volume {item!r}: mode must be ro or rw")
        binds.append(f"{host}:{container}:{mode}")
    return binds


def _parse_pull(value: Any) -> Any:
    if is_blank(value):
        return "missing"
    if isinstance(value, str) and value.strip().lower() in ("never", "missing", "always"):
        return value.strip().lower()
    raise config_error("pull", f"pull {value!r} must be never, missing or always")


Argv = Annotated[list[str] | None, BeforeValidator(_argv("command"))]
Entrypoint = Annotated[list[str] | None, BeforeValidator(_argv("entrypoint"))]


class DockerConfig(ExecutorConfig):
    """Dkron Pro's docker keys plus dkronweb's; values may be Dkron's strings ("true", "30s")."""

    image: Annotated[str, matching(_IMAGE, _IMAGE_HINT, missing="docker: image missing")] = Field(
        description="Image reference, e.g. busybox:1.36 or registry/app@sha256:…"
    )
    command: Argv = Field(None, description="Arguments; a string split like a shell, or JSON.")
    env: JsonEnvMap = Field(
        default_factory=dict, description='"K=V,K2=V2", a JSON object or a JSON array.'
    )
    volumes: Annotated[list[str], BeforeValidator(_parse_volumes)] = Field(
        default_factory=list, description='List or comma list of "host:container[:ro]".'
    )
    network: Annotated[str, matching(_NETWORK, "network {value!r} must not contain spaces")] = (
        Field("", description="Network mode or name (none, host, bridge, mynet).")
    )
    pull: Annotated[Literal["never", "missing", "always"], BeforeValidator(_parse_pull)] = Field(
        "missing", description="When to pull the image: never, missing (default) or always."
    )
    timeout: GoTimeout = Field(None, description='Go duration, e.g. "30s".')
    remove: GoBoolDefaultTrue = Field(
        True, description="Remove the container afterwards (default true)."
    )
    user: Annotated[str, matching(_USER, _USER_HINT)] = Field(
        "", description='Run as "user", "uid" or "user:group" in the container.'
    )
    workdir: str = Field("", description="Working directory inside the container.")
    entrypoint: Entrypoint = Field(None, description="Replaces the image's entrypoint.")

    @field_validator("workdir")
    @classmethod
    def _workdir_absolute(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith("/"):
            raise config_error("workdir", f"workdir {value!r} must be an absolute path")
        return value


def _docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def _reason(exc: BaseException) -> str:
    """The most specific message in an SDK error: its `explanation`, else the innermost OSError
    (requests and urllib3 wrap "Connection refused" several levels deep), else its text."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation)
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and item.strerror:
            return item.strerror
        if isinstance(item, BaseException):
            stack.extend(a for a in item.args if isinstance(a, BaseException))
            stack.extend(e for e in (item.__cause__, item.__context__) if e is not None)
    return str(exc) or type(exc).__name__


class DockerExecutor(Executor):
    name = "docker"
    description = "Run a container through the Docker API; success is exit code 0."
    config_schema = DockerConfig
    runs_code = True
    secret_keys: ClassVar[frozenset[str]] = frozenset()
    secret_entries: ClassVar[Mapping[str, str]] = {"env": confidential.ENV}
    # The code that receives the environment: the image, what it runs and what is mounted.
    destination_keys: ClassVar[frozenset[str]] = frozenset(
        {"image", "command", "entrypoint", "workdir", "volumes"}
    )

    def execute(self, ctx: ExecutionContext) -> None:
        config: DockerConfig = self.config_of(ctx)
        seconds = ctx.limit(config.timeout.total_seconds() if config.timeout else None)
        limit = config.timeout if seconds is None else timedelta(seconds=seconds)
        host = _docker_host()
        if host.startswith(("tcp://", "http://", "https://")):  # the SDK connects by itself
            parts = urlsplit(host)
            check_outbound(ctx, "docker", [(parts.hostname or "", parts.port or 2375)])
        client = _connect()
        try:
            _Run(client, ctx, config, limit).run()
        finally:
            with contextlib.suppress(Exception):
                client.close()


def _connect() -> Any:
    """A client for the API that DOCKER_HOST names; the SDK asks the engine for its API version
    on construction, which doubles as the reachability check."""
    try:
        import docker
    except ImportError as exc:
        raise ExecutorError(
            f"docker: the docker SDK cannot be imported on this agent: {exc}", retryable=False
        ) from None
    try:
        return docker.from_env(timeout=API_TIMEOUT)
    except docker.errors.DockerException as exc:
        where = (
            f"DOCKER_HOST={os.environ['DOCKER_HOST']}"
            if os.environ.get("DOCKER_HOST")
            else f"{DEFAULT_DOCKER_HOST} (DOCKER_HOST is not set)"
        )
        raise ExecutorError(
            f"docker: cannot connect to the Docker API at {where}: {_reason(exc)}"
        ) from None


class _Stopped(Exception):
    """Raised inside a run when a timeout or a kill ends it; carries the executor error."""

    def __init__(self, error: ExecutorError) -> None:
        super().__init__(error.message)
        self.error = error


class _Background(threading.Thread):
    """Runs one blocking API call (pull, wait) so the run loop can watch cancel and timeout."""

    def __init__(self, name: str, target: Any) -> None:
        super().__init__(name=name, daemon=True)
        self._target_call = target
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.result = self._target_call()
        except BaseException as exc:  # handed to the run loop, which decides what it means
            self.error = exc
        finally:
            self.done.set()


class _LogReader(threading.Thread):
    """Copies the container's stdout and stderr into the sink as the engine sends them."""

    def __init__(self, container: Any, write: Any) -> None:
        super().__init__(name="docker-logs", daemon=True)
        self.container = container
        self.write = write
        self.stream: Any = None

    def run(self) -> None:
        # follow=True from the start of the logs: nothing is lost if the container has already
        # printed (or even exited) before the stream opens.
        with contextlib.suppress(Exception):  # the stream breaks if the container is removed
            self.stream = self.container.logs(stream=True, follow=True, stdout=True, stderr=True)
            for chunk in self.stream:
                self.write(chunk)

    def close(self) -> None:
        if self.stream is not None:
            with contextlib.suppress(Exception):
                self.stream.close()


class _Run:
    """One run: get the image, create and start the container, stream, wait, clean up."""

    def __init__(
        self, client: Any, ctx: ExecutionContext, config: DockerConfig, limit: timedelta | None
    ) -> None:
        import docker

        self.errors = docker.errors
        self.client = client
        self.ctx = ctx
        self.config = config
        self.limit = limit
        self.deadline = time.monotonic() + limit.total_seconds() if limit else None
        self.container: Any = None

    def run(self) -> None:
        try:
            self._ensure_image()
            self.container = self._create()
        except _Stopped as stop:
            raise stop.error from None
        reader: _LogReader | None = None
        finished = False
        try:
            self._start()
            reader = _LogReader(self.container, self.ctx.output.write)
            reader.start()
            status = self._wait()
            finished = True
        except _Stopped as stop:
            finished = True
            raise stop.error from None
        finally:
            if reader is not None:
                # After an exit or a kill the stream ends by itself once the last lines are
                # in; otherwise (an exception from outside) the container still runs: stop
                # reading now.
                reader.join(LOG_DRAIN_TIMEOUT if finished else 0)
                reader.close()
            self._clean_up(settled=finished)
        code = status.get("StatusCode")
        error = status.get("Error")
        if isinstance(error, dict):  # Docker: {"Message": "..."} or null; Podman: null
            error = error.get("Message")
        if code != 0:
            message = f"exit status {code}"
            raise ExecutorError(f"{message}: {error}" if error else message)

    # --- image --------------------------------------------------------------------------

    def _ensure_image(self) -> None:
        image, pull = self.config.image, self.config.pull
        if pull != "always":
            try:
                self.client.images.get(image)
                return
            except self.errors.ImageNotFound:
                if pull == "never":
                    raise ExecutorError(
                        f"docker: image {image!r} not found on {_docker_host()} and pull is never",
                        retryable=False,
                    ) from None
            except self.errors.APIError as exc:
                raise ExecutorError(
                    f"docker: cannot inspect image {image!r}: {_reason(exc)}"
                ) from None
        self.ctx.output.write(f"docker: pulling image {image}\n")
        call = _Background("docker-pull", lambda: self._pull(image))
        call.start()
        self._until_done(call, on_stop=self._abandon_pull)
        if call.error is not None:
            raise ExecutorError(
                f"docker: cannot pull image {image!r}: {_reason(call.error)}"
            ) from None
        self.ctx.output.write(f"docker: pulled image {image}\n")

    def _pull(self, image: str) -> None:
        # The engine reports a failed pull inside the progress stream, not with an HTTP status.
        for event in self.client.api.pull(image, stream=True, decode=True):
            if isinstance(event, dict) and event.get("error"):
                detail = event.get("errorDetail") or {}
                raise RuntimeError(detail.get("message") or event["error"])

    def _abandon_pull(self) -> None:
        # Closing the client drops the pull's connection; the engine may finish the pull anyway.
        with contextlib.suppress(Exception):
            self.client.close()

    # --- container ----------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(self.config.env)
        env.update(self.ctx.param_env)  # the run's parameters win over the job's own env
        # Set last, as for shell jobs, so a job cannot fake which run it is.
        env.update(self.ctx.run_env())
        return env

    def _create(self) -> Any:
        config = self.config
        options: dict[str, Any] = {
            "command": config.command,
            "environment": self._environment(),
            "labels": {
                LABEL_JOB: self.ctx.job_name,
                LABEL_EXECUTION: str(self.ctx.execution_id),
                LABEL_ATTEMPT: str(self.ctx.attempt),
            },
            "detach": True,
        }
        if config.volumes:
            options["volumes"] = config.volumes
        if config.network:
            options["network_mode"] = config.network
        if config.user:
            options["user"] = config.user
        if config.workdir:
            options["working_dir"] = config.workdir
        if config.entrypoint:
            options["entrypoint"] = config.entrypoint
        try:
            return self.client.containers.create(config.image, **options)
        except self.errors.ImageNotFound as exc:
            raise ExecutorError(
                f"docker: image {config.image!r} not found on {_docker_host()}: {_reason(exc)}"
            ) from None
        except self.errors.APIError as exc:
            raise ExecutorError(
                f"docker: cannot create container from image {config.image!r}: {_reason(exc)}"
            ) from None

    def _start(self) -> None:
        try:
            self.container.start()
        except self.errors.APIError as exc:
            raise ExecutorError(
                f"docker: cannot start container {self._short_id()} from image "
                f"{self.config.image!r}: {_reason(exc)}"
            ) from None

    def _wait(self) -> dict[str, Any]:
        # timeout=None: the SDK's per-call timeout would otherwise end a wait after 60 s.
        call = _Background("docker-wait", lambda: self.container.wait(timeout=None))
        call.start()
        self._until_done(call, on_stop=lambda: self._kill_and_wait(call))
        if call.error is not None:
            raise ExecutorError(
                f"docker: lost track of container {self._short_id()}: {_reason(call.error)}"
            )
        return dict(call.result or {})

    def _until_done(self, call: _Background, *, on_stop: Any) -> None:
        """Block until `call` finishes; on timeout or cancel run `on_stop` and raise _Stopped."""
        while not call.done.is_set():
            if self.ctx.cancel.is_set():
                on_stop()
                raise _Stopped(self._stop_error(self.ctx.cancel.reason or "killed"))
            step = POLL_INTERVAL
            if self.deadline is not None:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    on_stop()
                    raise _Stopped(self._stop_error("timeout"))
                step = min(step, remaining)
            call.done.wait(step)

    def _stop_error(self, reason: str) -> ExecutorError:
        if self.container is not None:
            done = f"Container {self._short_id()} was killed"
        else:
            done = f"The pull of image {self.config.image} was abandoned"
        if reason == "timeout":
            defined = (
                f"defined timeout {format_go_duration(self.limit)}"
                if self.limit
                else "its time limit"
            )
            line = f"docker: Job '{self.ctx.job_name}' execution time exceeding {defined}. {done}"
            status, retryable = "timeout", True
        else:
            line = f"docker: Job '{self.ctx.job_name}' was killed on request. {done}"
            status, retryable = "killed", False
        tail = self.ctx.output.getvalue()[-1:]
        self.ctx.output.write(("\n" if tail not in (b"", b"\n") else "") + line + "\n")
        return ExecutorError(line, retryable=retryable, status=status)

    def _kill(self) -> None:
        with contextlib.suppress(Exception):  # already exited, or gone
            self.container.kill()

    def _kill_and_wait(self, wait: _Background) -> None:
        # Waiting for the engine to report the exit lets the log stream end with the last lines.
        self._kill()
        wait.done.wait(STOP_WAIT)

    def _clean_up(self, *, settled: bool) -> None:
        """Remove the container, or at least make sure it is not left running.

        Also reached by an exception from outside (Celery's soft time limit raised into this
        thread), in which case the container may still run: force-removal kills it first.
        """
        if self.container is None:
            return
        if not self.config.remove:
            if not settled:  # not exited nor killed: an exception from outside
                self._kill()
            return
        try:
            self.container.remove(force=True)
        except self.errors.NotFound:
            pass
        except Exception as exc:
            self.ctx.output.write(
                f"docker: could not remove container {self._short_id()}: {_reason(exc)}\n"
            )

    def _short_id(self) -> str:
        return str(getattr(self.container, "id", "") or "")[:12]
