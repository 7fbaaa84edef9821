"""User-supplied regular expressions (http's `expectBody`): RE2, linear in the text, bounded.

Python's `re` backtracks: `(a+)+$` against thirty `a`s and a `!` takes minutes, holding the
interpreter (and with it the agent's heartbeat, /health, the job's timeout and kills). RE2
matches in time linear in the text, never backtracks, and refuses what it cannot do that way
(backreferences, lookaround), which is also Dkron's dialect: Go's `regexp` is RE2. The pattern
size and RE2's compiled-program memory are capped, so compiling a huge pattern is fast too.
"""

from __future__ import annotations

from typing import Any

import re2

__all__ = ["MAX_MEMORY", "MAX_PATTERN_BYTES", "RegexError", "compile_user_regex"]

MAX_PATTERN_BYTES = 64 * 1024
MAX_MEMORY = 8 * 1024 * 1024  # RE2's budget for the compiled program and its DFA cache


class RegexError(ValueError):
    """The pattern is too large or not RE2 syntax; the message says which."""


def _options() -> Any:
    options = re2.Options()
    options.max_mem = MAX_MEMORY
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    return options


def compile_user_regex(pattern: str) -> Any:
    """Compile a user's pattern with RE2 (Go's regexp syntax) or raise `RegexError`."""
    size = len(pattern.encode("utf-8", "surrogatepass"))
    if size > MAX_PATTERN_BYTES:
        raise RegexError(
            f"is {size} bytes; at most {MAX_PATTERN_BYTES} bytes are accepted for a pattern"
        )
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(
            f"is not a valid RE2 regular expression (Go's regexp syntax, as in Dkron: no "
            f"backreferences or lookaround): {reason}"
        ) from None
