"""What a run's output must not show of the secrets it knows, and the output with them masked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from confidential.declare import MASK, URL, Path, Spec, secret_values, url_spans

# A secret value this short is not scrubbed from output: replacing every "1" or "ok" would
# garble the output and protect nothing.
REDACT_MIN_LENGTH = 4

# Env and header names whose values are also hidden in a run's output. Every entry value is
# write-only in the API, but scrubbing an ordinary value (GREETING=hello) from the output would
# mangle it, so output hides only the entries named like credentials.
_OUTPUT_SECRET_WORDS = (
    "pass", "pwd", "secret", "token", "key", "auth", "credential", "cookie", "session",
    "private", "cert", "dsn",
)  # fmt: skip


def url_credentials(text: str) -> list[str]:
    """The credentials inside a URL value (its password, key-like query values), as written
    and decoded: what output must not show of DATABASE_URL=postgres://u:pw@db/x."""
    found: list[str] = []
    for _name, start, end in url_spans(text.strip(), URL) or ():
        raw = text.strip()[start:end]
        found.append(raw)
        if unquote(raw) != raw:
            found.append(unquote(raw))
    return found


def hidden_in_output(path: Path) -> bool:
    """Whether the secret value at `path` (from `secret_values`) must be scrubbed from output:
    a whole secret key and a URL's credential always, an env or header entry when its name
    looks like a credential (and the credentials inside it when it is a URL: `output_secrets`).
    """
    if len(path) in (1, 4):
        return True
    name = str(path[1]).lower()
    return any(word in name for word in _OUTPUT_SECRET_WORDS)


def output_secrets(spec: Spec, config: Mapping[str, Any]) -> list[str]:
    """What a run's output must not show of the secret values of a (plain) config: the values
    `hidden_in_output` picks, and the credentials inside any value that is a URL, whatever its
    name (DATABASE_URL=postgres://u:pw@db/x hides `pw`)."""
    found: list[str] = []
    for path, value in secret_values(spec, config).items():
        if not isinstance(value, str) or not value:
            continue
        if hidden_in_output(path):
            found.append(value)
        found.extend(url_credentials(value))
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of a secret value replaced by `MASK` (longest first, so a
    secret that contains another is hidden whole)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= REDACT_MIN_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    return text
