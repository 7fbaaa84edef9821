"""The shape of a job's `notify` field, checked at save time and parsed again at send time.

    {
      "on": "on_failure",                  # always | on_failure | on_success | on_change | never
      "email": ["ops@example.com"],        # added to owner_email (a comma list string works too)
      "email_subject": "template",         # optional Django templates for the email
      "email_body": "template",
      "webhooks": [{"url": "https://hooks.example.com/x", "method": "POST",
                    "headers": {"Authorization": "Bearer ..."}, "body": "template",
                    "timeout": 10, "retries": 3}]
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

from jobs.notifications import render

Rule = Literal["always", "on_failure", "on_success", "on_change", "never"]
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
            errors[path] = message.removeprefix("Value error, ")
        raise InvalidNotify(errors) from None


# Webhook headers usually carry credentials (Authorization, API keys): responses and forms
# show them masked, and a masked value sent back keeps the stored one.
HEADER_MASK = "********"


def mask_headers(notify: Any) -> Any:
    """A copy of a job's `notify` with every webhook header value masked."""
    if not isinstance(notify, dict) or not isinstance(notify.get("webhooks"), list):
        return notify
    hooks = []
    for hook in notify["webhooks"]:
        if isinstance(hook, dict) and isinstance(hook.get("headers"), dict):
            hook = {
                **hook,
                "headers": {k: HEADER_MASK if v else v for k, v in hook["headers"].items()},
            }
        hooks.append(hook)
    return {**notify, "webhooks": hooks}


def keep_masked_headers(new: Any, old: Any) -> Any:
    """Replace masked header values in `new` by the stored ones of the same webhook URL."""
    if not isinstance(new, dict) or not isinstance(new.get("webhooks"), list):
        return new
    stored: dict[str, dict[str, Any]] = {}
    if isinstance(old, dict) and isinstance(old.get("webhooks"), list):
        for hook in old["webhooks"]:
            if isinstance(hook, dict) and isinstance(hook.get("headers"), dict):
                stored[str(hook.get("url"))] = hook["headers"]
    hooks = []
    for hook in new["webhooks"]:
        if isinstance(hook, dict) and isinstance(hook.get("headers"), dict):
            old_headers = stored.get(str(hook.get("url")), {})
            headers = {
                k: old_headers.get(k, "") if v == HEADER_MASK else v
                for k, v in hook["headers"].items()
            }
            hook = {**hook, "headers": headers}
        hooks.append(hook)
    return {**new, "webhooks": hooks}
