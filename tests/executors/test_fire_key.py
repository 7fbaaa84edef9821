"""The fire key's one definition (executors.base): what it is for a scheduled fire, a manual
run and a context built by hand, and how a job's own header of the same name wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from executors.base import ExecutionContext, with_fire_fields
from executors.output import OutputSink
from tests.executors.fire import SCHEDULED_AT, SCHEDULED_TEXT, attempts, key


def context(job_name: str = "report", **args: object) -> ExecutionContext:
    return ExecutionContext(job_name=job_name, config={}, output=OutputSink(), **args)  # type: ignore[arg-type]


def test_a_scheduled_fire_keys_on_the_job_and_its_scheduled_time_in_utc() -> None:
    ctx = context(**attempts()[0])
    assert ctx.fire_key == "report@2026-12-04T10:00:00Z" == key("report")
    assert ctx.fire_fields() == {
        "Idempotency-Key": "report@2026-12-04T10:00:00Z",
        "X-Dkron-Scheduled-Time": SCHEDULED_TEXT,
        "X-Dkron-Attempt": "1",
        "X-Dkron-Execution": "101",
    }


def test_every_attempt_of_one_fire_has_the_same_key_and_its_own_attempt_number() -> None:
    first, retry = (context(**args) for args in attempts())
    assert first.fire_key == retry.fire_key
    assert first.fire_fields()["X-Dkron-Attempt"] == "1"
    assert retry.fire_fields()["X-Dkron-Attempt"] == "2"
    assert first.run_env()["DKRON_FIRE_KEY"] == retry.run_env()["DKRON_FIRE_KEY"]


def test_the_key_is_the_same_whatever_zone_the_scheduled_time_is_given_in() -> None:
    paris = SCHEDULED_AT.astimezone(timezone(timedelta(hours=1)))
    assert context(scheduled_at=paris).fire_key == key("report")


def test_two_scheduled_times_of_one_job_have_different_keys() -> None:
    later = context(scheduled_at=SCHEDULED_AT + timedelta(hours=1))
    assert later.fire_key == "report@2026-12-04T11:00:00Z" != key("report")


def test_a_manual_run_keys_on_its_run_and_sends_no_scheduled_time() -> None:
    first = context(run_id="7", execution_id="70", attempt=1)
    retry = context(run_id="7", execution_id="71", attempt=2)
    assert first.fire_key == retry.fire_key == "report@run-7"
    assert "X-Dkron-Scheduled-Time" not in first.fire_fields()
    assert first.run_env()["DKRON_SCHEDULED_AT"] == ""


def test_non_ascii_letters_of_a_job_name_are_percent_encoded() -> None:
    ctx = context("café-backup", scheduled_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert ctx.fire_key == "caf%C3%A9-backup@2026-01-02T03:04:05Z"
    assert ctx.fire_key.isascii()
    assert ctx.run_env()["DKRON_JOB_NAME"] == "café-backup"


def test_a_context_built_by_hand_without_a_run_sends_no_fire_fields() -> None:
    ctx = context()
    assert ctx.fire_key == ""
    assert ctx.fire_fields() == {}
    assert context(execution_id="9").fire_key == "report@execution-9"


def test_the_run_env_names_the_run_and_its_fire_key() -> None:
    assert context(**attempts()[1]).run_env() == {
        "DKRON_JOB_NAME": "report",
        "DKRON_EXECUTION_ID": "102",
        "DKRON_ATTEMPT": "2",
        "DKRON_SCHEDULED_AT": SCHEDULED_TEXT,
        "DKRON_FIRE_KEY": key("report"),
    }


def test_a_header_the_job_sets_itself_wins_whatever_its_case() -> None:
    fields = context(**attempts()[0]).fire_fields()
    pairs = with_fire_fields([("idempotency-key", "mine"), ("X-Other", "1")], fields)
    assert pairs == [
        ("idempotency-key", "mine"),
        ("X-Other", "1"),
        ("X-Dkron-Scheduled-Time", SCHEDULED_TEXT),
        ("X-Dkron-Attempt", "1"),
        ("X-Dkron-Execution", "101"),
    ]


def test_fields_may_be_lower_cased_for_grpc_metadata() -> None:
    fields = context(**attempts()[0]).fire_fields()
    assert dict(with_fire_fields([], fields, lower=True)) == {
        "idempotency-key": key("report"),
        "x-dkron-scheduled-time": SCHEDULED_TEXT,
        "x-dkron-attempt": "1",
        "x-dkron-execution": "101",
    }
