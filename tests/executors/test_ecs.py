"""The ecs executor against moto in server mode (ECS, EC2 and CloudWatch Logs over HTTP).

moto runs no containers, so each test plays the container's part through moto's backend
(see tests/executors/servers_ecs.py): it waits for the task the executor started, then stops it
with the exit code the test needs.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from executors.base import CancelToken, ConfigError, ExecutionContext, ExecutorError
from executors.ecs import EcsConfig, EcsExecutor
from executors.ecs import run as ecs
from executors.output import OutputSink
from executors.registry import get_executor, mask_secrets
from tests.executors import fire
from tests.executors.servers_ecs import (
    CONTAINER,
    CREDENTIALS,
    FAMILY,
    LOG_GROUP,
    REGION,
    STREAM_PREFIX,
    Moto,
    moto_server,
    task_definition,
)
from tests.harness import wait_for


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    with moto_server() as server:
        yield server


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll moto every 50 ms instead of every 2 s, and let botocore try each call once."""
    monkeypatch.setattr(ecs, "POLL_INTERVAL", 0.05)
    monkeypatch.setattr(ecs, "BOTO_MAX_ATTEMPTS", 1)


@pytest.fixture
def ecs_cluster(moto: Moto) -> str:
    """A fresh cluster per test, so the test's task is the only one on it."""
    name = f"c-{uuid.uuid4().hex[:12]}"
    moto.ecs.create_cluster(clusterName=name)
    return name


def job(moto: Moto, cluster: str, **extra: Any) -> dict[str, str]:
    """A Dkron-style config (every value a string) for the session's FARGATE task definition."""
    return {
        "cluster": cluster,
        "taskdefName": FAMILY,
        "region": REGION,
        "fargate": "true",
        "subnet": moto.subnet,
        "securityGroup": moto.security_group,
        "endpointUrl": moto.url,
        **extra,
    }


def run_env(ctx: ExecutionContext) -> list[dict[str, str]]:
    """The DKRON_* variables every judged container gets after the job's env (the fire key)."""
    return [{"name": name, "value": value} for name, value in ctx.run_env().items()]


class Running:
    """The executor running in a thread, as on an agent, while the test plays the container."""

    def __init__(
        self, raw: dict[str, Any], *, job_name: str = "nightly-report", **ctx: Any
    ) -> None:
        self.ctx = ExecutionContext(
            job_name=job_name, config=EcsExecutor().validate(raw), output=OutputSink(), **ctx
        )
        self.error: ExecutorError | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            EcsExecutor().execute(self.ctx)
        except ExecutorError as exc:
            self.error = exc

    def result(self, timeout: float = 15.0) -> ExecutorError | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the executor did not return"
        return self.error

    @property
    def output(self) -> str:
        return self.ctx.output.text()


def run(raw: dict[str, Any], **ctx: Any) -> tuple[ExecutorError | None, str]:
    """Run to the end when no task needs playing (the run fails before or at RunTask)."""
    running = Running(raw, **ctx)
    return running.result(), running.output


def test_a_task_exiting_with_0_succeeds_and_ecs_got_the_command_env_and_network(
    moto: Moto, ecs_cluster: str
) -> None:
    running = Running(
        job(
            moto,
            ecs_cluster,
            service=CONTAINER,
            overrides='echo,"hello, world"',
            env="GREETING=hi,COLOR=blue",
        )
    )
    task = moto.started_task(ecs_cluster)
    assert task.overrides == {
        "containerOverrides": [
            {
                "name": CONTAINER,
                "command": ["echo", "hello, world"],
                "environment": [
                    {"name": "GREETING", "value": "hi"},
                    {"name": "COLOR", "value": "blue"},
                    *run_env(running.ctx),
                ],
            }
        ]
    }
    assert task.launch_type == "FARGATE"
    assert task.started_by == "nightly-report"
    assert task.network_configuration == {
        "awsvpcConfiguration": {"subnets": [moto.subnet], "securityGroups": [moto.security_group]}
    }
    assert task.task_definition_arn.endswith(f"task-definition/{moto.taskdef}")
    moto.finish(task, 0)

    assert running.result() is None
    assert running.output == (
        f"ecs: started task {task.id} ({moto.taskdef}) on cluster {ecs_cluster}\n"
        f"ecs: task {task.id} stopped; container {CONTAINER} exited with 0\n"
    )


def test_json_overrides_are_sent_and_env_joins_the_essential_containers_entry(
    moto: Moto, ecs_cluster: str
) -> None:
    overrides = {
        "containerOverrides": [
            {"name": CONTAINER, "environment": [{"name": "MODE", "value": "old"}]}
        ],
        "cpu": "512",
        "taskRoleArn": "arn:aws:iam::123456789012:role/report",
    }
    running = Running(job(moto, ecs_cluster, overrides=json.dumps(overrides), env="MODE=new"))
    task = moto.started_task(ecs_cluster)
    assert task.overrides == {
        "containerOverrides": [
            {
                "name": CONTAINER,
                "environment": [{"name": "MODE", "value": "new"}, *run_env(running.ctx)],
            }
        ],
        "cpu": "512",
        "taskRoleArn": "arn:aws:iam::123456789012:role/report",
    }
    moto.finish(task, 0)
    assert running.result() is None


def test_a_nonzero_exit_code_fails_naming_the_container_and_the_code(
    moto: Moto, ecs_cluster: str
) -> None:
    running = Running(job(moto, ecs_cluster))
    task = moto.started_task(ecs_cluster)
    moto.finish(task, 3)

    error = running.result()
    assert error is not None
    assert error.message == (
        f"ecs: container {CONTAINER} exited with 3 (task {task.id}: "
        "EssentialContainerExited: Essential container in task exited)"
    )
    assert (error.status, error.retryable) == ("failed", True)


def test_a_task_that_stopped_without_an_exit_code_fails_with_the_reason(
    moto: Moto, ecs_cluster: str
) -> None:
    running = Running(job(moto, ecs_cluster))
    task = moto.started_task(ecs_cluster)
    moto.finish(
        task,
        None,
        reason="Task failed to start",
        container_reason="CannotPullContainerError: pull access denied for busybox",
    )

    error = running.result()
    assert error is not None
    assert error.message == (
        f"ecs: task {task.id} stopped without an exit code for container {CONTAINER}: "
        "CannotPullContainerError: pull access denied for busybox"
    )


def test_taskdef_body_is_registered_before_the_run_and_the_task_uses_it(
    moto: Moto, ecs_cluster: str
) -> None:
    family = f"fam-{uuid.uuid4().hex[:8]}"
    body = json.dumps(task_definition(family))
    config = job(moto, ecs_cluster, taskdefBody=body)
    del config["taskdefName"]
    running = Running(config)
    task = moto.started_task(ecs_cluster)
    registered = moto.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    assert task.task_definition_arn == registered["taskDefinitionArn"]
    assert registered["containerDefinitions"][0]["image"] == "busybox"
    moto.finish(task, 0)

    assert running.result() is None
    assert running.output.startswith(f"ecs: registered task definition {family}:1\n")


def test_a_missing_cluster_fails_without_retry(moto: Moto) -> None:
    error, output = run(job(moto, "no-such-cluster"))
    assert error is not None
    assert error.message == f"ecs: cluster 'no-such-cluster' not found in {REGION}"
    assert error.retryable is False
    assert "started task" not in output


def test_a_missing_task_definition_fails_without_retry(moto: Moto, ecs_cluster: str) -> None:
    error, _ = run(job(moto, ecs_cluster, taskdefName="no-such-family:7"))
    assert error is not None
    assert error.message.startswith("ecs: task definition 'no-such-family:7' not found")
    assert error.retryable is False
    assert moto.tasks(ecs_cluster) == []


def test_a_service_that_is_not_in_the_task_definition_fails_naming_the_containers(
    moto: Moto, ecs_cluster: str
) -> None:
    error, _ = run(job(moto, ecs_cluster, service="worker"))
    assert error is not None
    assert error.message == (
        f"ecs: no container named 'worker' in task definition {moto.taskdef} (containers: web)"
    )
    assert error.retryable is False


def test_env_for_a_definition_with_several_essential_containers_needs_service(
    moto: Moto, ecs_cluster: str
) -> None:
    body = task_definition(f"pair-{uuid.uuid4().hex[:8]}")
    sidecar = {**body["containerDefinitions"][0], "name": "sidecar"}
    body["containerDefinitions"].append(sidecar)
    config = job(moto, ecs_cluster, taskdefBody=json.dumps(body), env="A=1")
    del config["taskdefName"]
    error, _ = run(config)
    assert error is not None
    assert "several essential containers (web, sidecar); set service" in error.message
    assert moto.tasks(ecs_cluster) == []


def test_two_attempts_of_one_fire_give_the_container_the_same_fire_key(moto: Moto) -> None:
    seen = []
    for args in fire.attempts():
        cluster = f"c-{uuid.uuid4().hex[:12]}"
        moto.ecs.create_cluster(clusterName=cluster)
        running = Running(job(moto, cluster, env="DKRON_FIRE_KEY=fake"), **args)
        task = moto.started_task(cluster)
        [entry] = task.overrides["containerOverrides"]
        assert entry["name"] == CONTAINER
        seen.append({e["name"]: e["value"] for e in entry["environment"]})
        moto.finish(task, 0)
        assert running.result() is None
    first, retry = seen
    assert first["DKRON_FIRE_KEY"] == retry["DKRON_FIRE_KEY"] == fire.key("nightly-report")
    assert first["DKRON_SCHEDULED_AT"] == fire.SCHEDULED_TEXT
    assert (first["DKRON_ATTEMPT"], retry["DKRON_ATTEMPT"]) == ("1", "2")


def test_every_essential_container_gets_the_fire_key_when_no_env_is_set(
    moto: Moto, ecs_cluster: str
) -> None:
    body = task_definition(f"pair-{uuid.uuid4().hex[:8]}")
    sidecar = {**body["containerDefinitions"][0], "name": "sidecar"}
    body["containerDefinitions"].append(sidecar)
    config = job(moto, ecs_cluster, taskdefBody=json.dumps(body))
    del config["taskdefName"]
    running = Running(config, **fire.attempts()[0])
    task = moto.started_task(ecs_cluster)
    entries = task.overrides["containerOverrides"]
    assert [e["name"] for e in entries] == [CONTAINER, "sidecar"]
    for entry in entries:
        env = {e["name"]: e["value"] for e in entry["environment"]}
        assert env["DKRON_FIRE_KEY"] == fire.key("nightly-report")
    moto.finish(task, 0)
    running.result()  # moto reports one container's exit here; the env is what this checks


def test_ecs_refusing_to_place_the_task_is_a_clear_failure() -> None:
    # moto never answers RunTask with `failures` (real ECS does, e.g. when no instance has
    # room), so the mapping of such an answer is checked on its own.
    error = ecs._run_failure(
        [{"arn": "arn:aws:ecs:eu-west-1:1:container-instance/x", "reason": "RESOURCE:MEMORY"}],
        "prod",
    )
    assert error.message == (
        "ecs: ECS could not start the task on cluster 'prod': RESOURCE:MEMORY for "
        "arn:aws:ecs:eu-west-1:1:container-instance/x"
    )
    assert error.retryable is True
    missing = ecs._run_failure([{"reason": "MISSING", "detail": "cluster"}], "prod")
    assert missing.retryable is False


def test_the_timeout_stops_the_task_in_ecs(moto: Moto, ecs_cluster: str) -> None:
    running = Running(job(moto, ecs_cluster, timeout="300ms"))
    task = moto.started_task(ecs_cluster)

    error = running.result()
    assert error is not None
    assert (error.status, error.retryable) == ("timeout", True)
    assert error.message == f"ecs: task {task.id} was stopped: timeout after 300ms"
    assert (task.last_status, task.desired_status) == ("STOPPED", "STOPPED")
    assert task.stopped_reason == "dkronweb: timeout after 300ms"
    assert f"ecs: stopping task {task.id} (dkronweb: timeout after 300ms)\n" in running.output


def test_the_agents_default_timeout_bounds_a_job_without_one(moto: Moto, ecs_cluster: str) -> None:
    running = Running(job(moto, ecs_cluster), default_timeout=0.3)
    task = moto.started_task(ecs_cluster)
    error = running.result()
    assert error is not None
    assert error.status == "timeout"
    assert task.last_status == "STOPPED"


def test_a_kill_stops_the_task_in_ecs_and_is_not_retried(moto: Moto, ecs_cluster: str) -> None:
    cancel = CancelToken()
    running = Running(job(moto, ecs_cluster), cancel=cancel)
    task = moto.started_task(ecs_cluster)
    cancel.cancel("killed")

    error = running.result()
    assert error is not None
    assert (error.status, error.retryable) == ("killed", False)
    assert error.message == f"ecs: task {task.id} was stopped: the job was killed"
    assert task.last_status == "STOPPED"
    assert task.stopped_reason == "dkronweb: the job was killed"


def test_the_agents_time_limit_stops_the_task_with_status_timeout(
    moto: Moto, ecs_cluster: str
) -> None:
    cancel = CancelToken()
    running = Running(job(moto, ecs_cluster), cancel=cancel)
    task = moto.started_task(ecs_cluster)
    cancel.cancel("timeout")

    error = running.result()
    assert error is not None
    assert error.status == "timeout"
    assert "the run exceeded its time limit" in error.message
    assert task.last_status == "STOPPED"


def test_a_kill_before_the_task_started_starts_nothing(moto: Moto, ecs_cluster: str) -> None:
    cancel = CancelToken()
    cancel.cancel("killed")
    error, _ = run(job(moto, ecs_cluster), cancel=cancel)
    assert error is not None
    assert error.status == "killed"
    assert moto.tasks(ecs_cluster) == []


def test_the_task_log_stream_becomes_the_output(moto: Moto, ecs_cluster: str) -> None:
    running = Running(job(moto, ecs_cluster, logGroup=LOG_GROUP))
    task = moto.started_task(ecs_cluster)
    stream = f"{STREAM_PREFIX}/{CONTAINER}/{task.id}"
    moto.put_logs(stream, "report started")
    wait_for(lambda: "report started" in running.output, timeout=5, what="live log output")
    moto.put_logs(stream, "42 rows written", "done\n")
    moto.finish(task, 0)

    assert running.result() is None
    assert running.output == (
        f"ecs: started task {task.id} ({moto.taskdef}) on cluster {ecs_cluster}\n"
        "report started\n42 rows written\ndone\n"
        f"ecs: task {task.id} stopped; container {CONTAINER} exited with 0\n"
    )


def test_logs_are_found_by_task_id_when_the_container_has_no_stream_prefix(
    moto: Moto, ecs_cluster: str
) -> None:
    family = f"plain-{uuid.uuid4().hex[:8]}"
    body = task_definition(family)
    del body["containerDefinitions"][0]["logConfiguration"]
    group = f"/custom/{family}"
    moto.logs.create_log_group(logGroupName=group)
    config = job(moto, ecs_cluster, taskdefBody=json.dumps(body), logGroup=group)
    del config["taskdefName"]
    running = Running(config)
    task = moto.started_task(ecs_cluster)
    moto.put_logs(f"sidecar-router/{task.id}", "shipped by a log router", group=group)
    moto.finish(task, 1)

    error = running.result()
    assert error is not None
    assert "shipped by a log router\n" in running.output
    assert error.message.startswith(f"ecs: container {CONTAINER} exited with 1")


def test_a_missing_log_stream_is_noted_but_does_not_fail_the_run(
    moto: Moto, ecs_cluster: str
) -> None:
    running = Running(job(moto, ecs_cluster, logGroup=LOG_GROUP))
    task = moto.started_task(ecs_cluster)
    moto.finish(task, 0)

    assert running.result() is None
    assert (
        f"ecs: no log events found in log group {LOG_GROUP} "
        f"(stream {STREAM_PREFIX}/{CONTAINER}/{task.id})\n"
    ) in running.output


def test_a_closed_port_fails_saying_it_cannot_connect(moto: Moto, ecs_cluster: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends
    error, _ = run(job(moto, ecs_cluster, endpointUrl=f"http://127.0.0.1:{port}"))
    assert error is not None
    assert error.message.startswith(
        f"ecs: cannot connect to http://127.0.0.1:{port} while describing task definition"
    )
    assert error.retryable is True


def test_no_credentials_fails_without_retry(
    moto: Moto, ecs_cluster: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for key in (
        *CREDENTIALS,
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    error, _ = run(job(moto, ecs_cluster))
    assert error is not None
    assert error.message.startswith("ecs: no AWS credentials on this agent")
    assert error.retryable is False
    assert moto.tasks(ecs_cluster) == []


def test_refused_credentials_fail_without_retry_and_never_show_the_secret(
    moto: Moto, ecs_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto checks credentials against its IAM once INITIAL_NO_AUTH_ACTION_COUNT requests have
    # been made; 0 turns the check on. Our dummy key is unknown to its IAM, as to AWS's.
    from moto import settings as moto_settings

    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    error, output = run(job(moto, ecs_cluster))
    assert error is not None
    assert error.message == (
        f"ecs: AWS refused the credentials while describing task definition '{FAMILY}': "
        "InvalidClientTokenId: The security token included in the request is invalid."
    )
    assert error.retryable is False
    secret = CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    assert secret not in error.message and secret not in output


def test_no_region_fails_without_retry(
    moto: Moto, ecs_cluster: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    error, _ = run(job(moto, ecs_cluster, region=""))
    assert error is not None
    assert error.message == (
        "ecs: no AWS region: set the job's region key or AWS_REGION on the agent"
    )
    assert error.retryable is False


def test_the_executor_is_registered_runs_code_and_masks_only_env_values() -> None:
    executor = get_executor("ecs")
    assert isinstance(executor, EcsExecutor)
    assert executor.runs_code is True
    config = {"taskdefName": "x", "env": "TOKEN=abc"}
    # AWS credentials never live in the job; env values are write-only (confidential).
    assert mask_secrets("ecs", config) == {"taskdefName": "x", "env": "TOKEN=********"}


def test_config_accepts_dkrons_documented_examples() -> None:
    # Dkron Pro's two documented jobs; the second needs a subnet here (FARGATE cannot run
    # without one, which Dkron only finds out at run time).
    first = EcsExecutor().validate(
        {
            "taskdefName": "mytaskdef-family",
            "region": "eu-west-1",
            "cluster": "default",
            "env": "ENVIRONMENT=variable",
            "service": "mycontainer",
            "overrides": 'echo,"Hello from dkron"',
        }
    )
    assert first.overrides == ["echo", "Hello from dkron"]
    assert first.env == {"ENVIRONMENT": "variable"}
    assert first.effective_launch_type == ""
    assert EcsExecutor().timeout_seconds(first) == 12000 + ecs.STOP_GRACE

    second = EcsExecutor().validate(
        {
            "taskdefBody": '{"containerDefinitions": [{"essential": true,"image": '
            '"hello-world","memory": 100,"name": "hello-world"}],"family": "helloworld"}',
            "region": "eu-west-1",
            "cluster": "default",
            "fargate": "yes",
            "env": "ENVIRONMENT=variable",
            "maxAttempts": "5000",
            "subnet": "subnet-0a1b, subnet-2c3d",
        }
    )
    assert second.taskdef_body is not None
    assert second.taskdef_body["family"] == "helloworld"
    assert (second.effective_launch_type, second.subnet) == (
        "FARGATE",
        ["subnet-0a1b", "subnet-2c3d"],
    )
    assert EcsExecutor().timeout_seconds(second) == 30000 + ecs.STOP_GRACE


def test_config_accepts_string_values_and_json_objects() -> None:
    config = EcsExecutor().validate(
        {
            "taskdefName": "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:12",
            "launchType": "fargate",
            "subnet": "subnet-1",
            "assignPublicIp": "true",
            "overrides": '[{"name": "web", "command": ["run"]}]',
            "timeout": "90s",
            "enableExecuteCommand": "true",
            "propagateTags": "task_definition",
            "endpointUrl": "http://localhost:4566",
            "logGroup": "/ecs/web",
        }
    )
    assert isinstance(config, EcsConfig)
    assert config.launch_type == "FARGATE"
    assert config.assign_public_ip == "ENABLED"
    assert config.overrides == {"containerOverrides": [{"name": "web", "command": ["run"]}]}
    assert config.enable_execute_command is True
    assert config.propagate_tags == "TASK_DEFINITION"
    assert EcsExecutor().timeout_seconds(config) == 90 + ecs.STOP_GRACE


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"taskdefName": ""}, "taskdefName", "set taskdefName"),
        ({"taskdefBody": '{"family": "f", "containerDefinitions": []}'}, "taskdefBody", "not both"),
        ({"taskdefName": "", "taskdefBody": "{nope"}, "taskdefBody", "not valid JSON"),
        ({"taskdefName": "", "taskdefBody": "[1]"}, "taskdefBody", "must be a JSON object"),
        (
            {
                "taskdefName": "",
                "taskdefBody": '{"family": "f", "containerDefinitions": [], "revision": 3}',
            },
            "taskdefBody",
            'Unknown parameter in input: "revision"',
        ),
        (
            {"taskdefName": "", "taskdefBody": '{"containerDefinitions": []}'},
            "taskdefBody",
            'Missing required parameter in input: "family"',
        ),
        ({"taskdefName": "bad name"}, "taskdefName", "family:revision"),
        ({"overrides": '{"cpu": 1}'}, "overrides", "Invalid type for parameter cpu"),
        ({"overrides": '{"commands": []}'}, "overrides", 'Unknown parameter in input: "commands"'),
        ({"overrides": "[oops"}, "overrides", "not valid JSON"),
        ({"env": "NOEQUALS"}, "env", "not of the form K=V"),
        ({"launchType": "LAMBDA"}, "launchType", "EC2, FARGATE, EXTERNAL"),
        ({"fargate": "maybe"}, "fargate", "invalid boolean"),
        ({"fargate": "true", "launchType": "EC2"}, "fargate", "conflicts with launchType EC2"),
        ({"fargate": "true"}, "subnet", "needs at least one subnet"),
        ({"subnet": "10.0.0.0/24"}, "subnet", "is not a subnet id"),
        ({"securityGroup": "sg-1"}, "securityGroup", "needs subnet"),
        ({"assignPublicIp": "sometimes"}, "assignPublicIp", "ENABLED, DISABLED"),
        ({"timeout": "10"}, "timeout", "missing unit"),
        ({"timeout": "0s"}, "timeout", "greater than zero"),
        ({"maxAttempts": "lots"}, "maxAttempts", "whole number"),
        ({"maxAttempts": "5", "timeout": "1m"}, "maxAttempts", "not both"),
        ({"region": "Europe"}, "region", "not an AWS region"),
        ({"endpointUrl": "localhost:4566"}, "endpointUrl", "http:// or https://"),
        ({"endpointUrl": "http://key:secret@host"}, "endpointUrl", "credentials"),
        ({"propagateTags": "ALL"}, "propagateTags", "TASK_DEFINITION, SERVICE, NONE"),
        ({"logGroup": "bad group!"}, "logGroup", "not a log group name"),
        ({"cluster": "a b"}, "cluster", "not a cluster name"),
        (
            {
                "taskdefName": "",
                "taskdefBody": '{"family": "f", "containerDefinitions": [{"name": "a"}]}',
                "service": "b",
            },
            "service",
            "no container named 'b' in taskdefBody (containers: a)",
        ),
        ({"taskDefName": "x"}, "taskDefName", "unknown key"),
    ],
)
def test_config_rejects_bad_values_naming_the_key(
    raw: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        EcsExecutor().validate({"taskdefName": "web", **raw})
    assert key in info.value.errors, info.value.errors
    assert message in info.value.errors[key]


def test_a_user_without_ecs_rights_is_denied_without_retry(
    moto: Moto, ecs_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import settings as moto_settings

    iam = boto3.client("iam", endpoint_url=moto.url, region_name=REGION)
    user = f"nobody-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)  # no policy attached: every action is denied
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)

    error, output = run(job(moto, ecs_cluster))
    assert error is not None
    assert error.message.startswith(
        f"ecs: access denied while describing task definition '{FAMILY}': AccessDenied"
    )
    assert error.retryable is False
    assert key["SecretAccessKey"] not in error.message + output


def test_losing_the_endpoint_while_the_task_runs_fails_saying_it_may_still_run(
    moto: Moto, ecs_cluster: str
) -> None:
    # A second moto server on the same in-process backend, stopped mid-run: the endpoint the
    # executor polls goes away while its task stays RUNNING in ECS.
    from moto.server import ThreadedMotoServer

    doomed = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    doomed.start()
    host, port = doomed.get_host_and_port()
    running = Running(job(moto, ecs_cluster, endpointUrl=f"http://{host}:{port}"))
    task = moto.started_task(ecs_cluster)
    doomed.stop()

    error = running.result()
    assert error is not None
    assert error.message.startswith(f"ecs: cannot connect to http://{host}:{port} while polling")
    assert error.message.endswith("; the task may still be running")
    assert error.retryable is True
    assert task.last_status == "RUNNING"
