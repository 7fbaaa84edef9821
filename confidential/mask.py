"""Write-only secrets: a config shown with its secrets masked, and a config sent back masked
merged over the stored one, each masked secret kept only while where it goes is unchanged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confidential.declare import DROP, MASK, URL, Path, Spec, describe, transform, transform_url
from confidential.declare import secret_values as _secret_values


class SecretNotKept(ValueError):
    """A masked (or omitted) secret cannot be kept: where it would go has changed."""

    def __init__(self, secret: str, destination: str) -> None:
        super().__init__(f"resend {secret}: {destination} changed")
        self.secret = secret
        self.destination = destination


def mask(spec: Spec, config: Mapping[str, Any]) -> dict[str, Any]:
    """Each non-empty secret value replaced by `MASK`; an empty one stays empty ("not set")."""
    return transform(spec, config, lambda _p, v: v if v in (None, "") else MASK)


def mask_header_pairs(pairs: Iterable[tuple[str, Any]]) -> list[str]:
    """Parsed "Name: value" pairs as shown by an executor's `debug` output: values masked."""
    return [f"{name}: {MASK if value else ''}".rstrip() for name, value in pairs]


def merge(
    spec: Spec, new: Mapping[str, Any], old: Mapping[str, Any], *, moved: str = ""
) -> dict[str, Any]:
    """The config to store when a client sends `new` over a stored `old` (write-only secrets).

    A secret key that `new` omits, or any secret value sent back as the mask it was shown,
    keeps its stored value; any other value (including "") replaces it. A mask with nothing
    stored behind it (a clone, a masked export restored elsewhere) means "not set" and is left
    out: the entry or key disappears rather than storing the mask as a password.

    A stored value is kept only while it would go where it went: every destination key equal
    to the stored one, the rest of a URL secret's own URL unchanged, and nothing `moved`
    outside the config (the executor). Otherwise `SecretNotKept` names the secret to resend,
    so nobody can point another user's stored secret at a server of their own.
    """
    keys, urls = set(spec.keys), dict(spec.urls)
    stored = _secret_values(spec, old)
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
        return DROP

    out = transform(spec, merged, restore)
    if kept:
        changed = [moved] if moved else []
        changed += [
            d
            for d in sorted(spec.destinations)
            if _where_to(out, d, urls) != _where_to(old, d, urls)
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
        return transform_url(value, key, URL, lambda _p, v: MASK)
    return value
