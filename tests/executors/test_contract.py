"""The executor contract's shared work (executors.base): typed config, cross-key checks, limits."""

from __future__ import annotations

from typing import Any

import pytest

from executors import registry
from executors.base import ConfigError, ExecutionContext, Executor, ExecutorConfig, ExecutorError
from executors.output import OutputSink
from executors.values import GoBool


class PairConfig(ExecutorConfig):
    left: str = ""
    right: str = ""
    flag: GoBool = False


class Pair(Executor):
    name = "pair"
    config_schema = PairConfig

    def check_config(self, config: PairConfig) -> dict[str, str]:
        return {"right": "needed with left"} if config.left and not config.right else {}

    def execute(self, ctx: ExecutionContext) -> None:
        config: PairConfig = self.config_of(ctx)
        ctx.output.write(f"{config.left}{config.right}{config.flag}")


def context(config: Any, **fields: Any) -> ExecutionContext:
    return ExecutionContext(job_name="job", config=config, output=OutputSink(), **fields)


def test_validate_runs_the_cross_key_rules_after_the_schema() -> None:
    with pytest.raises(ConfigError) as caught:
        Pair().validate({"left": "a"})
    assert caught.value.errors == {"right": "needed with left"}
    with pytest.raises(ConfigError) as bad:
        Pair().validate({"left": "a", "flag": "yes"})
    assert set(bad.value.errors) == {"flag"}  # the schema first; cross rules need valid keys


def test_the_validated_config_reaches_execute_as_it_is() -> None:
    config = Pair().validate({"left": "a", "right": "b", "flag": "true"})
    ctx = context(config)
    assert Pair().config_of(ctx) is config
    Pair().execute(ctx)
    assert ctx.output.text() == "abTrue"


def test_a_raw_map_in_a_hand_built_context_is_validated_once_and_fails_without_retry() -> None:
    ctx = context({"left": "a", "right": "b"})
    Pair().execute(ctx)
    assert ctx.output.text() == "abFalse"
    with pytest.raises(ExecutorError) as caught:
        Pair().execute(context({"left": "a"}))
    assert caught.value.message == "invalid pair config: right: needed with left"
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("own", "default", "limit"),
    [
        (None, None, None),
        (None, 60.0, 60.0),
        (30.0, None, 30.0),
        (30.0, 10.0, 10.0),
        (5.0, 10.0, 5.0),
    ],
)
def test_the_run_limit_is_the_configs_capped_by_the_agents_default(
    own: float | None, default: float | None, limit: float | None
) -> None:
    assert context(None, default_timeout=default).limit(own) == limit


class Timed(Executor):
    config_schema = ExecutorConfig


@pytest.mark.parametrize(("timeout", "seconds"), [(30, 30.0), (1.5, 1.5), (None, None)])
def test_timeout_seconds_reads_the_configs_timeout(timeout: Any, seconds: float | None) -> None:
    class Config:
        pass

    config = Config()
    config.timeout = timeout  # type: ignore[attr-defined]
    assert Timed().timeout_seconds(config) == seconds


@pytest.mark.parametrize("name", sorted(registry.BUILTIN_EXECUTORS))
def test_every_key_of_a_built_in_executor_has_a_description(name: str) -> None:
    # The description is the key's help in the job form and its row in docs/executors/.
    schema = registry.executor_class(name).config_schema.model_json_schema(by_alias=True)
    undescribed = [k for k, v in schema.get("properties", {}).items() if not v.get("description")]
    assert undescribed == [], f"{name}: describe {undescribed} (CONTRIBUTING.md step 2)"
