"""Which input shows an executor config field, decided from its model's JSON schema.

`config_schema(model)` is the model's validation JSON schema keyed by Dkron's names (the
aliases, which the form posts as `config.<key>`); `widget_for` maps one property of it to an
input and `label_for` names it. Nothing here looks at pydantic fields or type annotations.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema, to_jsonable_python

# String keys that usually hold more than a line: shown as a textarea, sent as typed.
LONG_TEXT_KEYS = frozenset(
    {"command", "body", "message", "message.body", "message.base64Body", "payload", "data"}
)
# Words of a key written as people write them in a label.
ACRONYMS = {
    "api": "API",
    "aws": "AWS",
    "cas": "CAs",
    "id": "ID",
    "ip": "IP",
    "sasl": "SASL",
    "tls": "TLS",
    "url": "URL",
}
_SEPARATOR = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")  # "queue.name", "tlsRootCAs"
_JSON_SCALARS = (str, int, float, bool, type(None))


class FormJsonSchema(GenerateJsonSchema):
    """Pydantic's validation JSON schema with what a form needs said in it.

    1. A title only where the model gives one: pydantic would make "Tlsnoverifypeer" of an
       alias, which is worse than the key itself.
    2. A before-validator that declares no input type (`json_schema_input_type`) exists to
       read Dkron's strings ("30s", "512MB", "true", "5"), so its input is the output type
       or a string: a text input, not a number input that would drop "30s".
    3. An enum whose values are not JSON scalars (grpc's StatusCode holds (0, "ok") tuples)
       is written by member name, as its parser reads it.
    4. A type with no JSON schema (a plugin's own class) takes anything: a text input.
    """

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        if self.mode == "validation" and "json_schema_input_schema" not in schema:
            return {"anyOf": [self.generate_inner(schema["schema"]), {"type": "string"}]}
        return super().function_before_schema(schema)

    def enum_schema(self, schema: core_schema.EnumSchema) -> JsonSchemaValue:
        if _by_name(schema["cls"]):
            return {"enum": [m.name for m in schema["members"]], "type": "string"}
        return super().enum_schema(schema)

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, enum.Enum) and _by_name(type(dft)):
            return dft.name
        return super().encode_default(dft)

    def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> JsonSchemaValue:
        return {}


def _by_name(cls: type[enum.Enum]) -> bool:
    return not all(isinstance(to_jsonable_python(m.value), _JSON_SCALARS) for m in cls)


def config_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as the form reads it (see FormJsonSchema), keyed by alias."""
    return model.model_json_schema(by_alias=True, schema_generator=FormJsonSchema)


@dataclass(frozen=True)
class Widget:
    """The input for one field: `kind` is text, number, checkbox, select, textarea or
    password; a select's `choices` (values, shown as they are); a number's `step`; `json`
    for a textarea whose JSON array or object is sent decoded (other text is sent as typed)."""

    kind: str
    choices: tuple[str, ...] = ()
    step: str = ""
    json: bool = False


def widget_for(
    key: str,
    prop: Mapping[str, Any],
    *,
    secret: bool = False,
    defs: Mapping[str, Any] | None = None,
) -> Widget:
    """The input for property `key` of a config schema (`defs`: the schema's `$defs`).

    Rules, first match wins: a secret is a password input (write-only); a boolean a
    checkbox; an object or array a textarea of JSON; an enum or const a select; integers
    and numbers alone a number input; a long text key a textarea; anything else (Go
    durations, sizes, strings) a text input, the description its help.
    """
    members = _members(prop, defs or {})
    types = {m.get("type") for m in members}
    if secret:
        return Widget("password")
    if "boolean" in types:
        return Widget("checkbox")
    if types & {"object", "array"}:
        return Widget("textarea", json=key not in LONG_TEXT_KEYS)
    values = [v for m in members for v in (m["enum"] if "enum" in m else [m.get("const")])]
    choices = tuple(str(v) for v in values if v is not None)
    if choices:
        return Widget("select", choices=choices)
    if types and types <= {"integer", "number"}:
        return Widget("number", step="1" if types == {"integer"} else "any")
    if key in LONG_TEXT_KEYS:
        return Widget("textarea")
    return Widget("text")


def _members(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The alternatives a property accepts, unions flattened, `$ref`s resolved, null left out."""
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _members(defs.get(ref.removeprefix("#/$defs/"), {}), defs)
    union = prop.get("anyOf") or prop.get("oneOf")
    if union:
        return [m for alternative in union for m in _members(alternative, defs)]
    if prop.get("type") == "null":
        return []
    return [prop]


def label_for(key: str, prop: Mapping[str, Any]) -> str:
    """The schema's title, else the key in words ("tlsNoVerifyPeer" -> "TLS no verify peer")."""
    title = prop.get("title")
    if isinstance(title, str) and title.strip():
        return title
    words: list[str] = []
    for part in _SEPARATOR.split(key):
        if not part:
            continue
        word = ACRONYMS.get(part.lower(), part.lower())
        if not words or word.lower() != words[-1].lower():  # "message.messageId": "Message ID"
            words.append(word)
    if not words:
        return key
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])
