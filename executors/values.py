"""Parsing of Dkron's string-typed config values with Go's rules (durations, sizes, booleans).

Dkron stores every executor setting as a string and parses it with Go's standard library, so a
job exported from Dkron carries values such as `"30s"`, `"512MB"` and `"true"`. These functions
accept exactly what Go accepts (plus surrounding whitespace), so an imported job means the same
thing here, and they reject at save time what Dkron would silently have turned into a default.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "GoBool",
    "GoDuration",
    "OptionalGoDuration",
    "OptionalSize",
    "config_error",
    "format_go_duration",
    "parse_bool",
    "parse_go_duration",
    "parse_size",
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
_DURATION_HINT = 'a number and a unit (ns, us, ms, s, m, h), e.g. "30s", "1h30m" or "1.5h"'


def parse_go_duration(value: str) -> timedelta:
    """Parse a duration with Go's `time.ParseDuration` grammar.

    A sign is accepted, as Go accepts it; callers that need a positive duration check it.
    The result is rounded to the microsecond (timedelta's resolution; Go keeps nanoseconds).
    """
    s = value.strip()
    if not s:
        raise ValueError(f"empty duration: expected {_DURATION_HINT}")
    negative = s[0] == "-"
    if s[0] in "+-":
        s = s[1:]
    if s == "0":  # Go's special case: the only unit-less value it accepts
        return timedelta(0)
    if not s:
        raise ValueError(f"invalid duration {value!r}: expected {_DURATION_HINT}")
    total = Fraction(0)
    while s:
        number = _NUMBER.match(s)
        assert number is not None  # the pattern matches the empty string
        whole, frac = number.group(1), number.group(2) or ""
        if not whole and not frac:
            raise ValueError(f"invalid duration {value!r}: expected {_DURATION_HINT}")
        s = s[number.end() :]
        unit_match = _UNIT.match(s)
        unit = unit_match.group(0) if unit_match else ""
        if not unit:
            raise ValueError(f"missing unit in duration {value!r}: expected {_DURATION_HINT}")
        if unit not in _NS_PER_UNIT:
            raise ValueError(
                f"unknown unit {unit!r} in duration {value!r}: expected {_DURATION_HINT}"
            )
        s = s[len(unit) :]
        scale = _NS_PER_UNIT[unit]
        total += int(whole or "0") * scale
        if frac:
            total += Fraction(int(frac) * scale, 10 ** len(frac))
    nanoseconds = int(total)  # Go truncates the fraction of a nanosecond too
    if nanoseconds > _MAX_NS:
        raise ValueError(f"invalid duration {value!r}: longer than Go allows (about 292 years)")
    micros, rest = divmod(nanoseconds, 1_000)
    if rest >= 500:
        micros += 1
    return timedelta(microseconds=-micros if negative else micros)


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


def config_error(kind: str, message: str) -> PydanticCustomError:
    """A validation error whose message reaches the user verbatim (no "Value error, " prefix)."""
    return PydanticCustomError(kind, message, {})


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _to_bool(value: Any) -> Any:
    # Dkron's UI sends "" for an unset flag and Dkron reads that as false.
    if _is_blank(value):
        return False
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
    return None if _is_blank(value) else _to_duration(value)


def _to_optional_size(value: Any) -> Any:
    if _is_blank(value):
        return None
    if not isinstance(value, str | int):
        raise config_error("size", f"invalid size {value!r}: expected {_SIZE_HINT}")
    try:
        return parse_size(value)
    except ValueError as exc:
        raise config_error("size", str(exc)) from None


# Pydantic field types. Blank strings mean "unset" because Dkron's maps hold "" for unset keys.
GoBool = Annotated[bool, BeforeValidator(_to_bool)]
GoDuration = Annotated[timedelta, BeforeValidator(_to_duration)]
OptionalGoDuration = Annotated[timedelta | None, BeforeValidator(_to_optional_duration)]
OptionalSize = Annotated[int | None, BeforeValidator(_to_optional_size)]
