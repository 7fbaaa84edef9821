"""Strict readers of environment variables for dkronweb/settings.py, the one module that calls them.

Each reader returns the default when its variable is unset or blank and raises
ImproperlyConfigured naming the variable and its value when the value is not clearly what it
should be: a typo never means false, zero or "off" (Dkron's own mistake: lenient parsing). As
healthchecks' hc/settings.py (envbool, envint, envsecret), without a dependency: django-environ's
Env.bool() reads any unknown spelling as false, which is the behaviour this module exists to
refuse.
"""

from __future__ import annotations

import json
import math
import os
import re
from decimal import Decimal
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from executors.values import parse_go_duration

__all__ = [
    "env",
    "env_bool",
    "env_choice",
    "env_duration",
    "env_float",
    "env_int",
    "env_json_object",
    "env_list",
    "env_secret",
]


def env(name: str, default: str = "") -> str:
    """The raw value (a string setting such as a URL or a host name)."""
    return os.environ.get(name, default)


def env_secret(name: str, default: str = "") -> str:
    """NAME, or the contents of the file NAME_FILE names (Docker and Kubernetes secrets).

    One trailing newline run is dropped (`echo key > file` writes one). Both set is refused:
    which one wins would be a guess.
    """
    path = os.environ.get(f"{name}_FILE", "").strip()
    if not path:
        return env(name, default)
    if os.environ.get(name):
        raise ImproperlyConfigured(f"{name} and {name}_FILE are both set: set one of them")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().rstrip("\r\n") or default
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ImproperlyConfigured(f"{name}_FILE={path!r}: cannot read it ({reason})") from None


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_bool(name: str, default: bool) -> bool:
    """true/false, 1/0, yes/no, on/off (any case); anything else stops start-up.

    A typo must not mean false: DKRON_AUTH_ENABLED=flase used to turn authentication off.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected true or false (also 1/0, yes/no, on/off)")


# ASCII digits, an optional sign, a decimal point and an exponent: no "1_000" (Python's int()
# and float() take underscores, and other scripts' digits), no "nan" or "inf", no "0x10", no
# units ("256k").
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """A whole number of at least `minimum` (no dkronweb setting is negative)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not _INT.fullmatch(raw):
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a whole number")
    try:
        value = int(raw)
    except ValueError:  # more digits than Python converts
        raise ImproperlyConfigured(f"{name}={raw[:40]!r}...: expected a whole number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a whole number of at least {minimum}")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    """A finite number of at least `minimum` (no dkronweb setting is negative)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = float(raw) if _FLOAT.fullmatch(raw) else math.nan
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a number")
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a number of at least {minimum:g}")
    return value


def _split_list(text: str) -> list[str]:
    """Items separated by commas or newlines (a secret file may hold one key a line)."""
    return [item.strip() for item in re.split(r"[,\n]", text) if item.strip()]


def env_list(name: str, default: str = "", *, secret: bool = False) -> list[str]:
    """A comma-separated list; blanks between commas are dropped. `secret`: NAME_FILE too."""
    return _split_list(env_secret(name, default) if secret else env(name, default))


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, compared without case or surrounding blanks; returned as spelt there."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return default
    for choice in choices:
        if raw.strip().lower() == choice.lower():
            return choice
    expected = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
    raise ImproperlyConfigured(f"{name}={raw!r}: expected {expected}")


def env_json_object(name: str, *, secret: bool = False) -> dict[str, Any]:
    """A JSON object ({} when unset). `secret`: NAME_FILE too."""
    raw = (env_secret(name) if secret else env(name)).strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name}: expected a JSON object, got {type(value).__name__}")
    return value


# Go's time.ParseDuration has no days or weeks; settings keep them ("90d" is the documented
# retention) as 24h and 168h, rewritten before Go's parser sees the text.
_DAYS_OR_WEEKS = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([dw])")
_HOURS_PER = {"d": 24, "w": 168}
_BARE_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# ASCII digits and letters (Go's parser is given no other script's digits), "." and µ/μ (us).
_DURATION_CHARS = re.compile(r"[0-9A-Za-z.\u00b5\u03bc+-]+")
# "M" lower-cased would be minutes, while whoever wrote 6M likely meant six months.
_AMBIGUOUS_M = re.compile(r"M(?![sS])")
_DURATION_HINT = "a duration such as 90d, 12h, 1h30m, 45s or 250ms, or a number of seconds"


def env_duration(name: str, default: float) -> float:
    """Seconds, from Go's duration syntax (executors.values.parse_go_duration, the one the
    schedules' @every and the executors use) plus days (d) and weeks (w), units in any case
    but "M", or a bare number of seconds ("0" is zero). Never negative."""
    raw = os.environ.get(name, "")
    text = raw.strip()
    if not text:
        return default
    if _BARE_SECONDS.fullmatch(text):
        return float(text)
    if not _DURATION_CHARS.fullmatch(text):
        raise ImproperlyConfigured(f"{name}={raw!r}: expected {_DURATION_HINT}")
    if _AMBIGUOUS_M.search(text):
        raise ImproperlyConfigured(
            f"{name}={raw!r}: 'M' could be minutes or months; write m for minutes, d for days"
        )
    text = text.lower()
    if text[0] in "+-":  # Go takes a sign; no setting is a negative duration
        raise ImproperlyConfigured(f"{name}={raw!r}: expected {_DURATION_HINT}")
    text = _DAYS_OR_WEEKS.sub(
        lambda m: f"{Decimal(m[1]) * _HOURS_PER[m[2]]:f}h",
        text,
    )
    try:
        return parse_go_duration(text).total_seconds()
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected {_DURATION_HINT}") from None
