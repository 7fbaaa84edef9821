"""Run parameters (jobs.params): the declaration a job is saved with, the values a run is given,
and the `{{ params.<name> }}` substitution, as pure functions (issue 16, part 5)."""

from __future__ import annotations

import pytest

from executors.registry import secret_spec
from jobs.params import (
    InvalidParams,
    config_problems,
    environment,
    parse_declaration,
    resolve,
    stored,
    substitute,
)

REGION = {"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "eu"}
COUNT = {"name": "count", "type": "int", "default": 3, "description": "How many"}
DRY = {"name": "dry_run", "type": "bool", "default": False}
TICKET = {"name": "ticket", "required": True}
DECLARATION = [REGION, COUNT, DRY, TICKET]
SHELL = secret_spec("shell", {})


def errors_of(call, *args):
    with pytest.raises(InvalidParams) as caught:
        call(*args)
    return caught.value.errors


def test_a_declaration_is_stored_as_written_with_the_type_spelled_out():
    params = parse_declaration(DECLARATION)

    assert stored(params) == [
        REGION,
        {"name": "count", "type": "int", "default": 3, "description": "How many"},
        DRY,
        {"name": "ticket", "type": "string", "required": True},
    ]


def test_no_declaration_is_an_empty_one():
    assert parse_declaration(None) == [] and parse_declaration([]) == []


@pytest.mark.parametrize(
    ("declaration", "key", "words"),
    [
        ({"not": "a list"}, "params", "must be a list"),
        (["region"], "0", "valid dictionary"),
        ([{"name": "bad name"}], "0.name", "should match pattern"),
        ([{"name": "x", "type": "float"}], "x.type", "'string', 'int', 'bool' or 'choice'"),
        ([{"name": "x", "type": "choice"}], "x.choices", "non-empty list of choices"),
        ([{"name": "x", "type": "choice", "choices": ["a", "a"]}], "x.choices", "repeat"),
        ([{"name": "x", "choices": ["a"]}], "x.choices", "only a choice parameter"),
        ([{"name": "x", "type": "int", "default": "3"}], "x.default", "must be an integer"),
        ([{"name": "x", "type": "bool", "default": 1}], "x.default", "true or false"),
        ([{**REGION, "default": "asia"}], "region.default", "'asia' is not one of eu, us"),
        ([{"name": "x", "required": "yes"}], "x.required", "valid boolean"),
        ([{"name": "x", "colour": "red"}], "x.colour", "Extra inputs"),
        ([{"name": "x"}, {"name": "X"}], "X.name", "declared twice"),
    ],
)
def test_a_bad_declaration_names_the_parameter_and_the_field(declaration, key, words):
    errors = errors_of(parse_declaration, declaration)

    assert key in errors, errors
    assert words in errors[key], errors


def test_a_run_with_no_values_takes_the_defaults_and_an_unset_optional_one_is_none():
    declaration = [REGION, COUNT, {"name": "note"}]

    assert resolve(declaration, None) == {"region": "eu", "count": 3, "note": None}


def test_given_values_win_over_the_defaults():
    values = resolve(DECLARATION, {"region": "us", "count": 10, "dry_run": True, "ticket": "T-1"})

    assert values == {"region": "us", "count": 10, "dry_run": True, "ticket": "T-1"}


@pytest.mark.parametrize(
    ("given", "name", "words"),
    [
        ({"ticket": "T-1", "colour": "red"}, "colour", "unknown parameter"),
        ({"ticket": "T-1", "count": "10"}, "count", "must be an integer, not a string"),
        ({"ticket": "T-1", "count": True}, "count", "must be an integer, not a boolean"),
        ({"ticket": "T-1", "dry_run": "yes"}, "dry_run", "true or false"),
        ({"ticket": "T-1", "region": "asia"}, "region", "'asia' is not one of eu, us"),
        ({"ticket": 7}, "ticket", "must be a string, not a number"),
        ({}, "ticket", "required parameter is missing"),
    ],
)
def test_a_bad_value_names_the_parameter(given, name, words):
    errors = errors_of(resolve, DECLARATION, given)

    assert words in errors[name], errors


def test_values_must_come_as_an_object():
    assert "must be an object" in errors_of(resolve, DECLARATION, ["us"])["params"]


def test_the_environment_upper_cases_names_and_writes_bools_as_json_does():
    env = environment({"region": "eu", "count": 3, "dry_run": False, "note": None})

    assert env == {
        "DKRON_PARAM_REGION": "eu",
        "DKRON_PARAM_COUNT": "3",
        "DKRON_PARAM_DRY_RUN": "false",
    }


def test_placeholders_are_replaced_in_one_pass_and_nothing_is_evaluated():
    config = {"command": "deploy {{ params.region }} {{params.count}} x{{ params.note }}x"}
    values = {"region": "{{ params.count }}", "count": 2, "note": None}

    out = substitute(config, values, SHELL)

    assert out == {"command": "deploy {{ params.count }} 2 xx"}
    assert config["command"].startswith("deploy {{ params.region }}")  # the input is untouched


def test_placeholders_are_replaced_in_nested_values_and_unknown_ones_stay_as_written():
    config = {"body": {"items": ["{{ params.region }}", "{{ params.other }}", 5]}}

    out = substitute(config, {"region": "eu"}, secret_spec("http", {}))

    assert out == {"body": {"items": ["eu", "{{ params.other }}", 5]}}


def test_secret_values_are_never_substituted_whatever_was_stored():
    config = {"command": "run", "env": "TOKEN={{ params.region }}"}

    assert substitute(config, {"region": "eu"}, SHELL)["env"] == "TOKEN={{ params.region }}"


def test_a_placeholder_must_name_a_declared_parameter():
    problems = config_problems(parse_declaration([REGION]), SHELL, {"command": "{{ params.zone }}"})

    assert problems == {"command": "{{ params.zone }} names no declared parameter"}


def test_a_placeholder_may_not_sit_in_a_secret():
    config = {"command": "run", "env": "TOKEN={{ params.region }}"}

    problems = config_problems(parse_declaration([REGION]), SHELL, config)

    assert "not allowed here: this key holds a secret" in problems["env"]


def test_a_placeholder_may_not_decide_where_the_jobs_secrets_go():
    # `curl -d $TOKEN {{ params.region }}` would let whoever runs the job send TOKEN anywhere.
    config = {"command": "curl -d $TOKEN {{ params.region }}", "env": "TOKEN=t0ken-value"}

    problems = config_problems(parse_declaration([REGION]), SHELL, config)

    assert "decides where this job's secrets go" in problems["command"]
    assert "$DKRON_PARAM_REGION" in problems["command"]


def test_a_command_without_secrets_around_may_hold_placeholders():
    config = {"command": "deploy {{ params.region }}"}

    assert config_problems(parse_declaration([REGION]), SHELL, config) == {}


def test_a_url_may_hold_a_placeholder_unless_secrets_are_around():
    spec = secret_spec("http", {})
    declared = parse_declaration([REGION])
    plain = {"url": "https://{{ params.region }}.example.com/", "method": "GET"}
    with_password = {**plain, "url": "https://u:pw@{{ params.region }}.example.com/"}

    assert config_problems(declared, spec, plain) == {}
    assert "holds a secret" in config_problems(declared, spec, with_password)["url"]


@pytest.mark.parametrize(
    "url",
    [
        "http://sk_live_KEY:@{{ params.host }}/charges",  # a token as the user: no "secret"
        "https://{{ params.host }}/x?jwt=abc",
        "{{ params.host }}/v1",
        "http://api.example.com:{{ params.host }}/",
    ],
)
def test_a_free_string_never_picks_the_server_a_job_connects_to(url):
    spec = secret_spec("http", {})
    declared = parse_declaration([{"name": "host"}, REGION])
    problems = config_problems(declared, spec, {"url": url, "method": "GET"})
    assert "must not pick the server" in problems["url"]
    # In the path or the query it may; a choice may pick the host (the author's list).
    path = {"url": "https://api.example.com/{{ params.host }}?r={{ params.region }}"}
    assert config_problems(declared, spec, {**path, "method": "GET"}) == {}
