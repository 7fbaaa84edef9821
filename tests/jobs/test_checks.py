"""System checks report enabled executors that cannot load."""

from __future__ import annotations

from django.core.management import call_command

from executors import registry
from jobs.checks import check_executors_load


def test_an_enabled_executor_whose_library_is_missing_is_a_check_warning(monkeypatch, settings):
    monkeypatch.setitem(registry.BUILTIN_EXECUTORS, "ghost", "executors.not_installed.Ghost")
    registry.clear_cache()
    try:
        errors = check_executors_load(None)
        assert [e.id for e in errors] == ["dkron.W002"]
        assert "ghost" in errors[0].msg
        settings.DKRON = {**settings.DKRON, "DISABLED_EXECUTORS": {"ghost"}}
        assert check_executors_load(None) == []
    finally:
        monkeypatch.undo()
        registry.clear_cache()


def test_the_shipped_executors_all_load():
    assert check_executors_load(None) == []
    call_command("check")
