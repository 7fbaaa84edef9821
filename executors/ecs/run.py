"""The `ecs` executor: run one AWS ECS task, as Dkron Pro's ECS plugin, and judge its exit code.

A run registers `taskdefBody` (or looks up `taskdefName`), starts one task with the job's
overrides, polls it until ECS reports it STOPPED while copying its CloudWatch log stream into the
output, and succeeds when the essential container (or the one `service` names) exited with 0.
A timeout or kill stops the task in ECS, so no task outlives its execution. boto3's normal
credential chain applies; `endpointUrl` points it at LocalStack, moto or a private endpoint.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import functools
import json
import re
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator

import confidential
from executors.base import (
    ConfigError,
    ExecutionContext,
    Executor,
    ExecutorConfig,
    ExecutorError,
    check_outbound,
)
from executors.output import OutputSink
from executors.values import GoBool, OptionalGoDuration, config_error, format_go_duration

__all__ = ["EcsConfig", "EcsExecutor"]

POLL_INTERVAL = 2.0  # seconds between DescribeTasks calls; tests shorten it
DKRON_POLL_SECONDS = 6  # Dkron's interval: `maxAttempts` counts polls of this length
DKRON_MAX_ATTEMPTS = 2000  # Dkron's default, so the default limit is Dkron's 3h20m
DEFAULT_TIMEOUT = timedelta(seconds=DKRON_POLL_SECONDS * DKRON_MAX_ATTEMPTS)
# Added to the run's limit for Celery's soft limit, so the executor's own deadline (which stops
# the task and collects its logs) comes first.
STOP_GRACE = 30.0
MAX_POLL_ERRORS = 5  # consecutive failed polls before the run gives up on a running task
BOTO_MAX_ATTEMPTS = 3  # botocore's own retries per call (standard mode); tests lower it
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
LOG_PAGES_PER_POLL = 50  # bound on GetLogEvents pages read between two polls

_CLUSTER = re.compile(r"(arn:[\w-]+:ecs:[\w-]+:\d{12}:cluster/)?[A-Za-z0-9_-]{1,255}")
_TASKDEF = re.compile(
    r"(arn:[\w-]+:ecs:[\w-]+:\d{12}:task-definition/)?[A-Za-z0-9_-]{1,255}(:\d+)?"
)
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-\d+")
_CONTAINER = re.compile(r"[A-Za-z0-9_-]{1,255}")
_LOG_GROUP = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")
_SUBNET = re.compile(r"subnet-[0-9A-Za-z]+")
_SECURITY_GROUP = re.compile(r"sg-[0-9A-Za-z]+")
_STARTED_BY = re.compile(r"[^A-Za-z0-9_-]")

# Error codes meaning the credentials themselves were refused (a retry cannot help).
_AUTH_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
        "ExpiredToken",
        "IncompleteSignature",
        "AuthFailure",
        "MissingAuthenticationToken",
    }
)
_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
    }
)


# --- config ---------------------------------------------------------------------------------


@functools.cache
def _ecs_model() -> Any:
    """botocore's ECS service model, to check JSON values against the real API at save time."""
    import botocore.session

    return botocore.session.get_session().get_service_model("ecs")


def _api_errors(value: dict[str, Any], shape: Any) -> str:
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(value, shape)
    return "; ".join(report.generate_report().splitlines()) if report.has_errors() else ""


def _json(key: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise config_error("json", f"{key} is not valid JSON: {exc}") from None


def _parse_taskdef_body(value: Any) -> Any:
    """A JSON RegisterTaskDefinition request (a string, as Dkron stores it, or an object)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        value = _json("taskdefBody", value)
    if not isinstance(value, dict):
        raise config_error(
            "taskdef_body",
            'taskdefBody must be a JSON object such as {"family": ..., '
            '"containerDefinitions": [...]}',
        )
    shape = _ecs_model().operation_model("RegisterTaskDefinition").input_shape
    problems = _api_errors(value, shape)
    if problems:
        raise config_error(
            "taskdef_body", f"taskdefBody is not a valid task definition: {problems}"
        )
    return value


def _parse_overrides(value: Any) -> Any:
    """Dkron's comma-separated command (CSV quoting, so `echo,"a, b"` is two words), or JSON:
    an array of strings is a command, an array of objects is `containerOverrides`, and an
    object is the whole RunTask `overrides` (`containerOverrides`, `cpu`, `taskRoleArn`, ...)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text[0] in "[{":
            value = _json("overrides", text)
        else:
            try:
                return next(csv.reader([text], strict=True))
            except csv.Error as exc:
                raise config_error(
                    "overrides", f"overrides is not a comma-separated command: {exc}"
                ) from None
    if isinstance(value, list) and all(isinstance(item, str) for item in value) and value:
        return value
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        value = {"containerOverrides": value}
    if not isinstance(value, dict):
        raise config_error(
            "overrides",
            'overrides must be a command ("echo,hello"), a JSON array, or a JSON object of '
            "RunTask overrides",
        )
    shape = _ecs_model().operation_model("RunTask").input_shape.members["overrides"]
    problems = _api_errors(value, shape)
    if problems:
        raise config_error("overrides", f"overrides are not valid ECS task overrides: {problems}")
    return value


def _parse_env(value: Any) -> Any:
    """Dkron's `K=V,K2=V2` (split on commas, so values cannot hold one); a JSON object too."""
    if value is None:
        return {}
    if isinstance(value, dict):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise config_error("env", "env object values must be strings")
        return value
    if not isinstance(value, str):
        raise config_error("env", 'env must be a string such as "K=V,K2=V2"')
    pairs: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise config_error("env", f'env entry {item!r} is not of the form K=V ("K=V,K2=V2")')
        pairs[key] = val
    return pairs


def _comma_list(pattern: re.Pattern[str], what: str, example: str) -> Any:
    def parse(value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise config_error("list", f'expected a comma list of {what}s such as "{example}"')
        items = [v.strip() for v in value if v.strip()]
        for item in items:
            if not pattern.fullmatch(item):
                raise config_error("list", f"{item!r} is not a {what} (e.g. {example})")
        return items

    return BeforeValidator(parse)


def _choice(key: str, choices: tuple[str, ...]) -> Any:
    def parse(value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return ""
        if isinstance(value, str) and value.strip().upper() in choices:
            return value.strip().upper()
        raise config_error("choice", f"{key} {value!r} must be one of {', '.join(choices)}")

    return BeforeValidator(parse)


def _parse_fargate(value: Any) -> Any:
    # Dkron's own documentation writes "fargate": "yes", so yes/no are accepted with Go's forms.
    if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
        return value.strip().lower() == "yes"
    return value


_assign_public_ip_choice = _choice("assignPublicIp", ("ENABLED", "DISABLED")).func


def _parse_assign_public_ip(value: Any) -> Any:
    """ECS's ENABLED/DISABLED; Go's true/false are accepted too."""
    if isinstance(value, bool):
        return "ENABLED" if value else "DISABLED"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return "ENABLED" if value.strip().lower() == "true" else "DISABLED"
    return _assign_public_ip_choice(value)


def _parse_max_attempts(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise config_error(
            "max_attempts", f"maxAttempts {value!r} must be a whole number of polls, e.g. 2000"
        )
    return int(text)


class EcsConfig(ExecutorConfig):
    """Dkron Pro's ECS keys (camelCase as in Dkron), plus a few dkronweb additions."""

    cluster: str = Field("", description="Cluster name or ARN (default: ECS's `default`).")
    taskdef_name: str = Field(
        "", alias="taskdefName", description="Existing task definition: family[:revision] or ARN."
    )
    taskdef_body: Annotated[dict[str, Any] | None, BeforeValidator(_parse_taskdef_body)] = Field(
        None, alias="taskdefBody", description="JSON task definition registered before the run."
    )
    region: str = Field("", description="AWS region (default: boto3's, e.g. AWS_REGION).")
    launch_type: Annotated[str, _choice("launchType", ("EC2", "FARGATE", "EXTERNAL"))] = Field(
        "", alias="launchType", description="EC2, FARGATE or EXTERNAL (default: the cluster's)."
    )
    fargate: Annotated[GoBool, BeforeValidator(_parse_fargate)] = Field(
        False, description='"true" (or Dkron\'s "yes") means launchType FARGATE.'
    )
    subnet: Annotated[list[str], _comma_list(_SUBNET, "subnet id", "subnet-0a1b2c")] = Field(
        default_factory=list, description="Comma list of subnet ids (awsvpc networking)."
    )
    security_group: Annotated[
        list[str], _comma_list(_SECURITY_GROUP, "security group id", "sg-0a1b2c")
    ] = Field(default_factory=list, alias="securityGroup", description="Comma list of sg ids.")
    assign_public_ip: Annotated[str, BeforeValidator(_parse_assign_public_ip)] = Field(
        "", alias="assignPublicIp", description="ENABLED or DISABLED (awsvpc only)."
    )
    overrides: Annotated[dict[str, Any] | list[str] | None, BeforeValidator(_parse_overrides)] = (
        Field(None, description="Command (comma list) or JSON RunTask overrides.")
    )
    env: Annotated[dict[str, str], BeforeValidator(_parse_env)] = Field(
        default_factory=dict, description='Environment for the main container, "K=V,K2=V2".'
    )
    service: str = Field("", description="Container to override and judge (default: essential).")
    log_group: str = Field(
        "", alias="logGroup", description="CloudWatch log group whose task stream is the output."
    )
    timeout: OptionalGoDuration = Field(None, description='Go duration, e.g. "30m".')
    max_attempts: Annotated[int | None, BeforeValidator(_parse_max_attempts)] = Field(
        None, alias="maxAttempts", description="Dkron's limit: polls of 6 s (timeout = n x 6s)."
    )
    enable_execute_command: GoBool = Field(False, alias="enableExecuteCommand")
    propagate_tags: Annotated[
        str, _choice("propagateTags", ("TASK_DEFINITION", "SERVICE", "NONE"))
    ] = Field("", alias="propagateTags", description="TASK_DEFINITION, SERVICE or NONE.")
    endpoint_url: str = Field(
        "", alias="endpointUrl", description="ECS and CloudWatch Logs endpoint (LocalStack, moto)."
    )

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, value: str) -> str:
        value = value.strip()
        if value and not _CLUSTER.fullmatch(value):
            raise config_error("cluster", f"cluster {value!r} is not a cluster name or ARN")
        return value

    @field_validator("taskdef_name")
    @classmethod
    def _taskdef_name(cls, value: str) -> str:
        value = value.strip()
        if value and not _TASKDEF.fullmatch(value):
            raise config_error(
                "taskdef_name",
                f"taskdefName {value!r} must be family, family:revision or a task definition ARN",
            )
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        value = value.strip()
        if value and not _REGION.fullmatch(value):
            raise config_error("region", f"region {value!r} is not an AWS region such as eu-west-1")
        return value

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        value = value.strip()
        if value and not _CONTAINER.fullmatch(value):
            raise config_error("service", f"service {value!r} is not a container name")
        return value

    @field_validator("log_group")
    @classmethod
    def _log_group(cls, value: str) -> str:
        value = value.strip()
        if value and not _LOG_GROUP.fullmatch(value):
            raise config_error("log_group", f"logGroup {value!r} is not a log group name")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise config_error("positive", "timeout must be greater than zero")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise config_error(
                "endpoint_url", f"endpointUrl {value!r} must be an http:// or https:// URL"
            )
        if parts.username or parts.password:
            raise config_error("endpoint_url", "endpointUrl must not contain credentials")
        return value

    @property
    def effective_launch_type(self) -> str:
        return self.launch_type or ("FARGATE" if self.fargate else "")

    @property
    def limit(self) -> timedelta:
        """The run's own time limit: `timeout`, else Dkron's maxAttempts x 6 s."""
        if self.timeout is not None:
            return self.timeout
        if self.max_attempts is not None:
            return timedelta(seconds=self.max_attempts * DKRON_POLL_SECONDS)
        return DEFAULT_TIMEOUT


def _cross_check(config: EcsConfig) -> dict[str, str]:
    """Rules spanning several keys; each error is filed under the key to change."""
    errors: dict[str, str] = {}
    if not config.taskdef_name and config.taskdef_body is None:
        errors["taskdefName"] = (
            "set taskdefName (an existing task definition) or taskdefBody (one to register)"
        )
    elif config.taskdef_name and config.taskdef_body is not None:
        errors["taskdefBody"] = "set taskdefName or taskdefBody, not both"
    if config.fargate and config.launch_type not in ("", "FARGATE"):
        errors["fargate"] = f"fargate conflicts with launchType {config.launch_type}"
    if not config.subnet:
        if config.effective_launch_type == "FARGATE":
            errors["subnet"] = "launch type FARGATE needs at least one subnet (awsvpc networking)"
        if config.security_group:
            errors["securityGroup"] = "securityGroup needs subnet as well (awsvpc networking)"
        if config.assign_public_ip:
            errors["assignPublicIp"] = "assignPublicIp needs subnet as well (awsvpc networking)"
    if config.timeout is not None and config.max_attempts is not None:
        errors["maxAttempts"] = "set timeout or maxAttempts, not both"
    if config.taskdef_body is not None and config.service:
        names = [c.get("name") for c in config.taskdef_body.get("containerDefinitions", [])]
        if config.service not in names:
            errors["service"] = (
                f"no container named {config.service!r} in taskdefBody "
                f"(containers: {', '.join(str(n) for n in names)})"
            )
    return errors


# --- executor -------------------------------------------------------------------------------


class EcsExecutor(Executor):
    name = "ecs"
    description = "Run an AWS ECS task; success is its essential container exiting with 0."
    config_schema = EcsConfig
    # A taskdefBody (or a command override) runs arbitrary code on the AWS account.
    runs_code = True
    # Credentials come from boto3's chain on the agent, never from the job.
    secret_keys: ClassVar[frozenset[str]] = frozenset()
    secret_entries: ClassVar[Mapping[str, str]] = {"env": confidential.ENV}
    # Where the environment is sent (the API endpoint, region, cluster) and the code that
    # receives it (task definition, container, command overrides, ECS Exec access).
    destination_keys: ClassVar[frozenset[str]] = frozenset(
        {"endpointUrl", "region", "cluster", "taskdefName", "taskdefBody", "overrides",
         "service", "enableExecuteCommand"}
    )  # fmt: skip

    def validate(self, raw: dict[str, Any]) -> EcsConfig:
        config = super().validate(raw)
        assert isinstance(config, EcsConfig)
        errors = _cross_check(config)
        if errors:
            raise ConfigError(errors)
        return config

    def timeout_seconds(self, config: Any) -> float | None:
        limit = config.limit if isinstance(config, EcsConfig) else DEFAULT_TIMEOUT
        return limit.total_seconds() + STOP_GRACE

    def execute(self, ctx: ExecutionContext) -> None:
        config = ctx.config
        if not isinstance(config, EcsConfig):
            try:
                config = self.validate(config)
            except ConfigError as exc:
                raise ExecutorError(f"invalid ecs config: {exc}", retryable=False) from None
        if config.endpoint_url:  # boto3 resolves and connects by itself: checked right before
            parts = urlsplit(config.endpoint_url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            check_outbound(ctx, "ecs", [(parts.hostname or "", port)])
        _Run(config, ctx).run()


class _Run:
    """One task from start to STOPPED: the clients, the deadline and what is known so far."""

    def __init__(self, config: EcsConfig, ctx: ExecutionContext) -> None:
        self.config = config
        self.ctx = ctx
        self.out: OutputSink = ctx.output
        self.limit = config.limit
        if ctx.default_timeout and ctx.default_timeout < self.limit.total_seconds():
            self.limit = timedelta(seconds=ctx.default_timeout)
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
        overrides = self._overrides(main, checked, label)
        if self.ctx.cancel.is_set():
            raise self._cancelled_before_start()
        task = self._start(ecs, taskdef["taskDefinitionArn"], overrides)
        self.task_arn = task["taskArn"]
        task_id = self.task_arn.rsplit("/", 1)[-1]
        self.out.write(f"ecs: started task {task_id} ({label}) on cluster {self.cluster}\n")
        tail = None
        if self.config.log_group:
            tail = _LogTail(logs, self.config.log_group, definitions[main], task_id, self.out)
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
            code = _code(exc)
            if code in ("ClientException", "InvalidParameterException"):
                raise ExecutorError(
                    f"ecs: task definition {name!r} not found ({_message(exc)})", retryable=False
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

    def _overrides(self, main: str, checked: list[str], label: str) -> dict[str, Any]:
        """The configured overrides plus the command and env for the main container."""
        config = self.config
        overrides = copy.deepcopy(config.overrides) if isinstance(config.overrides, dict) else {}
        command = config.overrides if isinstance(config.overrides, list) else None
        if command is None and not config.env:
            return overrides
        if len(checked) > 1:
            raise ExecutorError(
                f"ecs: task definition {label} has several essential containers "
                f"({', '.join(checked)}); set service to say which one gets "
                f"{'env' if config.env else 'the command'}",
                retryable=False,
            )
        entries = overrides.setdefault("containerOverrides", [])
        entry = next((e for e in entries if e.get("name") == main), None)
        if entry is None:
            entry = {"name": main}
            entries.append(entry)
        if command is not None:
            entry["command"] = list(command)
        if config.env:
            kept = [e for e in entry.get("environment", []) if e.get("name") not in config.env]
            entry["environment"] = kept + [{"name": k, "value": v} for k, v in config.env.items()]
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
            if _code(exc) == "ClusterNotFoundException":
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
    def _wait(self, ecs: Any, tail: _LogTail | None) -> dict[str, Any]:
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
    def _stop_for_cancel(self, ecs: Any, tail: _LogTail | None) -> ExecutorError:
        if self.ctx.cancel.reason == "timeout":
            return self._stop_for_timeout(ecs, tail, own=False)
        note = self._stop(ecs, tail, "dkronweb: the job was killed")
        return ExecutorError(
            f"ecs: task {self._task_id()} was stopped: the job was killed{note}",
            retryable=False,
            status="killed",
        )

    def _stop_for_timeout(self, ecs: Any, tail: _LogTail | None, *, own: bool) -> ExecutorError:
        why = (
            f"timeout after {format_go_duration(self.limit)}"
            if own
            else "the run exceeded its time limit"
        )
        note = self._stop(ecs, tail, f"dkronweb: {why}")
        return ExecutorError(
            f"ecs: task {self._task_id()} was stopped: {why}{note}", status="timeout"
        )

    def _stop(self, ecs: Any, tail: _LogTail | None, reason: str) -> str:
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
        return _aws_error(exc, doing, self.where)


def _plural(names: str, checked: list[str]) -> str:
    return f"container {names}" if len(checked) == 1 else f"containers {names}"


_XML_CODE = re.compile(r"<Code>([^<]*)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


def _error_field(exc: BaseException, field: str, xml: re.Pattern[str]) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    error = response.get("Error", {})
    value = str(error.get(field, ""))
    # A proxy or emulator may answer a JSON API with an XML error document (moto does so for
    # refused credentials); the real code and message are inside it.
    found = xml.search(str(error.get("Message", "")))
    return found.group(1) if found else value


def _code(exc: BaseException) -> str:
    return _error_field(exc, "Code", _XML_CODE)


def _message(exc: BaseException) -> str:
    return _error_field(exc, "Message", _XML_MESSAGE) or str(exc)


def _aws_error(exc: BaseException, doing: str, where: str) -> ExecutorError:
    """One clear message per way an AWS call fails; credentials problems are not retried."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ExecutorError(
            f"ecs: no AWS credentials on this agent ({exc}); provide them the way boto3 looks "
            "for them: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance or "
            "task role",
            retryable=False,
        )
    if isinstance(exc, NoRegionError):
        return ExecutorError(
            "ecs: no AWS region: set the job's region key or AWS_REGION on the agent",
            retryable=False,
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
        return ExecutorError(f"ecs: cannot connect to {where} while {doing}: {exc}")
    if isinstance(exc, ReadTimeoutError):
        return ExecutorError(f"ecs: {where} did not answer in time while {doing}")
    if isinstance(exc, ClientError):
        code, message = _code(exc), _message(exc)
        if code in _AUTH_CODES:
            return ExecutorError(
                f"ecs: AWS refused the credentials while {doing}: {code}: {message}",
                retryable=False,
            )
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _DENIED_CODES or status in (401, 403):
            return ExecutorError(
                f"ecs: access denied while {doing}: {code}: {message}", retryable=False
            )
        transient = code in _TRANSIENT_CODES or status >= 500
        return ExecutorError(f"ecs: {doing} failed: {code}: {message}", retryable=transient)
    return ExecutorError(f"ecs: {doing} failed: {exc}")


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


class _LogTail:
    """Copies one CloudWatch log stream into the output as it grows (GetLogEvents, forward).

    The stream is `<awslogs-stream-prefix>/<container>/<task id>` when the container logs
    through awslogs with a prefix; otherwise the newest streams of the group are searched for
    one ending in the task id. A stream that does not exist yet is looked for again at the
    next poll. Reading logs never fails the run: a problem is noted once in the output.
    """

    def __init__(
        self, client: Any, group: str, container: dict[str, Any], task_id: str, out: OutputSink
    ) -> None:
        self.client = client
        self.group = group
        self.task_id = task_id
        self.out = out
        self.stream: str | None = None
        options = (container.get("logConfiguration") or {}).get("options") or {}
        driver = (container.get("logConfiguration") or {}).get("logDriver")
        prefix = options.get("awslogs-stream-prefix")
        if driver == "awslogs" and prefix:
            self.stream = f"{prefix}/{container['name']}/{task_id}"
        self.token: str | None = None
        self.seen_any = False
        self.broken = False

    def poll(self) -> None:
        if self.broken:
            return
        try:
            if self.stream is None:
                self.stream = self._search()
                if self.stream is None:
                    return
            for _ in range(LOG_PAGES_PER_POLL):
                kwargs: dict[str, Any] = {
                    "logGroupName": self.group,
                    "logStreamName": self.stream,
                    "startFromHead": True,
                }
                if self.token:
                    kwargs["nextToken"] = self.token
                response = self.client.get_log_events(**kwargs)
                for event in response.get("events") or []:
                    message = str(event.get("message", ""))
                    self.out.write(message if message.endswith("\n") else message + "\n")
                    self.seen_any = True
                token = response.get("nextForwardToken")
                if not token or token == self.token:
                    return
                self.token = token
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":
                return  # the stream (or group) appears when the container first logs
            self.broken = True
            self.out.write(f"ecs: cannot read logs from log group {self.group}: {_message(exc)}\n")

    def drain(self) -> None:
        """Read what is left after the task stopped; say so when no stream was found."""
        self.poll()
        if not self.broken and not self.seen_any:
            where = f"stream {self.stream}" if self.stream else f"a stream for task {self.task_id}"
            self.out.write(f"ecs: no log events found in log group {self.group} ({where})\n")

    def _search(self) -> str | None:
        response = self.client.describe_log_streams(
            logGroupName=self.group, orderBy="LastEventTime", descending=True, limit=50
        )
        for stream in response.get("logStreams") or []:
            name = str(stream.get("logStreamName", ""))
            if name == self.task_id or name.endswith("/" + self.task_id):
                return name
        return None
