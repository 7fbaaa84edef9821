"""Write-only secrets in executor configs: which values are secret, masking, merging, redaction.

An executor (or a notification webhook) declares three shapes of secret, and where they go:
1. `secret_keys`: the whole value of a top-level key (a SASL password).
2. `secret_entries`: keys holding named entries, each entry's value secret and its name not:
   an environment (`ENV`: Dkron's "K=V,K2=V2", a JSON object or a JSON array of "K=V") or
   headers / gRPC metadata (`HEADERS`: a JSON array of "Name: value", or a JSON object).
3. `secret_urls`: keys holding a URL whose credentials are secret and the rest is not
   (`URL`: the password of `user:password@` and key-like query parameters such as `api_key=`,
   `token=`, `sig=`; `WEBHOOK`: the path and query too, as in a Slack or Teams hook), so the
   URL stays readable: `http://user:********@host/path?api_key=********&page=2`.
4. `destination_keys`: the keys that decide where the secrets go (a URL, a broker, a region,
   the command or image that receives an environment). `merge` keeps a masked secret only
   while every destination key, and the rest of the secret's own URL, is unchanged; otherwise
   it raises `SecretNotKept` naming the secret to resend, so nobody can point another user's
   stored secret at a server of their own.

Every entry value is secret, whatever its name, as with webhook headers in notifications: a
name-based guess leaks DATABASE_URL=postgres://u:pw@db or MYSQL_PWD. The names stay readable so
a job can still be understood and edited, and a value sent back as `MASK` keeps the stored one.

Everything here is a walk over the secret values of a config (`transform`), so masking, merging,
encryption at rest (jobs.secrets) and output redaction always agree on what a secret is.
No Django and no crypto here: `executors/` stays free of both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote

__all__ = [
    "ENV",
    "HEADERS",
    "MASK",
    "REDACT_MIN_LENGTH",
    "URL",
    "WEBHOOK",
    "Path",
    "SecretNotKept",
    "Spec",
    "describe",
    "url_credentials",
    "guess_entries",
    "guess_keys",
    "mask",
    "mask_header_pairs",
    "merge",
    "output_secrets",
    "redact",
    "secret_values",
    "transform",
]

MASK = "********"
ENV = "env"  # entries "NAME=value"; Dkron's string form is a comma list
HEADERS = "headers"  # entries "Name: value"; the value is stripped, as the executors send it
URL = "url"  # a URL: the userinfo password and key-like query parameter values are secret
WEBHOOK = "webhook"  # a URL whose path and query are secret as well (Slack, Teams hooks)

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
# (key, "url", part, nth) for a part of the URL under `key`: "password", "path" or a query
# parameter's name.
Path = tuple[Any, ...]
_DROP = object()  # returned by a transform function: leave the entry (or key) out
Fn = Callable[[Path, Any], Any]

# Query parameter names whose values are credentials (compared lower-case, "-" as "_"): whole
# names, then words a longer name contains (x_amz_signature, private_token, client_secret).
_QUERY_NAMES = {"key", "sig", "pass", "pw", "pwd", "code", "auth"}
_QUERY_WORDS = ("key", "token", "secret", "passw", "signature", "credential", "auth", "session")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class Spec(NamedTuple):
    """What is secret in a config, and which keys decide where it goes."""

    keys: frozenset[str] = frozenset()
    entries: Mapping[str, str] = {}
    urls: Mapping[str, str] = {}
    destinations: frozenset[str] = frozenset()


class SecretNotKept(ValueError):
    """A masked (or omitted) secret cannot be kept: where it would go has changed."""

    def __init__(self, secret: str, destination: str) -> None:
        super().__init__(f"resend {secret}: {destination} changed")
        self.secret = secret
        self.destination = destination


def describe(path: Path) -> str:
    """How a message names the secret at `path`: `saslPassword`, `env DB_PASSWORD`,
    `url password`, `url api_key`."""
    if len(path) == 1:
        return str(path[0])
    if len(path) == 4:
        return f"{path[0]} {path[2]}"
    return f"{path[0]} {path[1]}"


def _query_name_is_secret(name: str) -> bool:
    name = unquote(name).lower().replace("-", "_")
    return name in _QUERY_NAMES or any(word in name for word in _QUERY_WORDS)


def _url_spans(url: str, kind: str) -> list[tuple[str, int, int]] | None:
    """The secret parts of `url` as (name, start, end); None when it is not a URL.

    String positions, not a parse and rebuild, so every other character stays as written.
    """
    match = _SCHEME.match(url)
    if not match:
        return None
    start = match.end()
    end = len(url)
    for sep in "/?#":
        at = url.find(sep, start)
        if at != -1:
            end = min(end, at)
    spans: list[tuple[str, int, int]] = []
    at = url.rfind("@", start, end)
    if at != -1:
        colon = url.find(":", start, at)
        if colon != -1 and colon + 1 < at:
            spans.append(("password", colon + 1, at))
    rest = end + 1 if url[end : end + 1] == "/" else end
    if kind == WEBHOOK:
        if rest < len(url):
            spans.append(("path", rest, len(url)))
        return spans
    query = url.find("?", end)
    if query == -1:
        return spans
    stop = url.find("#", query)
    stop = len(url) if stop == -1 else stop
    pos = query + 1
    for item in url[query + 1 : stop].split("&"):
        name, sep, value = item.partition("=")
        if sep and value and _query_name_is_secret(name):
            spans.append((unquote(name), pos + len(name) + 1, pos + len(item)))
        pos += len(item) + 1
    return spans


def url_credentials(text: str) -> list[str]:
    """The credentials inside a URL value (its password, key-like query values), as written
    and decoded: what output must not show of DATABASE_URL=postgres://u:pw@db/x."""
    found: list[str] = []
    for _name, start, end in _url_spans(text.strip(), URL) or ():
        raw = text.strip()[start:end]
        found.append(raw)
        if unquote(raw) != raw:
            found.append(unquote(raw))
    return found


def _url(value: str, key: str, kind: str, fn: Fn) -> Any:
    spans = _url_spans(value, kind)
    if spans is None:
        # Not a URL (an encrypted or masked whole value, or a typo): the whole value is secret.
        return fn((key,), value) if value not in (None, "") else value
    seen: dict[str, int] = {}
    out, last = [], 0
    for name, start, end in spans:
        nth = seen.get(name, 0)
        seen[name] = nth + 1
        new = fn((key, "url", name, nth), value[start:end])
        out.append(value[last:start])
        out.append("" if new is _DROP else str(new))
        last = end
    out.append(value[last:])
    return "".join(out)


def guess_keys(config: Mapping[str, Any]) -> set[str]:
    return {k for k in config if any(word in k.lower() for word in _SECRET_WORDS)}


def guess_entries(config: Mapping[str, Any]) -> dict[str, str]:
    return {k: _ENTRY_KEYS[k.lower()] for k in config if k.lower() in _ENTRY_KEYS}


def transform(
    config: Mapping[str, Any],
    *,
    keys: Iterable[str],
    entries: Mapping[str, str],
    fn: Fn,
    urls: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A copy of `config` with each secret value replaced by `fn(path, value)`.

    `fn` may return `_DROP` (through `merge`) to leave an entry or key out. Values that are not
    secret, and the container forms (string, JSON string, list, object), are kept as they are.
    """
    out = dict(config)
    keys = set(keys)
    for key, kind in (urls or {}).items():
        if key in out and key not in keys and isinstance(out[key], str):
            out[key] = _url(out[key], key, kind, fn)
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


def mask(
    config: Mapping[str, Any],
    *,
    keys: Iterable[str],
    entries: Mapping[str, str],
    urls: Mapping[str, str] | None = None,
) -> dict:
    """Each non-empty secret value replaced by `MASK`; an empty one stays empty ("not set")."""
    return transform(
        config,
        keys=keys,
        entries=entries,
        urls=urls,
        fn=lambda _p, v: v if v in (None, "") else MASK,
    )


def secret_values(
    config: Mapping[str, Any],
    *,
    keys: Iterable[str],
    entries: Mapping[str, str],
    urls: Mapping[str, str] | None = None,
) -> dict[Path, Any]:
    """Every secret value of `config` by its path (what `merge` restores and output hides)."""
    found: dict[Path, Any] = {}

    def collect(path: Path, value: Any) -> Any:
        found[path] = value
        return value

    transform(config, keys=keys, entries=entries, urls=urls, fn=collect)
    return found


def merge(
    new: Mapping[str, Any],
    old: Mapping[str, Any],
    *,
    keys: Iterable[str],
    entries: Mapping[str, str],
    urls: Mapping[str, str] | None = None,
    destinations: Iterable[str] = (),
    moved: str = "",
) -> dict[str, Any]:
    """The config to store when a client sends `new` over a stored `old` (write-only secrets).

    A secret key that `new` omits, or any secret value sent back as the mask it was shown,
    keeps its stored value; any other value (including "") replaces it. A mask with nothing
    stored behind it (a clone, a masked export restored elsewhere) means "not set" and is left
    out: the entry or key disappears rather than storing the mask as a password.

    A stored value is kept only while it would go where it went: every destination key equal
    to the stored one, the rest of a URL secret's own URL unchanged, and nothing `moved`
    outside the config (the executor). Otherwise `SecretNotKept` names the secret to resend.
    """
    keys, urls = set(keys), dict(urls or {})
    stored = secret_values(old, keys=keys, entries=entries, urls=urls)
    omitted = [k for k in sorted(keys) if k in old and k not in new and old[k] not in (None, "")]
    merged = {**{k: old[k] for k in keys if k in old and k not in new}, **new}
    kept: list[Path] = [(k,) for k in omitted]

    def restore(path: Path, value: Any) -> Any:
        if value != MASK:
            return value
        if path in stored:
            kept.append(path)
            return stored[path]
        if len(path) == 1 and path[0] in urls and old.get(path[0]) not in (None, ""):
            kept.append(path)  # a URL shown whole as the mask (stored before URLs were parsed)
            return old[path[0]]
        return _DROP

    out = transform(merged, keys=keys, entries=entries, urls=urls, fn=restore)
    if kept:
        changed = [moved] if moved else []
        changed += [
            d for d in sorted(destinations) if _where_to(out, d, urls) != _where_to(old, d, urls)
        ]
        for path in kept:
            own = path[0] if len(path) == 4 else None
            if (
                own
                and own not in changed
                and _where_to(out, own, urls) != _where_to(old, own, urls)
            ):
                raise SecretNotKept(describe(path), own)
            if changed:
                raise SecretNotKept(describe(path), changed[0])
    return out


def _where_to(config: Mapping[str, Any], key: str, urls: Mapping[str, str]) -> Any:
    """A destination key's value as compared by `merge`: a URL with its credentials masked
    (a resent password does not move it; a changed host, path or other parameter does)."""
    value = config.get(key)
    if key in urls and isinstance(value, str):
        return _url(value, key, URL, lambda _p, v: MASK)
    return value


# Env and header names whose values are also hidden in a run's output. Every entry value is
# write-only in the API, but scrubbing an ordinary value (GREETING=hello) from the output would
# mangle it, so output hides only the entries named like credentials.
_OUTPUT_SECRET_WORDS = (
    "pass", "pwd", "secret", "token", "key", "auth", "credential", "cookie", "session",
    "private", "cert", "dsn",
)  # fmt: skip


def hidden_in_output(path: Path) -> bool:
    """Whether the secret value at `path` (from `secret_values`) must be scrubbed from output:
    a whole secret key and a URL's credential always, an env or header entry when its name
    looks like a credential (and the credentials inside it when it is a URL: `output_secrets`).
    """
    if len(path) in (1, 4):
        return True
    name = str(path[1]).lower()
    return any(word in name for word in _OUTPUT_SECRET_WORDS)


def output_secrets(values: Mapping[Path, Any]) -> list[str]:
    """What a run's output must not show of a config's secret values (from `secret_values`):
    the values `hidden_in_output` picks, and the credentials inside any value that is a URL,
    whatever its name (DATABASE_URL=postgres://u:pw@db/x hides `pw`)."""
    found: list[str] = []
    for path, value in values.items():
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


def mask_header_pairs(pairs: Iterable[tuple[str, Any]]) -> list[str]:
    """Parsed "Name: value" pairs as shown by an executor's `debug` output: values masked."""
    return [f"{name}: {MASK if value else ''}".rstrip() for name, value in pairs]
