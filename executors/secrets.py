"""Write-only secrets in executor configs: which values are secret, masking, merging, redaction.

An executor declares two shapes of secret:
1. `secret_keys`: the whole value of a top-level key (a SASL password, an amqp:// URL with
   credentials).
2. `secret_entries`: keys holding named entries, each entry's value secret and its name not:
   an environment (`ENV`: Dkron's "K=V,K2=V2", a JSON object or a JSON array of "K=V") or
   headers / gRPC metadata (`HEADERS`: a JSON array of "Name: value", or a JSON object).

Every entry value is secret, whatever its name, as with webhook headers in notifications: a
name-based guess leaks DATABASE_URL=postgres://u:pw@db or MYSQL_PWD. The names stay readable so
a job can still be understood and edited, and a value sent back as `MASK` keeps the stored one.

Everything here is a walk over the secret values of a config (`transform`), so masking, merging,
encryption at rest (jobs.secrets) and output redaction always agree on what a secret is.
No Django and no crypto here: `executors/` stays free of both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "ENV",
    "HEADERS",
    "MASK",
    "REDACT_MIN_LENGTH",
    "Path",
    "guess_entries",
    "guess_keys",
    "mask",
    "mask_header_pairs",
    "merge",
    "redact",
    "secret_values",
    "transform",
]

MASK = "********"
ENV = "env"  # entries "NAME=value"; Dkron's string form is a comma list
HEADERS = "headers"  # entries "Name: value"; the value is stripped, as the executors send it

# A secret value this short is not scrubbed from output: replacing every "1" or "ok" would
# garble the output and protect nothing.
REDACT_MIN_LENGTH = 4

# For an executor whose class cannot be loaded (plugin uninstalled): its declarations are
# unknown, so treat as secret anything whose key looks so rather than risk showing a password.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "apikey", "api_key")
_ENTRY_KEYS = {"env": ENV, "environment": ENV, "headers": HEADERS, "metadata": HEADERS}

# Where a secret value sits: (key,) for a top-level key, (key, name, nth) for the nth entry
# called `name` under `key` (headers may repeat a name). Masking keeps names and order, so the
# same path finds the stored value when a masked config comes back.
Path = tuple[Any, ...]
_DROP = object()  # returned by a transform function: leave the entry (or key) out
Fn = Callable[[Path, Any], Any]


def guess_keys(config: Mapping[str, Any]) -> set[str]:
    return {k for k in config if any(word in k.lower() for word in _SECRET_WORDS)}


def guess_entries(config: Mapping[str, Any]) -> dict[str, str]:
    return {k: _ENTRY_KEYS[k.lower()] for k in config if k.lower() in _ENTRY_KEYS}


def transform(
    config: Mapping[str, Any], *, keys: Iterable[str], entries: Mapping[str, str], fn: Fn
) -> dict[str, Any]:
    """A copy of `config` with each secret value replaced by `fn(path, value)`.

    `fn` may return `_DROP` (through `merge`) to leave an entry or key out. Values that are not
    secret, and the container forms (string, JSON string, list, object), are kept as they are.
    """
    out = dict(config)
    for key in keys:
        if key in out:
            value = fn((key,), out[key])
            if value is _DROP:
                del out[key]
            else:
                out[key] = value
    for key, kind in entries.items():
        if key in out and key not in keys and out[key] not in (None, ""):
            value = _entries(out[key], key, kind, fn)
            if value is _DROP:
                del out[key]
            else:
                out[key] = value
    return out


def _entries(value: Any, key: str, kind: str, fn: Fn) -> Any:
    seen: dict[str, int] = {}

    def one(name: str, val: Any) -> Any:
        nth = seen.get(name, 0)
        seen[name] = nth + 1
        return fn((key, name, nth), val)

    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            try:
                decoded = json.loads(text)
            except (ValueError, RecursionError):
                return fn((key,), value)  # not a form we know: the whole value is secret
            if isinstance(decoded, (list, dict)):
                new = _entries(decoded, key, kind, fn)
                # Unchanged: keep the client's own spelling of the JSON.
                return value if new == decoded else json.dumps(new, ensure_ascii=False)
        if kind != ENV:
            return fn((key,), value)
        return _env_string(value, one)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, val in value.items():
            new = one(str(name).strip(), val)
            if new is not _DROP:
                out[name] = new
        return out
    if isinstance(value, list):
        items = []
        for item in value:
            new = _list_item(item, kind, one, lambda v: fn((key,), v))
            if new is not _DROP:
                items.append(new)
        return items
    return fn((key,), value)


def _list_item(
    item: Any, kind: str, one: Callable[[str, Any], Any], opaque: Callable[[Any], Any]
) -> Any:
    sep = "=" if kind == ENV else ":"
    if not isinstance(item, str) or sep not in item:
        return opaque(item)
    name, _, val = item.partition(sep)
    val = val if kind == ENV else val.strip()
    new = one(name.strip(), val)
    if new is _DROP or new == val:
        return item if new is not _DROP else _DROP
    return f"{name}={new}" if kind == ENV else f"{name}: {new}"


def _env_string(value: str, one: Callable[[str, Any], Any]) -> Any:
    """Dkron's "K=V,K2=V2": split on commas (values cannot hold one), each entry on the first '='.

    A value restored from a stored JSON form may hold a comma; the string form cannot carry it,
    so the result becomes a JSON object (every executor with an env accepts one).
    """
    pairs: list[tuple[str, Any]] = []
    changed = False
    for item in value.split(","):
        if not item.strip():
            continue
        name, sep, val = item.partition("=")
        if not sep:
            pairs.append((item, None))  # invalid; kept for the validator to name
            continue
        new = one(name.strip(), val)
        changed = changed or new is _DROP or new != val
        if new is not _DROP:
            pairs.append((name, new))
    if not changed:
        return value
    if any(isinstance(v, str) and "," in v for _, v in pairs):
        return {name.strip(): v for name, v in pairs if v is not None}
    return ",".join(name if v is None else f"{name}={v}" for name, v in pairs)


def mask(config: Mapping[str, Any], *, keys: Iterable[str], entries: Mapping[str, str]) -> dict:
    """Each non-empty secret value replaced by `MASK`; an empty one stays empty ("not set")."""
    return transform(
        config, keys=keys, entries=entries, fn=lambda _p, v: v if v in (None, "") else MASK
    )


def secret_values(
    config: Mapping[str, Any], *, keys: Iterable[str], entries: Mapping[str, str]
) -> dict[Path, Any]:
    """Every secret value of `config` by its path (what `merge` restores and output hides)."""
    found: dict[Path, Any] = {}

    def collect(path: Path, value: Any) -> Any:
        found[path] = value
        return value

    transform(config, keys=keys, entries=entries, fn=collect)
    return found


def merge(
    new: Mapping[str, Any],
    old: Mapping[str, Any],
    *,
    keys: Iterable[str],
    entries: Mapping[str, str],
) -> dict[str, Any]:
    """The config to store when a client sends `new` over a stored `old` (write-only secrets).

    A secret key that `new` omits, or any secret value sent back as the mask it was shown,
    keeps its stored value; any other value (including "") replaces it. A mask with nothing
    stored behind it (a clone, a masked export restored elsewhere) means "not set" and is left
    out: the entry or key disappears rather than storing the mask as a password.
    """
    keys = set(keys)
    stored = secret_values(old, keys=keys, entries=entries)
    merged = {**{k: old[k] for k in keys if k in old and k not in new}, **new}

    def restore(path: Path, value: Any) -> Any:
        if value != MASK:
            return value
        return stored.get(path, _DROP)

    return transform(merged, keys=keys, entries=entries, fn=restore)


# Env and header names whose values are also hidden in a run's output. Every entry value is
# write-only in the API, but scrubbing an ordinary value (GREETING=hello) from the output would
# mangle it, so output hides only the entries named like credentials.
_OUTPUT_SECRET_WORDS = (
    "pass", "pwd", "secret", "token", "key", "auth", "credential", "cookie", "session",
    "private", "cert", "dsn",
)  # fmt: skip


def hidden_in_output(path: Path) -> bool:
    """Whether the secret value at `path` (from `secret_values`) must be scrubbed from output:
    a whole secret key always, an env or header entry when its name looks like a credential."""
    if len(path) == 1:
        return True
    name = str(path[1]).lower()
    return any(word in name for word in _OUTPUT_SECRET_WORDS)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of a secret value replaced by `MASK` (longest first, so a
    secret that contains another is hidden whole)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= REDACT_MIN_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_header_pairs(pairs: Iterable[tuple[str, Any]]) -> list[str]:
    """Parsed "Name: value" pairs as shown by an executor's `debug` output: values masked."""
    return [f"{name}: {MASK if value else ''}".rstrip() for name, value in pairs]
