"""The `echo` executor: writes `message` to the output `repeat` times; `fail` makes it fail.

A minimal, complete plugin: a config schema (validated when the job is saved, Dkron's string
values accepted), a secret key (masked in API responses), and `execute`.
"""

from __future__ import annotations

from pydantic import Field

from executors.base import ExecutionContext, Executor, ExecutorConfig, ExecutorError


class EchoConfig(ExecutorConfig):
    # Each description is the key's help in the job form and its row in the docs table.
    message: str = Field(min_length=1, description="Text written to the output.")
    repeat: int = Field(default=1, ge=1, le=1000, description="How many times to write it.")
    fail: bool = Field(default=False, description="End the run failed (for trying retries).")
    api_token: str = Field(
        default="", alias="apiToken", description="Write-only; shows how a secret is declared."
    )


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
