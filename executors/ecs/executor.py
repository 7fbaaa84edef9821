"""The `ecs` executor class: its config schema, secrets and the run (executors.ecs.run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import confidential
from executors.base import ExecutionContext, Executor, check_outbound
from executors.ecs import run
from executors.ecs.config import DEFAULT_TIMEOUT, EcsConfig, cross_check

__all__ = ["EcsExecutor"]


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

    def check_config(self, config: EcsConfig) -> dict[str, str]:
        return cross_check(config)

    def timeout_seconds(self, config: Any) -> float | None:
        limit = config.limit if isinstance(config, EcsConfig) else DEFAULT_TIMEOUT
        return limit.total_seconds() + run.STOP_GRACE

    def execute(self, ctx: ExecutionContext) -> None:
        config: EcsConfig = self.config_of(ctx)
        if config.endpoint_url:  # boto3 resolves and connects by itself: checked right before
            parts = urlsplit(config.endpoint_url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            check_outbound(ctx, "ecs", [(parts.hostname or "", port)])
        run.EcsRun(config, ctx).run()
