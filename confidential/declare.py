"""What is secret in a config: a `Spec` of its secret keys, entries and URLs, and the walk
(`transform`) over the secret values it names, which every other part of `confidential` uses.

Three shapes of secret, and the keys that decide where they go:
1. `keys`: the whole value of a top-level key (a SASL password).
2. `entries`: keys holding named entries, each entry's value secret and its name not:
   an environment (`ENV`: Dkron's "K=V,K2=V2", a JSON object or a JSON array of "K=V") or
   headers / gRPC metadata (`HEADERS`: a JSON array of "Name: value", or a JSON object).
3. `urls`: keys holding a URL whose credentials are secret and the rest is not
   (`URL`: the password of `user:password@` and key-like query parameters such as `api_key=`,
   `token=`, `sig=`; `WEBHOOK`: the path and query too, as in a Slack or Teams hook), so the
   URL stays readable: `http://user:********@host/path?api_key=********&page=2`.
4. `destinations`: the keys that decide where the secrets go (a URL, a broker, a region, the
   command or image that receives an environment); `confidential.merge` keeps a masked secret
   only while they are unchanged.

Every entry value is secret, whatever its name, as with webhook headers in notifications: a
name-based guess leaks DATABASE_URL=postgres://u:pw@db or MYSQL_PWD. The names stay readable so
a job can still be understood and edited, and a value sent back as `MASK` keeps the stored one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote

MASK = "********"
ENV = "env"  # entries "NAME=value"; Dkron's string form is a comma list
HEADERS = "headers"  # entries "Name: value"; the value is stripped, as the executors send it
URL = "url"  # a URL: the userinfo password and key-like query parameter values are secret
WEBHOOK = "webhook"  # a URL whose path and query are secret as well (Slack, Teams hooks)

# Where a secret value sits: (key,) for a top-level key, (key, name, nth) for the nth entry
# called `name` under `key` (headers may repeat a name). Masking keeps names and order, so the
# same path finds the stored value when a masked config comes back.
# (key, "url", part, nth) for a part of the URL under `key`: "password", "path" or a query
# parameter's name.
Path = tuple[Any, ...]
Fn = Callable[[Path, Any], Any]
# Returned by a transform function: leave the entry (or key) out (`confidential.merge`).
DROP = object()

# For a config whose declaration is unknown (its executor's plugin uninstalled): treat as
# secret anything whose key looks so rather than risk showing a password.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "apikey", "api_key")
_ENTRY_KEYS = {"env": ENV, "environment": ENV, "headers": HEADERS, "metadata": HEADERS}

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


def guess(config: Mapping[str, Any]) -> Spec:
    """The spec of a config whose declaration is unknown: any key that looks secret is, an
    `env` / `headers` / `metadata` key holds entries, and every other key is a destination
    (a masked secret is kept only when nothing else changed)."""
    keys = frozenset(k for k in config if any(word in k.lower() for word in _SECRET_WORDS))
    entries = {k: _ENTRY_KEYS[k.lower()] for k in config if k.lower() in _ENTRY_KEYS}
    return Spec(keys=keys, entries=entries, destinations=frozenset(config) - keys - set(entries))


def describe(path: Path) -> str:
    """How a message names the secret at `path`: `saslPassword`, `env DB_PASSWORD`,
    `url password`, `url api_key`."""
    if len(path) == 1:
        return str(path[0])
    if len(path) == 4:
        return f"{path[0]} {path[2]}"
    return f"{path[0]} {path[1]}"


def transform(spec: Spec, config: Mapping[str, Any], fn: Fn) -> dict[str, Any]:
    """A copy of `config` with each secret value replaced by `fn(path, value)`.

    `fn` may return `DROP` (through `merge`) to leave an entry or key out. Values that are not
    secret, and the container forms (string, JSON string, list, object), are kept as they are.
    """
    out = dict(config)
    keys = set(spec.keys)
    for key, kind in spec.urls.items():
        if key in out and key not in keys and isinstance(out[key], str):
            out[key] = transform_url(out[key], key, kind, fn)
    for key in keys:
        if key in out:
            value = fn((key,), out[key])
            if value is DROP:
                del out[key]
            else:
                out[key] = value
    for key, kind in spec.entries.items():
        if key in out and key not in keys and out[key] not in (None, ""):
            value = _entries(out[key], key, kind, fn)
            if value is DROP:
                del out[key]
            else:
                out[key] = value
    return out


def secret_values(spec: Spec, config: Mapping[str, Any]) -> dict[Path, Any]:
    """Every secret value of `config` by its path (what `merge` restores and output hides)."""
    found: dict[Path, Any] = {}

    def collect(path: Path, value: Any) -> Any:
        found[path] = value
        return value

    transform(spec, config, collect)
    return found


def _query_name_is_secret(name: str) -> bool:
    name = unquote(name).lower().replace("-", "_")
    return name in _QUERY_NAMES or any(word in name for word in _QUERY_WORDS)


def url_spans(url: str, kind: str) -> list[tuple[str, int, int]] | None:
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


def transform_url(value: str, key: str, kind: str, fn: Fn) -> Any:
    """`value`, the URL under `key`, with each secret part replaced by `fn(path, part)`."""
    spans = url_spans(value, kind)
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
        out.append("" if new is DROP else str(new))
        last = end
    out.append(value[last:])
    return "".join(out)


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
            if new is not DROP:
                out[name] = new
        return out
    if isinstance(value, list):
        items = []
        for item in value:
            new = _list_item(item, kind, one, lambda v: fn((key,), v))
            if new is not DROP:
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
    if new is DROP or new == val:
        return item if new is not DROP else DROP
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
        changed = changed or new is DROP or new != val
        if new is not DROP:
            pairs.append((name, new))
    if not changed:
        return value
    if any(isinstance(v, str) and "," in v for _, v in pairs):
        return {name.strip(): v for name, v in pairs if v is not None}
    return ",".join(name if v is None else f"{name}={v}" for name, v in pairs)
