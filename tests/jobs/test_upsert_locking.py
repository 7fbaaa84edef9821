"""An upsert validates before it takes the database's write lock, so other writers never wait
for it: on SQLite (IMMEDIATE transactions) a 1.5 MB config once held the lock for 25 s, the
in-process agent's heartbeat aged, and every fire in that window failed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from executors.shell import ShellExecutor
from jobs.models import Job
from jobs.services import agents as agent_services
from jobs.services.jobs import job_upsert

pytestmark = pytest.mark.django_db(transaction=True)  # threads need committed, shared rows


def shell_job(command: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "big",
        "schedule": "@every 1m",
        "executor": "shell",
        "executor_config": {"command": command, **extra},
    }


@pytest.fixture
def held_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[threading.Event, threading.Event, list[str]]]:
    """The shell executor's validation of an "echo big..." command waits for `release` after
    setting `entered`: a deterministic stand-in for a validation that takes long. The third
    value lists the commands validated."""
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []
    real = ShellExecutor.validate

    def held(self: ShellExecutor, raw: dict[str, Any]) -> Any:
        calls.append(raw.get("command", "")[:20])
        if raw.get("command", "").startswith("echo big"):
            entered.set()
            release.wait(60)
        return real(self, raw)

    monkeypatch.setattr(ShellExecutor, "validate", held)
    yield entered, release, calls
    release.set()


def in_thread(work: Callable[[], Any], results: dict[str, Any], key: str) -> threading.Thread:
    def run() -> None:
        try:
            results[key] = work()
        except BaseException as exc:  # reported by the test
            results[key] = exc
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_heartbeat_is_written_while_an_upsert_validates_a_big_config(
    held_validation: tuple[threading.Event, threading.Event, list[str]],
) -> None:
    entered, release, _ = held_validation
    agent_services.agent_register(name="agent-1", instance_id="i1", tags={})
    results: dict[str, Any] = {}
    upsert = in_thread(
        lambda: job_upsert(data=shell_job("echo big " + "a" * 1_500_000)), results, "upsert"
    )
    beat: threading.Thread | None = None
    try:
        assert entered.wait(30), "the upsert never reached validation"
        beat = in_thread(
            lambda: agent_services.agent_heartbeat(name="agent-1", instance_id="i1", running=0),
            results,
            "beat",
        )
        beat.join(10)  # the busy timeout is 30 s: a held write lock would keep it waiting
        assert not beat.is_alive(), "the heartbeat waited for the upsert's validation"
        assert results["beat"] is True
    finally:
        release.set()
        upsert.join(60)
        if beat is not None:
            beat.join(60)
    job, created = results["upsert"]
    assert created
    assert Job.objects.get(name="big").executor_config["command"].endswith("a" * 100)


def test_a_change_made_during_validation_is_merged_not_overwritten_blindly(
    held_validation: tuple[threading.Event, threading.Event, list[str]],
) -> None:
    """Validation reads the stored config (masked secrets keep their stored value); if another
    writer changes the job before the lock is taken, the upsert validates again against it."""
    entered, release, calls = held_validation
    job_upsert(data=shell_job("echo first", env="TOKEN=one"))
    results: dict[str, Any] = {}
    upsert = in_thread(lambda: job_upsert(data=shell_job("echo big")), results, "upsert")
    assert entered.wait(30)
    other = in_thread(
        lambda: job_upsert(data=shell_job("echo other", env="TOKEN=two")), results, "other"
    )
    other.join(40)  # before the fix: waits for the lock (PostgreSQL) or fails "locked" (SQLite)
    release.set()
    upsert.join(60)
    other.join(60)
    assert not isinstance(results["other"], BaseException), results["other"]
    assert not isinstance(results["upsert"], BaseException), results["upsert"]
    assert calls.count("echo big") == 2  # validated again: the stored job had changed
    assert Job.objects.get(name="big").executor_config["command"] == "echo big"
