"""The executor registry: lookup, plugins through entry points, disabling and secret masking."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from executors import registry
from executors.base import ExecutionContext, Executor, ExecutorConfig
from executors.http import HttpExecutor
from executors.registry import (
    SECRET_MASK,
    DisabledExecutor,
    UnknownExecutor,
    available,
    get_executor,
    mask_secrets,
    merge_secrets,
)
from executors.shell import ShellExecutor


class _VaultConfig(ExecutorConfig):
    url: str = ""
    password: str = ""
    token: str = ""


class VaultExecutor(Executor):
    """A stand-in third-party plugin with secret keys (no built-in executor has any)."""

    name = "vault"
    config_schema = _VaultConfig
    secret_keys: ClassVar[frozenset[str]] = frozenset({"password", "token"})

    def execute(self, ctx: ExecutionContext) -> None:
        ctx.output.write("ok")


NotAnExecutor = object


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install a distribution declaring entry points, the way a pip-installed plugin does."""
    dist = tmp_path / "dkronweb_test_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dkronweb-test-plugins\n")
    (dist / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\n"
        f"vault = {__name__}:VaultExecutor\n"
        "broken = no_such_module_xyz:Thing\n"
        f"bogus = {__name__}:NotAnExecutor\n"
        f"shell = {__name__}:VaultExecutor\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.clear_cache()
    yield
    registry.clear_cache()


def test_it_returns_instances_of_the_built_in_executors() -> None:
    assert isinstance(get_executor("shell"), ShellExecutor)
    assert isinstance(get_executor("http"), HttpExecutor)


def test_it_lists_the_built_ins() -> None:
    assert {"shell", "http"} <= set(available())


def test_an_unknown_name_suggests_the_closest_known_one() -> None:
    with pytest.raises(UnknownExecutor) as info:
        get_executor("shel")
    message = str(info.value)
    assert "unknown executor 'shel'" in message
    assert "did you mean 'shell'?" in message
    assert "http" in message and "shell" in message
    assert info.value.known == available()


def test_an_unknown_name_without_a_close_match_lists_the_known_ones() -> None:
    with pytest.raises(UnknownExecutor) as info:
        get_executor("zzzzzzzz")
    assert "did you mean" not in str(info.value)
    assert "Known executors:" in str(info.value)


def test_disabled_executors_are_neither_listed_nor_returned() -> None:
    assert "shell" not in available(disabled={"shell"})
    with pytest.raises(DisabledExecutor, match="'shell' is disabled") as info:
        get_executor("shell", disabled={"shell"})
    assert isinstance(info.value, UnknownExecutor)
    assert "shell" not in info.value.known


def test_it_loads_plugins_from_the_entry_point_group(plugins: None) -> None:
    assert "vault" in available()
    executor = get_executor("vault")
    assert isinstance(executor, VaultExecutor)


def test_a_plugin_cannot_take_a_built_in_name(plugins: None) -> None:
    assert isinstance(get_executor("shell"), ShellExecutor)


def test_a_plugin_that_cannot_be_imported_fails_only_when_used(plugins: None) -> None:
    assert "broken" in available()
    with pytest.raises(ImportError, match="executor 'broken': cannot load no_such_module_xyz"):
        get_executor("broken")


def test_a_plugin_that_is_not_an_executor_is_refused(plugins: None) -> None:
    with pytest.raises(TypeError, match="not a subclass"):
        get_executor("bogus")


def test_mask_secrets_hides_the_executors_secret_keys(plugins: None) -> None:
    config = {"url": "https://vault", "password": "hunter2", "token": ""}
    assert mask_secrets("vault", config) == {
        "url": "https://vault",
        "password": SECRET_MASK,
        "token": "",  # empty stays empty: the client can see it is unset
    }
    assert config["password"] == "hunter2"  # the input is not modified


def test_mask_secrets_leaves_executors_without_secrets_alone() -> None:
    config = {"command": "echo password=1"}
    assert mask_secrets("shell", config) == config


def test_mask_secrets_guesses_for_an_executor_it_cannot_load(plugins: None) -> None:
    config: dict[str, Any] = {"saslPassword": "x", "apiToken": "y", "topic": "t"}
    masked = mask_secrets("no-longer-installed", config)
    assert masked == {"saslPassword": SECRET_MASK, "apiToken": SECRET_MASK, "topic": "t"}
    assert mask_secrets("broken", config)["saslPassword"] == SECRET_MASK


def test_merge_secrets_keeps_the_stored_secret_when_the_mask_comes_back(plugins: None) -> None:
    old = {"url": "a", "password": "hunter2", "token": "t0k"}
    new = {"url": "b", "password": SECRET_MASK}
    assert merge_secrets("vault", new, old) == {"url": "b", "password": "hunter2", "token": "t0k"}


def test_merge_secrets_takes_a_new_secret_or_an_explicit_empty_one(plugins: None) -> None:
    old = {"password": "hunter2", "token": "t0k"}
    new = {"password": "new-pass", "token": ""}
    assert merge_secrets("vault", new, old) == {"password": "new-pass", "token": ""}


def test_merge_secrets_drops_a_mask_with_nothing_stored_behind_it(plugins: None) -> None:
    assert merge_secrets("vault", {"password": SECRET_MASK}, {}) == {}
