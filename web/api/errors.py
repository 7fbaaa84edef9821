"""Every API failure as Dkron writes it: its status and its text, as plain text, or as JSON
`{"error": "<the same text>", "details": {...}}` for a client that asks for JSON.

Dkron writes most errors as a plain-text body (`c.Writer.WriteString`) and clients compare
that body with the message (`specified parent job not found`). A client sending
`Accept: application/json` (the Dkron UI, scripts wanting the field details) or `text/html`
(the browsable API) gets the structured form instead; the text is the same in both.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpResponse
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from jobs.errors import DomainError
from jobs.wire import first_message, validation_message

STRUCTURED_TYPES = ("application/json", "text/html")  # what our renderers answer by name


def wants_structured(request: Request | None) -> bool:
    """Whether the client named JSON (or HTML) in Accept; `*/*` or none means Dkron's text."""
    accept = request.META.get("HTTP_ACCEPT", "") if request is not None else ""
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media in STRUCTURED_TYPES or media.endswith("+json"):
            return True
    return False


def _error(
    exc: Exception, context: dict[str, Any]
) -> tuple[int, str, dict[str, Any], dict[str, str]] | None:
    """(status, Dkron's text, details, headers) for an exception, or None if not ours."""
    if isinstance(exc, DomainError):
        return exc.status_code, exc.message, exc.details, {}
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        text = f"request body too large (limit {limit} bytes)"
        return status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, text, {"limit": limit}, {}
    if isinstance(exc, SuspiciousOperation):
        return 400, f"bad request: {exc}", {}, {}
    if isinstance(exc, Http404):
        return 404, "not found", {}, {}
    if isinstance(exc, exceptions.ParseError):
        return 400, f"Unable to parse payload: {str(exc.detail).rstrip('.')}.", {}, {}
    response = drf_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    headers = {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After")}
    if isinstance(exc, exceptions.ValidationError):
        details = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        return response.status_code, validation_message(exc), details, headers
    text = first_message(detail.get("detail", detail) if isinstance(detail, dict) else detail)
    return response.status_code, text, {}, headers


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    error = _error(exc, context)
    if error is None:
        return None
    code, text, details, headers = error
    response: HttpResponse
    if wants_structured(context.get("request")):
        response = Response({"error": text, "details": details}, status=code)
    else:
        response = HttpResponse(text, status=code, content_type="text/plain; charset=utf-8")
    for key, value in headers.items():
        response[key] = value
    return response
