"""Parsing of Dkron's string-typed config values with Go's rules (durations, sizes, booleans).

Dkron stores every executor setting as a string and parses it with Go's standard library, so a
job exported from Dkron carries values such as `"30s"`, `"512MB"` and `"true"`. These functions
accept exactly what Go accepts (plus surrounding whitespace), so an imported job means the same
thing here, and they reject at save time what Dkron would silently have turned into a default.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "DurationError",
    "EnvMap",
    "GoBool",
    "GoBoolDefaultTrue",
    "GoDuration",
    "GoTimeout",
    "JsonEnvMap",
    "OptionalGoDuration",
    "OptionalSize",
    "accepted_by",
    "base64_bytes",
    "comma_items",
    "check_text",
    "config_error",
    "format_go_duration",
    "header_pairs",
    "is_blank",
    "json_if_bracketed",
    "matching",
    "parse_bool",
    "parse_env",
    "parse_go_duration",
    "parse_go_duration_ns",
    "parse_headers",
    "seconds_or_duration",
    "whole_seconds",
    "parse_size",
    "rfc3339",
    "split_command",
]

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # MICRO SIGN, as Go accepts
    "\u03bcs": 1_000,  # GREEK SMALL LETTER MU, as Go accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_NS = 2**63 - 1  # Go's Duration is an int64 of nanoseconds
_NUMBER = re.compile(r"(\d*)(?:\.(\d*))?")
_UNIT = re.compile(r"[^\d.]*")
_MAX_NS_DIGITS = len(str(_MAX_NS))
_MAX_FRACTION_DIGITS = 30
_DURATION_HINT = 'a number and a unit (ns, us, ms, s, m, h), e.g. "30s", "1h30m" or "1.5h"'


class DurationError(ValueError):
    """A value Go's `time.ParseDuration` refuses. `kind` says why, for callers that word their
    own message (jobs.schedule): "empty", "invalid", "missing_unit", "unknown_unit" (then
    `unit` names it) or "too_long"; str() is this module's message."""

    def __init__(self, message: str, *, value: str, kind: str, unit: str = "") -> None:
        super().__init__(message)
        self.value = value
        self.kind = kind
        self.unit = unit


def parse_go_duration(value: str) -> timedelta:
    """Parse a duration with Go's `time.ParseDuration` grammar: the product's one parser.

    A sign is accepted, as Go accepts it; callers that need a positive duration check it.
    The result is rounded to the microsecond (timedelta's resolution; Go keeps nanoseconds);
    `parse_go_duration_ns` gives the nanoseconds for a caller that rounds otherwise.
    Raises DurationError (a ValueError).
    """
    nanoseconds = parse_go_duration_ns(value)
    micros, rest = divmod(abs(nanoseconds), 1_000)
    if rest >= 500:
        micros += 1
    return timedelta(microseconds=-micros if nanoseconds < 0 else micros)


def parse_go_duration_ns(value: str) -> int:
    """The whole nanoseconds of a Go duration (Go truncates the fraction of a nanosecond)."""
    s = value.strip()
    if not s:
        raise DurationError(f"empty duration: expected {_DURATION_HINT}", value=value, kind="empty")
    negative = s[0] == "-"
    if s[0] in "+-":
        s = s[1:]
    if s == "0":  # Go's special case: the only unit-less value it accepts
        return 0
    if not s:
        raise _invalid(value)
    total = Fraction(0)
    # An index into `s`, never `s = s[n:]`: slicing the rest off per component made a long
    # value ("1s1s1s...", a megabyte of it) quadratic.
    pos = 0
    while pos < len(s):
        number = _NUMBER.match(s, pos)
        assert number is not None  # the pattern matches the empty string
        whole, frac = number.group(1), number.group(2) or ""
        if not whole and not frac:
            raise _invalid(value)
        unit_match = _UNIT.match(s, number.end())
        unit = unit_match.group(0) if unit_match else ""
        if not unit:
            raise DurationError(
                f"missing unit in duration {value!r}: expected {_DURATION_HINT}",
                value=value,
                kind="missing_unit",
            )
        if unit not in _NS_PER_UNIT:
            raise DurationError(
                f"unknown unit {unit!r} in duration {value!r}: expected {_DURATION_HINT}",
                value=value,
                kind="unknown_unit",
                unit=unit,
            )
        pos = number.end() + len(unit)
        scale = _NS_PER_UNIT[unit]
        whole = whole.lstrip("0")
        if len(whole) > _MAX_NS_DIGITS:  # before int(): converting huge digit runs is quadratic
            raise _too_long(value)
        total += int(whole or "0") * scale
        if frac:
            # Go ignores the digits that no longer change the result (leadingFraction); far
            # below a nanosecond, and int() of a megabyte of digits would be quadratic.
            frac = frac[:_MAX_FRACTION_DIGITS]
            total += Fraction(int(frac) * scale, 10 ** len(frac))
        if int(total) > _MAX_NS:  # Go stops at the first overflow too
            raise _too_long(value)
    nanoseconds = int(total)  # Go truncates the fraction of a nanosecond too
    return -nanoseconds if negative else nanoseconds


def _invalid(value: str) -> DurationError:
    return DurationError(
        f"invalid duration {value!r}: expected {_DURATION_HINT}", value=value, kind="invalid"
    )


def _too_long(value: str) -> DurationError:
    shown = value if len(value) <= 80 else value[:80] + "..."
    return DurationError(
        f"invalid duration {shown!r}: longer than Go allows (about 292 years)",
        value=value,
        kind="too_long",
    )


def format_go_duration(value: timedelta) -> str:
    """Format like Go's `Duration.String()` ("1h30m0s", "1.5s", "300ms"), for Dkron's messages."""
    ns = ((value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds) * 1_000
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000:
        text = f"{u}ns"
    elif u < 1_000_000:
        text = _decimal(u, 1_000) + "\u00b5s"
    elif u < 1_000_000_000:
        text = _decimal(u, 1_000_000) + "ms"
    else:
        hours, rest = divmod(u, 3_600_000_000_000)
        minutes, rest = divmod(rest, 60_000_000_000)
        text = _decimal(rest, 1_000_000_000) + "s"
        if hours:
            text = f"{hours}h{minutes}m{text}"
        elif minutes:
            text = f"{minutes}m{text}"
    return sign + text


def rfc3339(value: datetime | None) -> str:
    """A time as Dkron passes it to jobs (RFC 3339 in UTC, "Z"); "" for none. A naive time
    is taken as UTC."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _decimal(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_MAX_SIZE_DIGITS = 19  # Go sizes are int64: 9223372036854775807 has 19 digits
_SIZE_HINT = 'bytes, or a number and a unit (B, KB, MB, GB, TB; 1024-based), e.g. "512MB"'


def parse_size(value: str | int) -> int:
    """Parse a byte count such as `1048576`, `512MB` or `1.5G` (1024-based, as Dkron's mem_limit).

    Units are case-insensitive; the short forms (K, M) and the IEC forms (KiB, MiB) mean the
    same. The result is whole bytes (a fraction is dropped) and must be at least one byte.
    """
    if isinstance(value, bool):  # bool is an int subclass; True is not "1 byte"
        raise ValueError(f"invalid size {value!r}: expected {_SIZE_HINT}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(value.strip())
        if not match:
            raise ValueError(f"invalid size {value!r}: expected {_SIZE_HINT}")
        unit = match.group(2).lower()
        if len(match.group(1).partition(".")[0].lstrip("0")) > _MAX_SIZE_DIGITS:
            # Checked before Decimal -> int, which is quadratic in the number of digits.
            shown = value if len(value) <= 80 else value[:80] + "..."
            raise ValueError(f"invalid size {shown!r}: larger than 2^63 bytes")
        if unit not in _SIZE_UNITS:
            raise ValueError(
                f"unknown unit {match.group(2)!r} in size {value!r}: expected {_SIZE_HINT}"
            )
        try:
            size = int(Decimal(match.group(1)) * _SIZE_UNITS[unit])
        except InvalidOperation:  # pragma: no cover - the pattern only admits decimals
            raise ValueError(f"invalid size {value!r}: expected {_SIZE_HINT}") from None
    if size < 1:
        raise ValueError(f"invalid size {value!r}: must be at least 1 byte")
    return size


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(value: str) -> bool:
    """Parse a boolean exactly as Go's `strconv.ParseBool` does (so `"yes"` is an error)."""
    s = value.strip()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(
        f"invalid boolean {value!r}: expected true or false (also 1, t, T, TRUE, True, "
        "0, f, F, FALSE, False)"
    )


def has_control(value: str) -> bool:
    """True if `value` holds a C0 control character (CR, LF, NUL...) or DEL."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def refuse_control(key: str, value: str) -> str:
    """`value` unchanged, or a save-time error naming `key`: a value sent as text on a wire
    protocol (a header, a tag, a subject) must not hold CR, LF, NUL or other controls, which
    could end the line and start a command of the protocol (or another one's)."""
    if has_control(value):
        raise config_error(
            "control_character",
            f"{key} must not contain control characters (CR, LF, NUL or other C0); "
            f"found {next(c for c in value if ord(c) < 0x20 or ord(c) == 0x7F)!r}",
        )
    return value


def refuse_control_in_pairs(key: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`pairs` unchanged, or a save-time error naming `key` if a name or value holds a control."""
    for name, value in pairs:
        refuse_control(f"{key} {name!r}", name + value)
    return pairs


def config_error(kind: str, message: str) -> PydanticCustomError:
    """A validation error whose message reaches the user verbatim (no "Value error, " prefix)."""
    return PydanticCustomError(kind, message, {})


def is_blank(value: Any) -> bool:
    """None or a blank string: how Dkron's maps say a key is unset."""
    return value is None or (isinstance(value, str) and not value.strip())


def go_bool(blank: bool) -> Callable[[Any], Any]:
    """A parser of Go's booleans for a field whose unset value ("" or None) means `blank`."""

    def parse(value: Any) -> Any:
        # Dkron's UI sends "" for an unset flag and Dkron reads that as false.
        if is_blank(value):
            return blank
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            try:
                return parse_bool(value)
            except ValueError as exc:
                raise config_error("go_bool", str(exc)) from None
        raise config_error("go_bool", f"invalid boolean {value!r}: expected true or false")

    return parse


def _to_duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_go_duration(value)
        except ValueError as exc:
            raise config_error("go_duration", str(exc)) from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Go rejects a bare number; saying which unit to add is more useful than "invalid".
        raise config_error(
            "go_duration", f'missing unit in duration {value!r}: write e.g. "{value}s"'
        )
    raise config_error("go_duration", f"invalid duration {value!r}: expected {_DURATION_HINT}")


def _to_optional_duration(value: Any) -> Any:
    return None if is_blank(value) else _to_duration(value)


def _positive_duration(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise config_error("positive", "timeout must be greater than zero")
    return value


def _to_optional_size(value: Any) -> Any:
    if is_blank(value):
        return None
    if not isinstance(value, str | int):
        raise config_error("size", f"invalid size {value!r}: expected {_SIZE_HINT}")
    try:
        return parse_size(value)
    except ValueError as exc:
        raise config_error("size", str(exc)) from None


def whole_seconds(default: int, *, kind: str = "timeout") -> BeforeValidator:
    """A timeout in Dkron's whole seconds ("30"); blank is `default` (http, gcppubsub)."""

    def parse(value: Any) -> Any:
        if value is None or value == "":
            return default
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
            raise config_error(kind, f"timeout {value!r} must be whole seconds, e.g. {default}")
        return int(text)

    return BeforeValidator(parse)


_SECONDS = re.compile(r"\d+(\.\d+)?")


def seconds_or_duration(default: float, *, example: str = "30s") -> BeforeValidator:
    """A positive timeout in seconds: a number, digits ("15", "1.5") or a Go duration
    ("10s", "1m30s"); blank is `default` (kafka, nats, grpc: Dkron has no such key or whole
    seconds only)."""
    hint = f"seconds (e.g. 30) or a duration such as {example}"

    def parse(value: Any) -> Any:
        if value is None or value == "":
            return default
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str) and _SECONDS.fullmatch(value.strip()):
            seconds = float(value.strip())
        elif isinstance(value, str):
            try:
                seconds = parse_go_duration(value).total_seconds()
            except ValueError as exc:
                raise config_error("timeout", f"timeout {value!r} must be {hint}: {exc}") from None
        else:
            raise config_error("timeout", f"timeout {value!r} must be {hint}")
        if seconds <= 0:
            raise config_error("timeout", f"timeout {value!r} must be positive (greater than zero)")
        return seconds

    return BeforeValidator(parse)


def matching(
    pattern: re.Pattern[str], message: str, *, missing: str | None = None, kind: str = "invalid"
) -> AfterValidator:
    """A text field's rule: stripped, then blank is "" (or, with `missing`, that error), and
    anything else must match `pattern` whole or fail with `message` ("{value!r}" names it)."""

    def check(value: str) -> str:
        return check_text(value, pattern, message, missing=missing, kind=kind)

    return AfterValidator(check)


def check_text(
    value: str,
    pattern: re.Pattern[str],
    message: str,
    *,
    missing: str | None = None,
    kind: str = "invalid",
) -> str:
    """`matching` as a function, for a field validator that checks more afterwards."""
    value = value.strip()
    if not value:
        if missing is not None:
            raise config_error("missing", missing)
        return value
    if not pattern.fullmatch(value):
        raise config_error(kind, message.format(value=value))
    return value


def parse_headers(
    value: Any, *, objects: bool = True, form: str = "Name: value"
) -> list[tuple[str, Any]]:
    """Headers in Dkron's http form, a JSON array of "Name: value" strings split on the first
    ':' (so values such as URLs or times keep theirs), or with `objects` a JSON object of name
    to value; as a JSON string or already decoded. Names and array values are stripped.
    Messages show `form` as the example and name a header by its position or name, never by
    its value (often a credential)."""
    hint = f'a JSON array such as ["{form}"]'
    if objects:
        name, _, val = form.partition(": ")
        hint += f' or a JSON object such as {{"{name}": "{val}"}}'
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise config_error("headers", f"headers must be {hint}: {exc}") from None
    pairs: list[tuple[str, Any]] = []
    if objects and isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(item, str):
                raise config_error("headers", f"header {key!r} must have a string value")
            if not str(key).strip():
                raise config_error("headers", "header names must not be empty")
            pairs.append((str(key).strip(), item))
        return pairs
    if not isinstance(value, list):
        raise config_error("headers", f"headers must be {hint}")
    for index, item in enumerate(value):
        key, sep, val = item.partition(":") if isinstance(item, str) else ("", "", "")
        if not sep or not key.strip():
            raise config_error("headers", f'headers[{index}] is not of the form "{form}"')
        pairs.append((key.strip(), val.strip()))
    return pairs


def header_pairs(*, objects: bool = True, name: re.Pattern[str] | None = None) -> BeforeValidator:
    """`parse_headers` for a text protocol: every name must match `name` (if given) and no
    name or value may hold a control character."""

    def parse(value: Any) -> Any:
        pairs = parse_headers(value, objects=objects)
        for key, _ in pairs:
            if name is not None and not name.fullmatch(key):
                raise config_error("headers", f"header name {key!r} is not a valid header name")
        return refuse_control_in_pairs("headers", pairs)

    return BeforeValidator(parse)


def accepted_by(
    parse: Callable[[str], object], *, missing: str, kind: str = "invalid"
) -> AfterValidator:
    """A required text field, stripped, that `parse` accepts: blank fails with `missing`, and
    the ValueError `parse` raises is the message (grpc's and rabbitmq's URLs)."""

    def check(value: str) -> str:
        value = value.strip()
        if not value:
            raise config_error("missing", missing)
        try:
            parse(value)
        except ValueError as exc:
            raise config_error(kind, str(exc)) from None
        return value

    return AfterValidator(check)


def comma_items(value: str) -> list[str]:
    """The items of a Dkron comma list, stripped, the empty ones left out."""
    return [item.strip() for item in value.split(",") if item.strip()]


_ENV_NAME = re.compile(r"[^=\s]+")


def parse_env(value: Any, *, json_forms: bool = False) -> dict[str, str]:
    """Dkron's `K=V,K2=V2` (split on commas, so values cannot hold one) or an object of strings.

    With `json_forms` (docker) a string that starts with "{" or "[" is decoded as JSON, an
    array of "K=V" strings is accepted (values may then hold commas), and names must be
    variable names (no "=" or blanks).
    """
    if is_blank(value):
        return {}
    if json_forms and isinstance(value, str):
        value = json_if_bracketed(value, "env", "{")
        if isinstance(value, str):
            value = json_if_bracketed(value, "env", "[")
    if isinstance(value, str):
        value = [item for item in value.split(",") if item.strip()]
    elif isinstance(value, list) and not json_forms:
        raise config_error("env", 'env must be a string such as "K=V,K2=V2"')
    pairs: dict[str, str] = {}
    if isinstance(value, dict):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise config_error("env", "env object values must be strings")
        pairs = dict(value)
    elif isinstance(value, list):
        for item in value:
            key, sep, val = item.partition("=") if isinstance(item, str) else ("", "", "")
            key = key.strip()
            if not sep or not key:
                raise config_error(
                    "env", f'env entry {item!r} is not of the form K=V ("K=V,K2=V2")'
                )
            pairs[key] = val
    else:
        raise config_error("env", 'env must be a string such as "K=V,K2=V2"')
    if json_forms:
        for key in pairs:
            if not _ENV_NAME.fullmatch(key):
                raise config_error("env", f"env name {key!r} is not a valid variable name")
    return pairs


def json_if_bracketed(value: str, key: str, opener: str) -> Any:
    """Decode `value` as JSON when it starts with `opener` ("[" or "{"), else return it."""
    text = value.strip()
    if not text.startswith(opener):
        return value
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise config_error(key, f"{key} looks like JSON but does not parse: {exc}") from None


def base64_bytes(key: str, *, blank: bytes | None = b"") -> BeforeValidator:
    """Bytes given as base64 (Go's StdEncoding, as Dkron: newlines skipped, anything else
    outside the alphabet an error); blank is `blank`."""

    def parse(value: Any) -> Any:
        if value is None or value == "":
            return blank
        if not isinstance(value, str):
            raise config_error("base64", f"{key} must be a base64 string")
        try:
            return base64.b64decode(re.sub(r"[\r\n]", "", value), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise config_error("base64", f"{key} is not valid base64: {exc}") from None

    return BeforeValidator(parse)


# Pydantic field types. Blank strings mean "unset" because Dkron's maps hold "" for unset keys.
GoBool = Annotated[bool, BeforeValidator(go_bool(False))]
GoBoolDefaultTrue = Annotated[bool, BeforeValidator(go_bool(True))]  # unset means true
GoDuration = Annotated[timedelta, BeforeValidator(_to_duration)]
OptionalGoDuration = Annotated[timedelta | None, BeforeValidator(_to_optional_duration)]
# A job's own time limit as a Go duration: unset (None) or greater than zero.
GoTimeout = Annotated[
    timedelta | None,
    BeforeValidator(_to_optional_duration),
    AfterValidator(_positive_duration),
]
OptionalSize = Annotated[int | None, BeforeValidator(_to_optional_size)]
EnvMap = Annotated[dict[str, str], BeforeValidator(parse_env)]
JsonEnvMap = Annotated[
    dict[str, str], BeforeValidator(functools.partial(parse_env, json_forms=True))
]


_PLAIN_RUN = re.compile(r"[^ \t\r\n'\"\\]+")
_BLANK_RUN = re.compile(r"[ \t\r\n]+")
_DQ_SPECIAL = re.compile(r"[\"\\]")


def split_command(line: str) -> list[str]:
    """Split a command line into argv exactly as `shlex.split(line)` does, in linear time.

    shlex grows each word one character at a time with `self.token = self.token + c`, which
    copies the word so far (CPython's in-place append does not apply to an attribute): a
    1.5 MB word took 25 s, holding the GIL, and froze the embedded server. This scanner keeps
    shlex's POSIX rules (tests/executors/test_values.py compares the two on random input):
    words split on space, tab, CR and LF; `'...'` is literal; inside `"..."` a backslash
    escapes only `"` and `\\` and is kept before anything else; outside quotes it escapes any
    character; quotes can join within a word (`a'b c'd` is one word) and `''` is an empty
    word. No expansion, pipes or redirects: `|`, `;`, `>` are ordinary characters. Raises
    ValueError with shlex's messages ("No closing quotation", "No escaped character").
    """
    words: list[str] = []
    parts: list[str] = []
    in_word = False
    pos, end = 0, len(line)
    while pos < end:
        char = line[pos]
        if char in " \t\r\n":
            if in_word:
                words.append("".join(parts))
                parts, in_word = [], False
            blank = _BLANK_RUN.match(line, pos)
            assert blank is not None
            pos = blank.end()
            continue
        in_word = True
        if char == "'":
            close = line.find("'", pos + 1)
            if close < 0:
                raise ValueError("No closing quotation")
            parts.append(line[pos + 1 : close])
            pos = close + 1
        elif char == '"':
            pos += 1
            while True:
                special = _DQ_SPECIAL.search(line, pos)
                if special is None:
                    raise ValueError("No closing quotation")
                at = special.start()
                parts.append(line[pos:at])
                if line[at] == '"':
                    pos = at + 1
                    break
                if at + 1 >= end:
                    raise ValueError("No escaped character")
                escaped = line[at + 1]
                parts.append(escaped if escaped in '"\\' else "\\" + escaped)
                pos = at + 2
        elif char == "\\":
            if pos + 1 >= end:
                raise ValueError("No escaped character")
            parts.append(line[pos + 1])
            pos += 2
        else:
            run = _PLAIN_RUN.match(line, pos)
            assert run is not None
            parts.append(run.group())
            pos = run.end()
    if in_word:
        words.append("".join(parts))
    return words
