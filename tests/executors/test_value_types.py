"""The shared config field types in executors.values that the executors build their schemas on."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ValidationError

from executors.values import (
    DurationError,
    GoBoolDefaultTrue,
    GoTimeout,
    JsonEnvMap,
    base64_bytes,
    header_pairs,
    matching,
    parse_env,
    parse_go_duration,
    parse_go_duration_ns,
    parse_headers,
    seconds_or_duration,
    whole_seconds,
)


def error_of(model: type[BaseModel], value: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({"value": value})
    return str(caught.value.errors()[0]["msg"])


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [("1500ns", 1500), ("1.5us", 1500), ("-2ms", -2_000_000), ("1h", 3_600_000_000_000)],
)
def test_the_nanoseconds_are_gos_without_rounding(text: str, nanoseconds: int) -> None:
    assert parse_go_duration_ns(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "kind", "unit"),
    [
        ("", "empty", ""),
        ("5", "missing_unit", ""),
        ("10x", "unknown_unit", "x"),
        ("-", "invalid", ""),
        ("3000000h", "too_long", ""),
    ],
)
def test_a_refused_duration_says_why(text: str, kind: str, unit: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_go_duration(text)
    assert (caught.value.kind, caught.value.unit) == (kind, unit)
    assert isinstance(caught.value, ValueError)


class WholeSeconds(BaseModel):
    value: Annotated[int, whole_seconds(15)] = 15


@pytest.mark.parametrize(("value", "seconds"), [("", 15), (None, 15), ("30", 30), (7, 7)])
def test_whole_seconds_take_dkrons_digits(value: Any, seconds: int) -> None:
    assert WholeSeconds.model_validate({"value": value}).value == seconds


@pytest.mark.parametrize("value", ["30s", "0", "1.5", True])
def test_whole_seconds_refuse_anything_else(value: Any) -> None:
    assert "must be whole seconds, e.g. 15" in error_of(WholeSeconds, value)


class Seconds(BaseModel):
    value: Annotated[float, seconds_or_duration(30.0)] = 30.0


@pytest.mark.parametrize(
    ("value", "seconds"), [("", 30.0), ("15", 15.0), ("1.5", 1.5), (5, 5.0), ("1m30s", 90.0)]
)
def test_seconds_or_a_go_duration(value: Any, seconds: float) -> None:
    assert Seconds.model_validate({"value": value}).value == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be positive (greater than zero)"),
        ("-5s", "must be positive (greater than zero)"),
        ("soon", "must be seconds (e.g. 30) or a duration such as 30s: invalid duration"),
        (True, "must be seconds (e.g. 30) or a duration such as 30s"),
    ],
)
def test_seconds_or_a_go_duration_refuses_the_rest(value: Any, message: str) -> None:
    assert message in error_of(Seconds, value)


class Timeout(BaseModel):
    value: GoTimeout = None


def test_a_go_timeout_is_unset_or_positive() -> None:
    assert Timeout.model_validate({"value": ""}).value is None
    assert Timeout.model_validate({"value": "2s"}).value == timedelta(seconds=2)
    assert error_of(Timeout, "0s") == "timeout must be greater than zero"


class Remove(BaseModel):
    value: GoBoolDefaultTrue = True


@pytest.mark.parametrize(("value", "expected"), [("", True), ("false", False), ("1", True)])
def test_a_default_true_flag_is_true_when_unset(value: str, expected: bool) -> None:
    assert Remove.model_validate({"value": value}).value is expected


def test_headers_split_on_the_first_colon_and_accept_an_object() -> None:
    assert parse_headers('["At: 12:30:00", " X :  y "]') == [("At", "12:30:00"), ("X", "y")]
    assert parse_headers({"Name": " v"}) == [("Name", " v")]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("X: y", "headers must be a JSON array"),
        ('["NoColon: s3cret", "s3cret"]', 'headers[1] is not of the form "Name: value"'),
        ('{"": "v"}', "header names must not be empty"),
        ('{"N": 1}', "header 'N' must have a string value"),
    ],
)
def test_bad_headers_are_named_by_position_never_by_value(value: str, message: str) -> None:
    with pytest.raises(Exception, match=re.escape(message)) as caught:
        parse_headers(value)
    assert "s3cret" not in str(caught.value)


def test_headers_without_objects_refuse_an_object() -> None:
    with pytest.raises(Exception, match=r'JSON array such as \["Name: value"\]$'):
        parse_headers({"Name": "v"}, objects=False)


class Headers(BaseModel):
    value: Annotated[list[tuple[str, str]], header_pairs(name=re.compile(r"[A-Za-z-]+"))] = []


def test_header_pairs_check_names_and_refuse_control_characters() -> None:
    assert "not a valid header name" in error_of(Headers, '["Bad Name: v"]')
    assert "control characters" in error_of(Headers, '["X: a\\r\\nInjected: 1"]')


def test_env_is_dkrons_comma_list_or_an_object() -> None:
    assert parse_env("A=1, B = 2,,C=x=y") == {"A": "1", "B": " 2", "C": "x=y"}
    assert parse_env({"A": "1"}) == {"A": "1"}
    assert parse_env("") == {}


def test_env_json_forms_are_for_the_executors_that_ask_for_them() -> None:
    with pytest.raises(Exception, match="not of the form K=V"):
        parse_env('["A=1,2"]')
    assert parse_env('["A=1,2"]', json_forms=True) == {"A": "1,2"}
    assert parse_env('{"A": "1"}', json_forms=True) == {"A": "1"}


class Env(BaseModel):
    value: JsonEnvMap = {}


def test_json_env_names_must_be_variable_names() -> None:
    assert "is not a valid variable name" in error_of(Env, '{"A B": "1"}')


class Payload(BaseModel):
    value: Annotated[bytes | None, base64_bytes("payload", blank=None)] = None


def test_base64_skips_newlines_like_go_and_refuses_the_rest() -> None:
    assert Payload.model_validate({"value": "aGVs\nbG8="}).value == b"hello"
    assert Payload.model_validate({"value": ""}).value is None
    assert "payload is not valid base64" in error_of(Payload, "not base64!")


class Name(BaseModel):
    value: Annotated[str, matching(re.compile(r"[a-z]+"), "name {value!r} is not lower case")] = ""


def test_matching_strips_allows_blank_and_names_the_value() -> None:
    assert Name.model_validate({"value": "  abc "}).value == "abc"
    assert Name.model_validate({"value": "  "}).value == ""
    assert error_of(Name, " Abc") == "name 'Abc' is not lower case"


class Required(BaseModel):
    value: Annotated[str, matching(re.compile(r"[a-z]+"), "bad {value!r}", missing="name is empty")]


def test_matching_with_missing_refuses_blank() -> None:
    assert error_of(Required, " ") == "name is empty"
