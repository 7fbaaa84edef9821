"""The shape of a job's `notify` field, checked at save time and parsed again at send time.

    {
      "on": "on_failure",                  # always | on_failure | on_success | on_change | never
      "email": ["ops@example.com"],        # added to owner_email (a comma list string works too)
      "email_subject": "template",         # optional Django templates for the email
      "email_body": "template",
      "webhooks": [{"url": "https://hooks.example.com/x", "method": "POST",
                    "headers": {"Authorization": "Bearer ..."}, "body": "template",
                    "timeout": 10, "retries": 3}],
      "alerts": ["late", "recovered"]      # SLA events sent (jobs.services.sla); default all
    }

Unknown keys are errors (a typo must not silently switch a notification off). Numbers may
arrive as strings, as everywhere in Dkron's API.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.template import TemplateSyntaxError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import confidential
from jobs.notifications import render

Rule = Literal["always", "on_failure", "on_success", "on_change", "never"]
# The SLA events (jobs.services.sla): a rule breached, and one breach cleared.
AlertEvent = Literal["late", "overdue", "no_success", "failing", "recovered"]
ALERT_EVENTS: tuple[str, ...] = ("late", "overdue", "no_success", "failing", "recovered")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class InvalidNotify(Exception):
    """`errors` maps a dotted path inside `notify` (such as `webhooks.0.url`) to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _template(value: str) -> str:
    try:
        render.check_template(value)
    except (TemplateSyntaxError, render.RenderLimit) as exc:
        raise ValueError(f"template error: {exc}") from exc
    return value


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""
    timeout: float | None = Field(default=None, gt=0, le=300)
    retries: int | None = Field(default=None, ge=0, le=10)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        method = value.upper()
        if method not in METHODS:
            raise ValueError(f"must be one of {', '.join(METHODS)}")
        return method

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, template in value.items():
            if not name or any(c in name for c in " :\r\n"):
                raise ValueError(f"invalid header name {name!r}")
            _template(template)
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: str) -> str:
        return _template(value)


class Notify(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on: Rule | None = None
    email: list[str] = Field(default_factory=list)
    email_subject: str = ""
    email_body: str = ""
    webhooks: list[Webhook] = Field(default_factory=list)
    # None: every SLA event; [] none. Independent of `on`, which is about settled runs.
    alerts: list[AlertEvent] | None = None

    @field_validator("on", mode="before")
    @classmethod
    def _on(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @field_validator("email", mode="before")
    @classmethod
    def _email_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("email")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                validate_email(address)
            except DjangoValidationError:
                raise ValueError(f"{address!r} is not a valid email address") from None
        return value

    @field_validator("email_subject", "email_body")
    @classmethod
    def _templates(cls, value: str) -> str:
        return _template(value)


def parse(raw: Any) -> Notify:
    """The job's `notify` as a model; empty or null means nothing beyond the global settings."""
    if raw is None or raw == {}:
        return Notify()
    if not isinstance(raw, dict):
        raise InvalidNotify({"notify": "expected an object"})
    try:
        return Notify.model_validate(raw)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            path = ".".join(str(p) for p in error["loc"]) or "notify"
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            elif error["type"] == "literal_error" and path == "on":
                message = "use always, on_failure, on_success, on_change or never"
            elif error["type"] == "literal_error" and path.startswith("alerts"):
                message = f"use {', '.join(ALERT_EVENTS)}"
            errors[path] = message.removeprefix("Value error, ")
        raise InvalidNotify(errors) from None


# A webhook's URL path and query (Slack, Teams: the URL is the credential) and its header
# values (Authorization, API keys) are write-only, as executor secrets are: shown masked,
# kept when sent back masked while the URL is the same, encrypted at rest (jobs.secrets).
WEBHOOK_SECRETS = confidential.Spec(
    entries={"headers": confidential.HEADERS},
    urls={"url": confidential.WEBHOOK},
    destinations=frozenset({"url"}),
)
HEADER_MASK = confidential.MASK


def _hooks(notify: Any) -> list[Any] | None:
    if not isinstance(notify, dict) or not isinstance(notify.get("webhooks"), list):
        return None
    return list(notify["webhooks"])


def transform_secrets(notify: Any, fn: confidential.Fn) -> Any:
    """A copy of a job's `notify` with each webhook secret replaced by `fn(path, value)`;
    paths start with ("webhooks", index)."""
    hooks = _hooks(notify)
    if hooks is None:
        return notify

    def one(i: int, hook: dict[str, Any]) -> dict[str, Any]:
        def at(path: confidential.Path, value: Any) -> Any:
            return fn(("webhooks", i, *path), value)

        return confidential.transform(WEBHOOK_SECRETS, hook, at)

    out = [one(i, h) if isinstance(h, dict) else h for i, h in enumerate(hooks)]
    return {**notify, "webhooks": out}


def mask_secrets(notify: Any) -> Any:
    """A copy of a job's `notify` with every webhook secret masked: the URL's path and query
    (`https://hooks.example.com/********`) and each header value."""
    return transform_secrets(notify, lambda _p, v: v if v in (None, "") else HEADER_MASK)


def merge_secrets(new: Any, old: Any) -> Any:
    """The `notify` to store when a client sends `new` over a stored (plain) `old`.

    Each webhook sent is matched with the stored one whose masked URL it shows (else the one
    at its index), and merged as executor configs are (confidential.merge): masked values
    come back, unless the URL changed, when `SecretNotKept` names what to resend.
    """
    hooks = _hooks(new)
    if hooks is None:
        return new
    stored = [h for h in _hooks(old) or [] if isinstance(h, dict)]
    shown = [mask_secrets({"webhooks": [h]})["webhooks"][0].get("url") for h in stored]
    used: set[int] = set()
    out = []
    for i, hook in enumerate(hooks):
        if isinstance(hook, dict):
            same = (j for j, url in enumerate(shown) if j not in used and url == hook.get("url"))
            j = next(same, i if i < len(stored) and i not in used else None)
            match: dict[str, Any] = {}
            if j is not None:
                used.add(j)
                match = stored[j]
            try:
                hook = confidential.merge(WEBHOOK_SECRETS, hook, match)
            except confidential.SecretNotKept as exc:
                raise confidential.SecretNotKept(
                    f"webhooks.{i}.{exc.secret}", f"webhooks.{i}.{exc.destination}"
                ) from None
        out.append(hook)
    return {**new, "webhooks": out}
