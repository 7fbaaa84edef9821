"""The `echo` executor: writes `message` to the output `repeat` times; `fail` makes it fail.

A minimal, complete plugin: a config schema (validated when the job is saved, Dkron's string
values accepted), a secret key (masked in API responses), and `execute`.
"""

from __future__ import annotations

from pydantic import Field

from executors.base import ExecutionContext, Executor, ExecutorConfig, ExecutorError


class EchoConfig(ExecutorConfig):
    message: str = Field(min_length=1)
    repeat: int = Field(default=1, ge=1, le=1000)
    fail: bool = False
    api_token: str = Field(default="", alias="apiToken")


class EchoExecutor(Executor):
    name = "echo"
    description = "Writes a message to the output (an example plugin)"
    config_schema = EchoConfig
    secret_keys = frozenset({"apiToken"})

    def execute(self, ctx: ExecutionContext) -> None:
        config: EchoConfig = ctx.config
        for _ in range(config.repeat):
            if ctx.cancel.is_set():
                raise ExecutorError("echo: cancelled", retryable=False, status="killed")
            ctx.output.write(f"{config.message} (job {ctx.job_name})\n")
        if config.fail:
            raise ExecutorError("echo: failing as configured")
