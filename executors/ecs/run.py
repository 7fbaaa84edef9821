"""One ecs run from start to STOPPED: register or look up the task definition, RunTask, poll
DescribeTasks (tailing the logs), judge the exit codes; a kill or timeout stops the task."""

from __future__ import annotations

import contextlib
import copy
import re
import time
from datetime import timedelta
from typing import Any

from executors.base import ExecutionContext, ExecutorError
from executors.ecs.config import EcsConfig
from executors.ecs.errors import aws_error, error_code, error_message
from executors.ecs.logs import LogTail
from executors.output import OutputSink
from executors.values import format_go_duration

__all__ = ["STOP_GRACE", "EcsRun"]

POLL_INTERVAL = 2.0  # seconds between DescribeTasks calls; tests shorten it
# Added to the run's limit for Celery's soft limit, so the executor's own deadline (which stops
# the task and collects its logs) comes first.
STOP_GRACE = 30.0
MAX_POLL_ERRORS = 5  # consecutive failed polls before the run gives up on a running task
BOTO_MAX_ATTEMPTS = 3  # botocore's own retries per call (standard mode); tests lower it
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
_STARTED_BY = re.compile(r"[^A-Za-z0-9_-]")


class EcsRun:
    """One task from start to STOPPED: the clients, the deadline and what is known so far."""

    def __init__(self, config: EcsConfig, ctx: ExecutionContext) -> None:
        self.config = config
        self.ctx = ctx
        self.out: OutputSink = ctx.output
        self.limit = timedelta(seconds=ctx.limit(config.limit.total_seconds()))
        self.deadline = time.monotonic() + self.limit.total_seconds()
        self.cluster = config.cluster or "default"
        self.task_arn = ""
        self.where = config.endpoint_url or f"ECS in {config.region or 'the default region'}"

    # 1. Clients: boto3's credential chain; a missing region or credentials fail here or at
    #    the first call.
    def _clients(self) -> tuple[Any, Any]:
        import boto3
        from botocore.config import Config

        cfg = Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"total_max_attempts": BOTO_MAX_ATTEMPTS, "mode": "standard"},
            user_agent_extra="dkronweb-ecs",
        )
        try:
            session = boto3.session.Session(region_name=self.config.region or None)
            endpoint = self.config.endpoint_url or None
            ecs = session.client("ecs", endpoint_url=endpoint, config=cfg)
            logs = session.client("logs", endpoint_url=endpoint, config=cfg)
        except Exception as exc:
            raise self._aws_error(exc, "creating the AWS client") from None
        return ecs, logs

    def run(self) -> None:
        if self.ctx.cancel.is_set():
            raise self._cancelled_before_start()
        ecs, logs = self._clients()
        taskdef = self._task_definition(ecs)
        label = f"{taskdef['family']}:{taskdef['revision']}"
        definitions = {c["name"]: c for c in taskdef.get("containerDefinitions", [])}
        checked = self._checked_containers(definitions, label)
        main = checked[0]
        overrides = self._overrides(checked, label)
        if self.ctx.cancel.is_set():
            raise self._cancelled_before_start()
        task = self._start(ecs, taskdef["taskDefinitionArn"], overrides)
        self.task_arn = task["taskArn"]
        task_id = self.task_arn.rsplit("/", 1)[-1]
        self.out.write(f"ecs: started task {task_id} ({label}) on cluster {self.cluster}\n")
        tail = None
        if self.config.log_group:
            tail = LogTail(logs, self.config.log_group, definitions[main], task_id, self.out)
        try:
            task = self._wait(ecs, tail)
        except ExecutorError:
            raise
        except BaseException:
            # E.g. Celery's SoftTimeLimitExceeded raised into this thread: the task must not
            # outlive the execution.
            self._stop_quietly(ecs, "dkronweb: the run was interrupted")
            raise
        if tail is not None:
            tail.drain()
        self._judge(task, checked, task_id)

    def _task_definition(self, ecs: Any) -> dict[str, Any]:
        body = self.config.taskdef_body
        if body is not None:
            try:
                registered = ecs.register_task_definition(**body)["taskDefinition"]
            except Exception as exc:
                raise self._aws_error(exc, "registering taskdefBody") from None
            self.out.write(
                f"ecs: registered task definition {registered['family']}:{registered['revision']}\n"
            )
            return dict(registered)
        name = self.config.taskdef_name
        try:
            return dict(ecs.describe_task_definition(taskDefinition=name)["taskDefinition"])
        except Exception as exc:
            code = error_code(exc)
            if code in ("ClientException", "InvalidParameterException"):
                raise ExecutorError(
                    f"ecs: task definition {name!r} not found ({error_message(exc)})",
                    retryable=False,
                ) from None
            raise self._aws_error(exc, f"describing task definition {name!r}") from None

    def _checked_containers(self, definitions: dict[str, Any], label: str) -> list[str]:
        """The containers whose exit codes decide success; the first also gets the overrides."""
        if self.config.service:
            if self.config.service not in definitions:
                raise ExecutorError(
                    f"ecs: no container named {self.config.service!r} in task definition "
                    f"{label} (containers: {', '.join(definitions)})",
                    retryable=False,
                )
            return [self.config.service]
        essential = [n for n, c in definitions.items() if c.get("essential", True)]
        if not essential:  # ECS refuses such a definition; be safe anyway
            raise ExecutorError(
                f"ecs: task definition {label} has no essential container", retryable=False
            )
        return essential

    def _overrides(self, checked: list[str], label: str) -> dict[str, Any]:
        """The configured overrides, plus the command and env for the main container (the one
        judged: several need `service`) and the run's DKRON_* variables (the fire key among
        them) for every container judged."""
        config = self.config
        overrides = copy.deepcopy(config.overrides) if isinstance(config.overrides, dict) else {}
        command = config.overrides if isinstance(config.overrides, list) else None
        if (command is not None or config.env) and len(checked) > 1:
            raise ExecutorError(
                f"ecs: task definition {label} has several essential containers "
                f"({', '.join(checked)}); set service to say which one gets "
                f"{'env' if config.env else 'the command'}",
                retryable=False,
            )
        entries = overrides.setdefault("containerOverrides", [])
        for name in checked:
            entry = next((e for e in entries if e.get("name") == name), None)
            if entry is None:
                entry = {"name": name}
                entries.append(entry)
            if command is not None:
                entry["command"] = list(command)
            # The job's env wins over the overrides' own; the run's variables win over both,
            # as for shell and docker jobs (a job cannot fake which run it is).
            env = {**config.env, **self.ctx.run_env()}
            kept = [e for e in entry.get("environment", []) if e.get("name") not in env]
            entry["environment"] = kept + [{"name": k, "value": v} for k, v in env.items()]
        return overrides

    def _start(self, ecs: Any, taskdef_arn: str, overrides: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        started_by = _STARTED_BY.sub("-", self.ctx.job_name)[:36] or "dkronweb"
        kwargs: dict[str, Any] = {
            "cluster": self.cluster,
            "taskDefinition": taskdef_arn,
            "count": 1,
            "startedBy": started_by,
        }
        if config.effective_launch_type:
            kwargs["launchType"] = config.effective_launch_type
        if config.subnet:
            awsvpc: dict[str, Any] = {"subnets": config.subnet}
            if config.security_group:
                awsvpc["securityGroups"] = config.security_group
            if config.assign_public_ip:
                awsvpc["assignPublicIp"] = config.assign_public_ip
            kwargs["networkConfiguration"] = {"awsvpcConfiguration": awsvpc}
        if overrides:
            kwargs["overrides"] = overrides
        if config.enable_execute_command:
            kwargs["enableExecuteCommand"] = True
        if config.propagate_tags:
            kwargs["propagateTags"] = config.propagate_tags
        try:
            response = ecs.run_task(**kwargs)
        except Exception as exc:
            if error_code(exc) == "ClusterNotFoundException":
                raise ExecutorError(
                    f"ecs: cluster {self.cluster!r} not found in "
                    f"{config.region or 'the default region'}",
                    retryable=False,
                ) from None
            raise self._aws_error(exc, "starting the task") from None
        failures = response.get("failures") or []
        tasks = response.get("tasks") or []
        if failures or not tasks:
            raise _run_failure(failures, self.cluster)
        return dict(tasks[0])

    # 2. Wait for STOPPED, checking the kill signal and the deadline between polls.
    def _wait(self, ecs: Any, tail: LogTail | None) -> dict[str, Any]:
        errors = 0
        while True:
            if self.ctx.cancel.is_set():
                raise self._stop_for_cancel(ecs, tail)
            if time.monotonic() >= self.deadline:
                raise self._stop_for_timeout(ecs, tail, own=True)
            try:
                response = ecs.describe_tasks(cluster=self.cluster, tasks=[self.task_arn])
                errors = 0
            except Exception as exc:
                errors += 1
                failure = self._aws_error(exc, f"polling task {self.task_arn}")
                if not failure.retryable or errors >= MAX_POLL_ERRORS:
                    raise ExecutorError(
                        f"{failure.message}; the task may still be running",
                        retryable=failure.retryable,
                    ) from None
                response = None
            if response is not None:
                tasks = response.get("tasks") or []
                if not tasks:
                    reasons = ", ".join(
                        f.get("reason", "?") for f in response.get("failures") or []
                    )
                    raise ExecutorError(
                        f"ecs: task {self.task_arn} is no longer known to ECS "
                        f"({reasons or 'MISSING'})"
                    )
                task = tasks[0]
                if tail is not None:
                    tail.poll()
                if task.get("lastStatus") == "STOPPED":
                    return dict(task)
            remaining = self.deadline - time.monotonic()
            self.ctx.cancel.wait(max(0.0, min(POLL_INTERVAL, remaining)))

    def _judge(self, task: dict[str, Any], checked: list[str], task_id: str) -> None:
        containers = {c.get("name"): c for c in task.get("containers") or []}
        stopped = task.get("stoppedReason") or ""
        stop_code = task.get("stopCode") or ""
        why = ": ".join(p for p in (stop_code, stopped) if p)
        for name in checked:
            container = containers.get(name)
            code = None if container is None else container.get("exitCode")
            if code is None:
                reason = (container or {}).get("reason") or why or "no reason given"
                raise ExecutorError(
                    f"ecs: task {task_id} stopped without an exit code for container "
                    f"{name}: {reason}"
                )
            if code != 0:
                raise ExecutorError(
                    f"ecs: container {name} exited with {code}"
                    + (f" (task {task_id}: {why})" if why else f" (task {task_id})")
                )
        names = ", ".join(checked)
        self.out.write(f"ecs: task {task_id} stopped; {_plural(names, checked)} exited with 0\n")

    # 3. Stopping: a kill or a timeout stops the task in ECS before the run ends.
    def _stop_for_cancel(self, ecs: Any, tail: LogTail | None) -> ExecutorError:
        if self.ctx.cancel.reason == "timeout":
            return self._stop_for_timeout(ecs, tail, own=False)
        note = self._stop(ecs, tail, "dkronweb: the job was killed")
        return ExecutorError(
            f"ecs: task {self._task_id()} was stopped: the job was killed{note}",
            retryable=False,
            status="killed",
        )

    def _stop_for_timeout(self, ecs: Any, tail: LogTail | None, *, own: bool) -> ExecutorError:
        why = (
            f"timeout after {format_go_duration(self.limit)}"
            if own
            else "the run exceeded its time limit"
        )
        note = self._stop(ecs, tail, f"dkronweb: {why}")
        return ExecutorError(
            f"ecs: task {self._task_id()} was stopped: {why}{note}", status="timeout"
        )

    def _stop(self, ecs: Any, tail: LogTail | None, reason: str) -> str:
        """Stop the task; return "" or a note saying that stopping failed."""
        self.out.write(f"ecs: stopping task {self._task_id()} ({reason})\n")
        note = ""
        try:
            ecs.stop_task(cluster=self.cluster, task=self.task_arn, reason=reason[:255])
        except Exception as exc:
            failure = self._aws_error(exc, "stopping the task")
            note = f"; stopping it failed, so it may still be running: {failure.message}"
        if tail is not None:
            tail.drain()
        return note

    def _stop_quietly(self, ecs: Any, reason: str) -> None:
        if not self.task_arn:
            return
        with contextlib.suppress(Exception):  # best effort: another exception propagates
            ecs.stop_task(cluster=self.cluster, task=self.task_arn, reason=reason)

    def _task_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]

    def _cancelled_before_start(self) -> ExecutorError:
        if self.ctx.cancel.reason == "timeout":
            return ExecutorError("ecs: the run exceeded its time limit", status="timeout")
        return ExecutorError(
            "ecs: the job was killed before its task started", retryable=False, status="killed"
        )

    def _aws_error(self, exc: BaseException, doing: str) -> ExecutorError:
        return aws_error(exc, doing, self.where)


def _plural(names: str, checked: list[str]) -> str:
    return f"container {names}" if len(checked) == 1 else f"containers {names}"


def _run_failure(failures: list[dict[str, Any]], cluster: str) -> ExecutorError:
    """RunTask answered but started nothing: MISSING means a wrong cluster or definition (no
    retry); capacity reasons (RESOURCE:MEMORY, AGENT, ...) may clear up, so those retry."""
    if not failures:
        return ExecutorError(f"ecs: RunTask started no task on cluster {cluster!r}")
    parts = []
    for failure in failures:
        text = failure.get("reason") or "unknown reason"
        if failure.get("detail"):
            text += f" ({failure['detail']})"
        if failure.get("arn"):
            text += f" for {failure['arn']}"
        parts.append(text)
    missing = any((f.get("reason") or "").upper() in ("MISSING", "INACTIVE") for f in failures)
    return ExecutorError(
        f"ecs: ECS could not start the task on cluster {cluster!r}: {'; '.join(parts)}",
        retryable=not missing,
    )
