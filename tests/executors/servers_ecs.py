"""moto in server mode for the ecs executor tests, and the helpers that play ECS's part.

moto answers the real ECS, EC2 and CloudWatch Logs APIs over HTTP, but its tasks run nothing:
no container starts and no exit code is ever produced. So a test plays the part of the
container: it waits until the executor's RunTask has created the task, then sets the task's
state in moto's backend (in this process, because `ThreadedMotoServer` serves from a thread
here) to STOPPED with the exit code the test wants. moto's own state machine, which would walk
every task to STOPPED with exit code 0 after a few DescribeTasks calls, is frozen for
`ecs::task` while the server runs, so a task stays RUNNING until a test ends it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import wait_for

ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-west-1"
FAMILY = "dkron-web"  # the session's task definition: one essential container "web"
CONTAINER = "web"
LOG_GROUP = "/dkron/ecs"
STREAM_PREFIX = "dkron"
# Dummy credentials: moto accepts any, and nothing may reach real AWS.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAMOTOTESTKEY00001",
    "AWS_SECRET_ACCESS_KEY": "moto-test-secret-key-never-printed",
}


class Moto:
    """A running moto server with the default VPC's subnet and security group at hand."""

    def __init__(self, url: str) -> None:
        import boto3

        self.url = url
        self.ecs = boto3.client("ecs", endpoint_url=url, region_name=REGION)
        self.logs = boto3.client("logs", endpoint_url=url, region_name=REGION)
        ec2 = boto3.client("ec2", endpoint_url=url, region_name=REGION)
        # moto needs a security group for FARGATE's awsvpc config; the default VPC has both.
        self.subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        self.security_group = ec2.describe_security_groups(GroupNames=["default"])[
            "SecurityGroups"
        ][0]["GroupId"]
        # moto's backends are per process, not per server: a second server in the same test
        # session sees the first one's definition, and registering again would add a revision.
        try:
            found = self.ecs.describe_task_definition(taskDefinition=FAMILY)["taskDefinition"]
        except self.ecs.exceptions.ClientException:
            found = self.ecs.register_task_definition(**task_definition(FAMILY))["taskDefinition"]
        self.taskdef = f"{FAMILY}:{found['revision']}"  # as the executor's output names it
        with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
            self.logs.create_log_group(logGroupName=LOG_GROUP)

    def backend(self) -> Any:
        from moto.backends import get_backend

        return get_backend("ecs")[ACCOUNT][REGION]

    def tasks(self, cluster: str) -> list[Any]:
        return list(self.backend().tasks.get(cluster, {}).values())

    def started_task(self, cluster: str, timeout: float = 10.0) -> Any:
        """The one task the executor started on `cluster` (waits for its RunTask)."""
        [task] = wait_for(lambda: self.tasks(cluster), timeout=timeout, what="RunTask")
        return task

    def finish(
        self,
        task: Any,
        exit_code: int | None,
        *,
        reason: str = "Essential container in task exited",
        container_reason: str | None = None,
    ) -> None:
        """Play the container: it exited with `exit_code` (None: it never ran) and ECS stopped
        the task. These are the fields DescribeTasks reports."""
        for container in task.containers:
            container.exitCode = exit_code
            container.last_status = "STOPPED"
            if container_reason is not None:
                container.reason = container_reason
        task.stopped_reason = reason
        task.stop_code = (
            "EssentialContainerExited" if exit_code is not None else "TaskFailedToStart"
        )
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"

    def put_logs(self, stream: str, *lines: str, group: str = LOG_GROUP) -> None:
        """What the awslogs driver would have written for the container."""
        with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
            self.logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)
        self.logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)],
        )


def task_definition(family: str, **extra: Any) -> dict[str, Any]:
    """A FARGATE task definition; moto insists on `memory` in container definitions."""
    return {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [
            {
                "name": CONTAINER,
                "image": "busybox",
                "memory": 128,
                "essential": True,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": LOG_GROUP,
                        "awslogs-region": REGION,
                        "awslogs-stream-prefix": STREAM_PREFIX,
                    },
                },
            }
        ],
        **extra,
    }


@contextlib.contextmanager
def moto_server() -> Iterator[Moto]:
    """Start moto on a free loopback port with dummy credentials in os.environ (which agent
    subprocesses inherit), and freeze moto's task state machine until the server stops."""
    from moto.moto_api import state_manager

    with pytest.MonkeyPatch.context() as env:
        for key, value in CREDENTIALS.items():
            env.setenv(key, value)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        state_manager.set_transition(
            model_name="ecs::task", transition={"progression": "manual", "times": 10**9}
        )
        server = _json_errors_server(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield Moto(f"http://{host}:{port}")
        finally:
            server.stop()
            state_manager.unset_transition("ecs::task")


def _xml_error(body: bytes) -> tuple[str, str]:
    """The first Code and Message of an XML error document, or ("", "")."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return "", ""
    found: dict[str, str] = {}
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]  # without a namespace
        if tag in ("Code", "Message") and tag not in found:
            found[tag] = (element.text or "").strip()
    return found.get("Code", ""), found.get("Message", "")


class _JsonErrors:
    """WSGI middleware: moto's credentials check answers every API with an XML error document,
    the JSON ones (ECS, CloudWatch Logs) too, where AWS answers those with a JSON error. This
    turns such an answer into AWS's JSON form, so botocore (and the executor) see the code and
    message as they come from AWS. Only the test emulator needs it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if "HTTP_X_AMZ_TARGET" not in environ:  # not a JSON-protocol API call
            return self.app(environ, start_response)
        answer: dict[str, Any] = {}
        chunks: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer.update(status=status, headers=headers)
            return chunks.append

        result = self.app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        body = b"".join(chunks)
        status, headers = answer["status"], answer["headers"]
        if int(status[:3]) >= 400 and body.lstrip().startswith(b"<"):
            code, message = _xml_error(body)
            if code:
                body = json.dumps({"__type": code, "message": message}).encode()
                headers = [
                    (k, v)
                    for k, v in headers
                    if k.lower() not in ("content-type", "content-length")
                ]
                headers += [
                    ("Content-Type", "application/x-amz-json-1.1"),
                    ("Content-Length", str(len(body))),
                ]
        start_response(status, headers)
        return [body]


def _json_errors_server(**kwargs: Any) -> Any:
    """A ThreadedMotoServer whose app is behind _JsonErrors (moto is imported only here)."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class JsonErrorsMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:  # ThreadedMotoServer's, with the middleware
            app = _JsonErrors(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return JsonErrorsMotoServer(**kwargs)
