"""The schema-to-input mapping of the job form: one row per rule, no database."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from executors import registry
from web.ui.schema_widgets import Widget, config_schema, label_for, widget_for

STRING = {"type": "string"}
NULL = {"type": "null"}


@pytest.mark.parametrize(
    ("key", "prop", "secret", "expected"),
    [
        # A secret is write-only whatever its type.
        ("saslPassword", STRING, True, Widget("password")),
        ("token", {"type": "integer"}, True, Widget("password")),
        # Booleans, also Go's read from strings ("true", "1").
        ("debug", {"type": "boolean", "default": False}, False, Widget("checkbox")),
        ("tls", {"anyOf": [{"type": "boolean"}, STRING]}, False, Widget("checkbox")),
        # JSON shapes: a textarea whose array or object is sent decoded...
        ("env", {"type": "object"}, False, Widget("textarea", json=True)),
        ("volumes", {"type": "array", "items": STRING}, False, Widget("textarea", json=True)),
        ("headers", {"anyOf": [{"type": "array"}, STRING]}, False, Widget("textarea", json=True)),
        # ... except under a long text key, whose text is sent as typed (docker's command).
        ("command", {"anyOf": [{"type": "array"}, NULL]}, False, Widget("textarea")),
        # Enums and consts are selects of their values.
        ("pull", {"enum": ["never", "always"]}, False, Widget("select", ("never", "always"))),
        ("pull", {"anyOf": [{"enum": ["a", "b"]}, STRING]}, False, Widget("select", ("a", "b"))),
        ("mode", {"enum": [1, 2]}, False, Widget("select", ("1", "2"))),
        ("only", {"const": "x"}, False, Widget("select", ("x",))),
        # Numbers alone are number inputs; whole numbers step by one.
        ("repeat", {"type": "integer"}, False, Widget("number", step="1")),
        ("limit", {"anyOf": [{"type": "integer"}, NULL]}, False, Widget("number", step="1")),
        ("ratio", {"type": "number"}, False, Widget("number", step="any")),
        (
            "n",
            {"anyOf": [{"type": "integer"}, {"type": "number"}]},
            False,
            Widget("number", step="any"),
        ),
        # A number that a parser also reads from text ("30s", "512MB") is a text input.
        ("timeout", {"anyOf": [{"type": "integer"}, STRING]}, False, Widget("text")),
        ("mem_limit", {"anyOf": [{"type": "integer"}, NULL, STRING]}, False, Widget("text")),
        # Go durations and plain strings: text; long text keys: a textarea.
        (
            "timeout",
            {"anyOf": [{"type": "string", "format": "duration"}, NULL]},
            False,
            Widget("text"),
        ),
        ("cwd", STRING, False, Widget("text")),
        ("message.body", STRING, False, Widget("textarea")),
        ("payload", {"type": "string", "format": "binary"}, False, Widget("textarea")),
        # Anything (no schema) is text.
        ("opaque", {}, False, Widget("text")),
    ],
)
def test_each_kind_of_schema_gets_its_input(
    key: str, prop: dict[str, Any], secret: bool, expected: Widget
) -> None:
    assert widget_for(key, prop, secret=secret) == expected


def test_a_reference_is_read_from_the_schemas_definitions() -> None:
    defs = {"Code": {"enum": ["OK", "NOT_FOUND"], "type": "string"}}
    prop = {"$ref": "#/$defs/Code", "default": "OK"}
    assert widget_for("expectCode", prop, defs=defs) == Widget("select", ("OK", "NOT_FOUND"))


@pytest.mark.parametrize(
    ("key", "prop", "label"),
    [
        ("tlsNoVerifyPeer", {"title": "Skip TLS verification"}, "Skip TLS verification"),
        ("tlsNoVerifyPeer", {}, "TLS no verify peer"),
        ("tlsRootCAsFile", {}, "TLS root CAs file"),
        ("endpointUrl", {"description": "Where to send."}, "Endpoint URL"),
        ("queue.auto_delete", {}, "Queue auto delete"),
        ("message.messageId", {}, "Message ID"),
        ("message.base64Body", {}, "Message base64 body"),
        ("mem_limit", {"title": " "}, "Mem limit"),
        ("url", {}, "URL"),
    ],
)
def test_the_label_is_the_schemas_title_else_the_key_in_words(
    key: str, prop: dict[str, Any], label: str
) -> None:
    assert label_for(key, prop) == label


# --- what config_schema says of pydantic models ------------------------------------------------


def _read_seconds(value: Any) -> Any:
    return int(str(value).removesuffix("s"))


class Status(enum.Enum):
    OK = (0, "ok")
    NOT_FOUND = (5, "not found")


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Opaque:
    pass


class Sample(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    plain_count: int = 1
    timeout: Annotated[int, BeforeValidator(_read_seconds)] = 30
    declared: Annotated[int, BeforeValidator(_read_seconds, json_schema_input_type=int)] = 3
    pull: Annotated[Literal["never", "always"], BeforeValidator(str.lower)] = "never"
    expect_code: Annotated[Status, BeforeValidator(lambda v: Status[v])] = Field(
        Status.OK, alias="expectCode"
    )
    color: Color = Color.RED
    thing: Opaque | None = None
    tls_no_verify_peer: bool = Field(False, alias="tlsNoVerifyPeer", title="Skip TLS verification")


SAMPLE = config_schema(Sample)


def _widget(key: str) -> Widget:
    return widget_for(key, SAMPLE["properties"][key], defs=SAMPLE.get("$defs"))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("plain_count", Widget("number", step="1")),
        ("timeout", Widget("text")),  # the parser reads "30s": a number input would drop it
        ("declared", Widget("number", step="1")),  # the parser says it reads integers only
        ("pull", Widget("select", ("never", "always"))),
        ("expectCode", Widget("select", ("OK", "NOT_FOUND"))),  # tuple values: by name
        ("color", Widget("select", ("red", "blue"))),  # JSON values: by value
        ("thing", Widget("text")),  # no JSON schema of its own: anything
        ("tlsNoVerifyPeer", Widget("checkbox")),
    ],
)
def test_config_schema_describes_what_each_field_reads(key: str, expected: Widget) -> None:
    assert _widget(key) == expected


def test_config_schema_is_keyed_by_alias_with_defaults_as_the_form_shows_them() -> None:
    props = SAMPLE["properties"]
    assert "expectCode" in props and "expect_code" not in props
    assert props["expectCode"]["default"] == "OK"
    assert props["color"]["default"] == "red"
    assert props["timeout"]["default"] == 30


def test_config_schema_has_only_the_titles_the_model_gives() -> None:
    props = SAMPLE["properties"]
    assert props["tlsNoVerifyPeer"]["title"] == "Skip TLS verification"
    assert "title" not in props["plain_count"]
    assert label_for("plain_count", props["plain_count"]) == "Plain count"


@pytest.mark.parametrize("name", registry.available())
def test_every_installed_executor_config_maps_to_inputs(name: str) -> None:
    executor = registry.executor_class(name)
    schema = config_schema(executor.config_schema)
    assert schema["properties"], name
    for key, prop in schema["properties"].items():
        widget = widget_for(key, prop, secret=key in executor.secret_keys, defs=schema.get("$defs"))
        assert widget.kind in {"text", "number", "checkbox", "select", "textarea", "password"}
        assert label_for(key, prop)
    for key in executor.secret_keys:
        assert widget_for(key, schema["properties"][key], secret=True).kind == "password"
