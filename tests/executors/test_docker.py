"""The docker executor against a real Podman service speaking the Docker API (servers_docker)."""

from __future__ import annotations

import ctypes
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from executors import docker as docker_executor
from executors.base import ConfigError, ExecutionContext, ExecutorError
from executors.docker import LABEL_JOB, DockerConfig, DockerExecutor, check
from executors.output import OutputSink
from executors.registry import get_executor
from tests.executors import fire
from tests.executors.servers_docker import IMAGE, IMAGE_DEFAULT_OUTPUT, Podman, podman
from tests.harness import wait_for

__all__ = ["podman"]  # the session fixture, imported so pytest finds it here

MISSING_IMAGE = "dkronweb-tests/definitely-missing:never"


@pytest.fixture
def docker_host(podman: Podman, monkeypatch: pytest.MonkeyPatch) -> Podman:
    """Points the executor at the session's Podman service through DOCKER_HOST."""
    monkeypatch.setenv("DOCKER_HOST", podman.url)
    return podman


def job_name() -> str:
    return f"job-{uuid.uuid4().hex[:8]}"


def make_context(config: dict[str, Any], **fields: Any) -> ExecutionContext:
    return ExecutionContext(
        job_name=fields.pop("job_name", None) or job_name(),
        config=DockerExecutor().validate(config),
        output=OutputSink(),
        **fields,
    )


def run(config: dict[str, Any], **fields: Any) -> tuple[ExecutionContext, ExecutorError | None]:
    """Run a job; return its context (output) and the error it raised, if any."""
    ctx = make_context(config, **fields)
    try:
        DockerExecutor().execute(ctx)
    except ExecutorError as exc:
        return ctx, exc
    return ctx, None


def start(ctx: ExecutionContext) -> tuple[threading.Thread, list[BaseException]]:
    """Run `ctx` in a thread so the test can watch its output and cancel it."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            DockerExecutor().execute(ctx)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def errors_of(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        DockerExecutor().validate(config)
    return info.value.errors


# --- success, failure and what the container sees -------------------------------------------


def test_a_container_that_echoes_its_env_and_args_succeeds_with_its_logs_as_output(
    docker_host: Podman,
) -> None:
    name = job_name()
    ctx, error = run(
        {
            "image": IMAGE,
            "command": (
                """sh -c 'echo "$GREETING from $DKRON_JOB_NAME"; echo "args: $*"' """
                """sh one "two three" """
            ),
            "env": "GREETING=hello,UNUSED=x",
            "network": "none",
        },
        job_name=name,
        execution_id="41",
        attempt=2,
    )
    assert error is None
    assert ctx.output.text() == f"hello from {name}\nargs: one two three\n"
    assert docker_host.containers(**{LABEL_JOB: name}) == []  # removed by default


def test_two_attempts_of_one_fire_see_the_same_fire_key(docker_host: Podman) -> None:
    name = job_name()
    config = {
        "image": IMAGE,
        "command": """sh -c 'echo "$DKRON_FIRE_KEY|$DKRON_ATTEMPT|$DKRON_SCHEDULED_AT"'""",
        "env": "DKRON_FIRE_KEY=fake",
        "network": "none",
    }
    seen = []
    for args in fire.attempts():
        ctx, error = run(config, job_name=name, **args)
        assert error is None
        seen.append(ctx.output.text())
    assert seen == [
        f"{fire.key(name)}|1|{fire.SCHEDULED_TEXT}\n",
        f"{fire.key(name)}|2|{fire.SCHEDULED_TEXT}\n",
    ]


def test_the_runs_parameters_reach_the_container_as_variables(docker_host: Podman) -> None:
    # The agent hands them over as ExecutionContext.param_env (jobs.params.environment).
    ctx, error = run(
        {
            "image": IMAGE,
            "command": """sh -c 'echo "$DKRON_PARAM_REGION $DKRON_PARAM_COUNT"'""",
            "env": "DKRON_PARAM_REGION=from-env",
            "network": "none",
        },
        param_env={"DKRON_PARAM_REGION": "us", "DKRON_PARAM_COUNT": "3"},
    )
    assert error is None
    assert ctx.output.text() == "us 3\n"  # the run's value wins over the job's own env


def test_stderr_is_part_of_the_output_and_the_run_is_labelled(docker_host: Podman) -> None:
    ctx, error = run(
        {
            "image": IMAGE,
            "command": (
                '["sh", "-c", "echo out; echo err >&2; echo $DKRON_EXECUTION_ID-$DKRON_ATTEMPT"]'
            ),
            "remove": "false",
        },
        execution_id="77",
        attempt=3,
    )
    assert error is None
    assert sorted(ctx.output.text().splitlines()) == ["77-3", "err", "out"]
    [container] = docker_host.containers(**{LABEL_JOB: ctx.job_name})
    try:
        assert container.labels["dkronweb.execution"] == "77"
        assert container.status == "exited"  # remove=false keeps it, stopped
    finally:
        container.remove(force=True)


def test_without_a_command_the_image_default_runs(docker_host: Podman) -> None:
    ctx, error = run({"image": IMAGE})
    assert error is None
    assert ctx.output.text() == IMAGE_DEFAULT_OUTPUT + "\n"


def test_a_nonzero_exit_code_fails_with_exit_status_and_keeps_the_logs(
    docker_host: Podman,
) -> None:
    ctx, error = run({"image": IMAGE, "command": "sh -c 'echo before failing; exit 3'"})
    assert error is not None
    assert error.message == "exit status 3"
    assert error.status == "failed" and error.retryable
    assert ctx.output.text() == "before failing\n"
    assert docker_host.containers(**{LABEL_JOB: ctx.job_name}) == []


def test_user_workdir_and_entrypoint_reach_the_container(docker_host: Podman) -> None:
    ctx, error = run(
        {
            "image": IMAGE,
            "entrypoint": ["sh", "-c", 'pwd; id -u; echo "$@"', "sh"],
            "command": "a b",
            "user": "65534",
            "workdir": "/tmp",
        }
    )
    assert error is None
    assert ctx.output.text() == "/tmp\n65534\na b\n"


def test_a_host_directory_mounted_as_a_volume_receives_the_containers_file(
    docker_host: Podman, tmp_path: Path
) -> None:
    shared, readonly = tmp_path / "shared", tmp_path / "readonly"
    shared.mkdir()
    readonly.mkdir()
    ctx, error = run(
        {
            "image": IMAGE,
            "volumes": f"{shared}:/data,{readonly}:/in:ro",
            "command": ["sh", "-c", "echo written by $DKRON_JOB_NAME > /data/result.txt"],
        }
    )
    assert error is None
    assert (shared / "result.txt").read_text() == f"written by {ctx.job_name}\n"

    ctx, error = run({"image": IMAGE, "volumes": [f"{readonly}:/in:ro"], "command": "touch /in/x"})
    assert error is not None and error.message == "exit status 1"
    assert "Read-only file system" in ctx.output.text()
    assert list(readonly.iterdir()) == []


def test_output_is_visible_while_the_container_still_runs(
    docker_host: Podman, tmp_path: Path
) -> None:
    ctx = make_context(
        {
            "image": IMAGE,
            "volumes": [f"{tmp_path}:/signal"],
            "command": [
                "sh",
                "-c",
                "echo started; while [ ! -e /signal/go ]; do sleep 0.05; done; echo finished",
            ],
        }
    )
    thread, errors = start(ctx)
    wait_for(lambda: "started" in ctx.output.text(), timeout=20, what="the first log line")
    assert thread.is_alive()
    assert ctx.output.text() == "started\n"
    (tmp_path / "go").touch()
    thread.join(20)
    assert not thread.is_alive() and errors == []
    assert ctx.output.text() == "started\nfinished\n"


# --- timeout and kill --------------------------------------------------------------------------


def test_a_timeout_kills_and_removes_the_container(docker_host: Podman) -> None:
    began = time.monotonic()
    ctx, error = run({"image": IMAGE, "command": "sh -c 'echo working; sleep 30'", "timeout": "1s"})
    assert error is not None
    assert error.status == "timeout" and error.retryable
    assert time.monotonic() - began < 10
    assert error.message.startswith(
        f"docker: Job '{ctx.job_name}' execution time exceeding defined timeout 1s. Container "
    )
    assert ctx.output.text().startswith("working\n")
    assert ctx.output.text().endswith(error.message + "\n")
    assert docker_host.containers(**{LABEL_JOB: ctx.job_name}) == []


def test_the_agents_default_timeout_bounds_a_job_without_one(docker_host: Podman) -> None:
    ctx, error = run({"image": IMAGE, "command": "sleep 30"}, default_timeout=1.0)
    assert error is not None and error.status == "timeout"
    assert "defined timeout 1s" in error.message


def test_a_timeout_also_stops_a_container_kept_with_remove_false(docker_host: Podman) -> None:
    ctx, error = run({"image": IMAGE, "command": "sleep 30", "timeout": "500ms", "remove": False})
    assert error is not None and error.status == "timeout"
    [container] = docker_host.containers(**{LABEL_JOB: ctx.job_name})
    try:
        assert container.status == "exited"
    finally:
        container.remove(force=True)


def test_a_kill_stops_the_container_and_is_not_retried(docker_host: Podman) -> None:
    ctx = make_context({"image": IMAGE, "command": "sh -c 'echo started; sleep 30'"})
    thread, errors = start(ctx)
    wait_for(lambda: "started" in ctx.output.text(), timeout=20, what="the container to start")
    ctx.cancel.cancel("killed")
    thread.join(15)
    assert not thread.is_alive()
    [error] = errors
    assert isinstance(error, ExecutorError)
    assert error.status == "killed" and not error.retryable
    assert error.message.startswith(f"docker: Job '{ctx.job_name}' was killed on request.")
    assert docker_host.containers(**{LABEL_JOB: ctx.job_name}) == []


def test_a_cancel_for_the_agents_time_limit_is_reported_as_a_timeout(docker_host: Podman) -> None:
    ctx = make_context({"image": IMAGE, "command": "sh -c 'echo started; sleep 30'"})
    thread, errors = start(ctx)
    wait_for(lambda: "started" in ctx.output.text(), timeout=20, what="the container to start")
    ctx.cancel.cancel("timeout")
    thread.join(15)
    [error] = errors
    assert isinstance(error, ExecutorError) and error.status == "timeout" and error.retryable
    assert "its time limit" in error.message


class SoftTimeLimit(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded, which is raised into the running thread."""


def test_an_exception_raised_into_the_run_still_stops_the_container(docker_host: Podman) -> None:
    # Celery raises its soft time limit asynchronously in the executing thread; the same is
    # done here with PyThreadState_SetAsyncExc, which is how such an exception arrives.
    ctx = make_context(
        {"image": IMAGE, "command": "sh -c 'echo started; sleep 30'", "remove": "false"}
    )
    thread, errors = start(ctx)
    wait_for(lambda: "started" in ctx.output.text(), timeout=20, what="the container to start")
    assert thread.ident is not None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(SoftTimeLimit)
    )
    thread.join(15)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [SoftTimeLimit]
    [container] = docker_host.containers(**{LABEL_JOB: ctx.job_name})
    try:
        assert container.status == "exited"  # killed, though kept because remove is false
    finally:
        container.remove(force=True)


# --- images ---------------------------------------------------------------------------------


def test_a_missing_image_with_pull_never_fails_without_trying_to_pull(
    docker_host: Podman,
) -> None:
    ctx, error = run({"image": MISSING_IMAGE, "pull": "never", "command": "true"})
    assert error is not None
    assert error.message == (
        f"docker: image '{MISSING_IMAGE}' not found on {docker_host.url} and pull is never"
    )
    assert not error.retryable
    assert ctx.output.text() == ""


def test_a_missing_image_that_cannot_be_pulled_fails_clearly(docker_host: Podman) -> None:
    # No registry is reachable from the test machines; the engine's own error is passed on.
    ctx, error = run({"image": MISSING_IMAGE, "command": "true"})
    assert error is not None
    assert error.message.startswith(f"docker: cannot pull image '{MISSING_IMAGE}': ")
    assert len(error.message) > len(f"docker: cannot pull image '{MISSING_IMAGE}': ")
    assert ctx.output.text() == f"docker: pulling image {MISSING_IMAGE}\n"


def test_pull_always_pulls_even_a_present_image_and_the_timeout_bounds_the_pull(
    docker_host: Podman,
) -> None:
    # The local image's registry (localhost:443) refuses connections; Podman retries for about
    # 3 s, so a 1 s timeout ends the run during the pull.
    ctx, error = run({"image": IMAGE, "pull": "always", "command": "true", "timeout": "1s"})
    assert error is not None and error.status == "timeout"
    assert error.message.endswith(f"The pull of image {IMAGE} was abandoned")
    assert ctx.output.text().startswith(f"docker: pulling image {IMAGE}\n")


# --- engine errors --------------------------------------------------------------------------


def test_an_unknown_network_fails_at_create_without_showing_the_env(docker_host: Podman) -> None:
    ctx, error = run(
        {
            "image": IMAGE,
            "command": "true",
            "network": "dkronweb-no-such-net",
            "env": {"API_TOKEN": "hunter2-secret"},
        }
    )
    assert error is not None
    assert error.message.startswith(f"docker: cannot create container from image '{IMAGE}': ")
    assert "dkronweb-no-such-net" in error.message
    assert "hunter2" not in error.message + ctx.output.text()
    assert docker_host.containers(**{LABEL_JOB: ctx.job_name}) == []


def test_a_command_missing_from_the_image_fails_at_start_and_is_removed(
    docker_host: Podman,
) -> None:
    ctx, error = run({"image": IMAGE, "command": "no-such-binary --flag"})
    assert error is not None
    assert error.message.startswith("docker: cannot start container ")
    assert "no-such-binary" in error.message
    assert docker_host.containers(**{LABEL_JOB: ctx.job_name}) == []


def test_docker_host_pointing_at_nothing_fails_with_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nothing = f"unix://{tmp_path}/nothing.sock"
    monkeypatch.setenv("DOCKER_HOST", nothing)
    _, error = run({"image": IMAGE, "command": "true"})
    assert error is not None
    assert error.message == (
        f"docker: cannot connect to the Docker API at DOCKER_HOST={nothing}: "
        "No such file or directory"
    )

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    _, error = run({"image": IMAGE, "command": "true"})
    assert error is not None
    assert error.message == (
        f"docker: cannot connect to the Docker API at DOCKER_HOST=tcp://127.0.0.1:{port}: "
        "Connection refused"
    )


# --- config ---------------------------------------------------------------------------------


def test_dkron_string_values_and_every_list_form_are_accepted() -> None:
    config = DockerExecutor().validate(
        {
            "image": " registry.example.com:5000/team/app:v2 ",
            "command": '["echo", "a, b"]',
            "env": '{"A": "1", "B": "x=y"}',
            "volumes": "/srv/data:/data, cache:/cache:ro",
            "pull": "Always",
            "timeout": "1m30s",
            "remove": "false",
        }
    )
    assert isinstance(config, DockerConfig)
    assert config.image == "registry.example.com:5000/team/app:v2"
    assert config.command == ["echo", "a, b"]
    assert config.env == {"A": "1", "B": "x=y"}
    assert config.volumes == ["/srv/data:/data:rw", "cache:/cache:ro"]
    assert config.pull == "always"
    assert DockerExecutor().timeout_seconds(config) == 90.0
    assert config.remove is False

    plain = DockerExecutor().validate(
        {"image": "busybox", "command": "echo 'a b' c", "env": "K=V,K2=V2", "remove": ""}
    )
    assert plain.command == ["echo", "a b", "c"]
    assert plain.env == {"K": "V", "K2": "V2"}
    assert (plain.pull, plain.remove, plain.timeout, plain.volumes) == ("missing", True, None, [])
    assert DockerExecutor().validate({"image": "x", "env": '["A=1,2"]'}).env == {"A": "1,2"}


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    [
        ({}, "image", "Field required"),
        ({"image": " "}, "image", "image missing"),
        ({"image": "Busybox:latest"}, "image", "not a valid image reference"),
        ({"image": "busybox", "pull": "sometimes"}, "pull", "never, missing or always"),
        ({"image": "busybox", "timeout": "30"}, "timeout", "missing unit"),
        ({"image": "busybox", "timeout": "-1s"}, "timeout", "greater than zero"),
        ({"image": "busybox", "remove": "yes"}, "remove", "invalid boolean"),
        ({"image": "busybox", "command": "echo 'unbalanced"}, "command", "cannot split"),
        ({"image": "busybox", "command": "[1, 2]"}, "command", "JSON array of strings"),
        ({"image": "busybox", "entrypoint": "[oops"}, "entrypoint", "does not parse"),
        ({"image": "busybox", "env": "NOVALUE"}, "env", "not of the form K=V"),
        ({"image": "busybox", "volumes": "/a"}, "volumes", "host:container"),
        ({"image": "busybox", "volumes": "rel/dir:/a"}, "volumes", "absolute path or a volume"),
        ({"image": "busybox", "volumes": "/a:rel"}, "volumes", "container side"),
        ({"image": "busybox", "volumes": "/a:/b:rx"}, "volumes", "mode must be ro or rw"),
        ({"image": "busybox", "workdir": "tmp"}, "workdir", "absolute path"),
        ({"image": "busybox", "user": "a b"}, "user", "must be"),
        ({"image": "busybox", "network": "my net"}, "network", "spaces"),
        ({"image": "busybox", "imageName": "x"}, "imageName", "unknown key"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(
    config: dict[str, Any], key: str, fragment: str
) -> None:
    errors = errors_of(config)
    assert key in errors, errors
    assert fragment in errors[key]


def test_the_registry_serves_it_as_a_code_running_executor_without_secret_keys() -> None:
    executor = get_executor("docker")
    assert isinstance(executor, DockerExecutor)
    assert executor.runs_code is True
    assert executor.secret_keys == frozenset()


def test_check_reports_a_missing_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check() is None
    monkeypatch.setitem(sys.modules, "docker", None)  # makes `import docker` raise ImportError
    problem = docker_executor.check()
    assert problem is not None and "docker SDK cannot be imported" in problem
