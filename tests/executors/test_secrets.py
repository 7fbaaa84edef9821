"""Write-only secrets nested in configs: env values and header/metadata values are masked in
every form an executor accepts, and a masked config sent back keeps the stored values."""

from __future__ import annotations

import json

import pytest

from confidential import redact
from executors.http import HttpExecutor, debug_config
from executors.output import OutputSink
from executors.registry import SECRET_MASK, get_executor, mask_secrets, merge_secrets

M = SECRET_MASK

# executor, stored config, what the API shows
MASKED = [
    (
        "shell",
        {"command": "env", "env": "DB_PASSWORD=hunter2,LOG_LEVEL=debug,EMPTY="},
        {"command": "env", "env": f"DB_PASSWORD={M},LOG_LEVEL={M},EMPTY="},
    ),
    (
        "shell",
        {"command": "env", "env": {"DATABASE_URL": "postgres://u:pw@db/x"}},
        {"command": "env", "env": {"DATABASE_URL": M}},
    ),
    (
        "docker",
        {"image": "busybox", "env": ["TOKEN=abc,def", "A=1"]},
        {"image": "busybox", "env": [f"TOKEN={M}", f"A={M}"]},
    ),
    (
        "docker",
        {"image": "busybox", "env": '["TOKEN=abc,def"]'},
        {"image": "busybox", "env": json.dumps([f"TOKEN={M}"])},
    ),
    (
        "ecs",
        {"taskdefName": "t", "env": "API_KEY=k-123"},
        {"taskdefName": "t", "env": f"API_KEY={M}"},
    ),
    (
        "http",
        {"method": "GET", "url": "http://x", "headers": '["Authorization: Bearer a:b"]'},
        {"method": "GET", "url": "http://x", "headers": json.dumps([f"Authorization: {M}"])},
    ),
    (
        "http",
        {"method": "GET", "url": "http://x", "headers": ["Cookie: sid=1", "Accept:"]},
        {"method": "GET", "url": "http://x", "headers": [f"Cookie: {M}", "Accept:"]},
    ),
    (
        "grpc",
        {"url": "h:1/p.S/M", "headers": {"authorization": "Bearer t"}},
        {"url": "h:1/p.S/M", "headers": {"authorization": M}},
    ),
    (
        "grpc",
        {"url": "h:1/p.S/M", "headers": '{"x-token": "t"}'},
        {"url": "h:1/p.S/M", "headers": json.dumps({"x-token": M})},
    ),
    (
        "nats",
        {"url": "nats://q", "subject": "s", "userName": "u", "password": "pw"},
        {"url": "nats://q", "subject": "s", "userName": "u", "password": M},
    ),
]


@pytest.mark.parametrize(("executor", "stored", "shown"), MASKED)
def test_every_nested_form_is_masked_with_names_kept(executor, stored, shown) -> None:
    assert mask_secrets(executor, stored) == shown


@pytest.mark.parametrize(("executor", "stored", "shown"), MASKED)
def test_the_masked_config_sent_back_keeps_the_stored_secrets(executor, stored, shown) -> None:
    merged = merge_secrets(executor, shown, stored)
    assert get_executor(executor).validate(merged) == get_executor(executor).validate(stored)


def test_a_new_value_replaces_the_stored_one_and_the_others_are_kept() -> None:
    stored = {"command": "env", "env": "DB_PASSWORD=hunter2,LOG_LEVEL=debug"}
    sent = {"command": "env", "env": f"DB_PASSWORD={M},LOG_LEVEL=info,NEW=1"}

    assert merge_secrets("shell", sent, stored)["env"] == "DB_PASSWORD=hunter2,LOG_LEVEL=info,NEW=1"


def test_a_removed_entry_is_gone_and_a_mask_with_nothing_behind_it_is_dropped() -> None:
    stored = {"method": "GET", "url": "http://x", "headers": '["A: 1", "B: 2"]'}
    sent = {"method": "GET", "url": "http://x", "headers": json.dumps([f"B: {M}", f"C: {M}"])}

    assert json.loads(merge_secrets("http", sent, stored)["headers"]) == ["B: 2"]


def test_a_repeated_header_name_restores_each_occurrence_in_order() -> None:
    stored = {"method": "GET", "url": "http://x", "headers": ["X-A: one", "X-A: two"]}
    sent = {"method": "GET", "url": "http://x", "headers": [f"X-A: {M}", f"X-A: {M}"]}

    assert merge_secrets("http", sent, stored)["headers"] == ["X-A: one", "X-A: two"]


def test_a_restored_value_with_a_comma_turns_the_env_string_into_an_object() -> None:
    stored = {"command": "env", "env": {"LIST": "a,b"}}
    sent = {"command": "env", "env": f"LIST={M},X=1"}

    merged = merge_secrets("shell", sent, stored)

    assert merged["env"] == {"LIST": "a,b", "X": "1"}
    assert get_executor("shell").validate(merged).env == {"LIST": "a,b", "X": "1"}


def test_a_config_sent_with_its_values_is_kept_as_spelled() -> None:
    stored = {"method": "GET", "url": "http://x", "headers": '["A:1"]'}
    assert merge_secrets("http", dict(stored), stored) == stored


def test_the_http_debug_output_masks_every_header_value() -> None:
    config = HttpExecutor().validate(
        {
            "method": "GET",
            "url": "http://x",
            "headers": '["Authorization: Bearer t0k3n", "X-Custom: plain"]',
        }
    )
    shown = json.dumps(debug_config(config))
    assert "t0k3n" not in shown and "plain" not in shown
    assert f"Authorization: {M}" in shown and f"X-Custom: {M}" in shown


def test_output_redaction_hides_secret_values_but_not_tiny_ones() -> None:
    sink = OutputSink(1000)
    sink.hide(["hunter2", "ok"])
    sink.write("password=hunt")
    sink.write("er2 ok\n")

    assert sink.text() == f"password={M} ok\n"
    assert redact("a hunter2b", ["hunter2", "hunter2b"]) == f"a {M}"


def test_output_hides_whole_secret_keys_and_credential_named_entries_only() -> None:
    from confidential.redact import hidden_in_output

    assert hidden_in_output(("saslPassword",))
    assert hidden_in_output(("env", "DB_PASSWORD", 0))
    assert hidden_in_output(("headers", "Authorization", 0))
    assert hidden_in_output(("env", "AWS_SECRET_ACCESS_KEY", 0))
    # Ordinary values stay write-only in the API but are not scrubbed from what the job prints.
    assert not hidden_in_output(("env", "GREETING", 0))
    assert not hidden_in_output(("headers", "Accept", 0))
