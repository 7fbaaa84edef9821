"""The ecs executor's config: Dkron Pro's ECS keys, checked at save time against the real API.

`taskdefBody` and JSON `overrides` are checked with botocore's own ECS service model, so a job
that ECS would refuse is refused when it is saved, not at its first run.
"""

from __future__ import annotations

import csv
import functools
import json
import re
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator

from executors.base import ExecutorConfig
from executors.values import EnvMap, GoBool, GoTimeout, config_error, is_blank, matching

__all__ = ["DEFAULT_TIMEOUT", "DKRON_POLL_SECONDS", "EcsConfig", "cross_check"]

DKRON_POLL_SECONDS = 6  # Dkron's interval: `maxAttempts` counts polls of this length
DKRON_MAX_ATTEMPTS = 2000  # Dkron's default, so the default limit is Dkron's 3h20m
DEFAULT_TIMEOUT = timedelta(seconds=DKRON_POLL_SECONDS * DKRON_MAX_ATTEMPTS)

_CLUSTER = re.compile(r"(arn:[\w-]+:ecs:[\w-]+:\d{12}:cluster/)?[A-Za-z0-9_-]{1,255}")
_TASKDEF = re.compile(
    r"(arn:[\w-]+:ecs:[\w-]+:\d{12}:task-definition/)?[A-Za-z0-9_-]{1,255}(:\d+)?"
)
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-\d+")
_CONTAINER = re.compile(r"[A-Za-z0-9_-]{1,255}")
_LOG_GROUP = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")
_SUBNET = re.compile(r"subnet-[0-9A-Za-z]+")
_SECURITY_GROUP = re.compile(r"sg-[0-9A-Za-z]+")

_TASKDEF_HINT = "taskdefName {value!r} must be family, family:revision or a task definition ARN"
_REGION_HINT = "region {value!r} is not an AWS region such as eu-west-1"


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
    if is_blank(value):
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
    if is_blank(value):
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
        if is_blank(value):
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
    if is_blank(value):
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise config_error(
            "max_attempts", f"maxAttempts {value!r} must be a whole number of polls, e.g. 2000"
        )
    return int(text)


class EcsConfig(ExecutorConfig):
    """Dkron Pro's ECS keys (camelCase as in Dkron), plus a few dkronweb additions."""

    cluster: Annotated[
        str, matching(_CLUSTER, "cluster {value!r} is not a cluster name or ARN")
    ] = Field("", description="Cluster name or ARN (default: ECS's `default`).")
    taskdef_name: Annotated[str, matching(_TASKDEF, _TASKDEF_HINT)] = Field(
        "", alias="taskdefName", description="Existing task definition: family[:revision] or ARN."
    )
    taskdef_body: Annotated[dict[str, Any] | None, BeforeValidator(_parse_taskdef_body)] = Field(
        None, alias="taskdefBody", description="JSON task definition registered before the run."
    )
    region: Annotated[str, matching(_REGION, _REGION_HINT)] = Field(
        "", description="AWS region (default: boto3's, e.g. AWS_REGION)."
    )
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
    env: EnvMap = Field(
        default_factory=dict, description='Environment for the main container, "K=V,K2=V2".'
    )
    service: Annotated[str, matching(_CONTAINER, "service {value!r} is not a container name")] = (
        Field("", description="Container to override and judge (default: essential).")
    )
    log_group: Annotated[
        str, matching(_LOG_GROUP, "logGroup {value!r} is not a log group name")
    ] = Field(
        "", alias="logGroup", description="CloudWatch log group whose task stream is the output."
    )
    timeout: GoTimeout = Field(None, description='Go duration, e.g. "30m".')
    max_attempts: Annotated[int | None, BeforeValidator(_parse_max_attempts)] = Field(
        None, alias="maxAttempts", description="Dkron's limit: polls of 6 s (timeout = n x 6s)."
    )
    enable_execute_command: GoBool = Field(
        False, alias="enableExecuteCommand", description="Allow ECS Exec into the task."
    )
    propagate_tags: Annotated[
        str, _choice("propagateTags", ("TASK_DEFINITION", "SERVICE", "NONE"))
    ] = Field("", alias="propagateTags", description="TASK_DEFINITION, SERVICE or NONE.")
    endpoint_url: str = Field(
        "", alias="endpointUrl", description="ECS and CloudWatch Logs endpoint (LocalStack, moto)."
    )

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


def cross_check(config: EcsConfig) -> dict[str, str]:
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
