"""The API's body parsing: JSON whatever the Content-Type says (as Dkron), never a 500."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError, PermissionDenied
from rest_framework.negotiation import DefaultContentNegotiation


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a body nested deeper than Python's recursion limit is a 400."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON nested too deeply") from None


class AnyContentTypeNegotiation(DefaultContentNegotiation):
    """Dkron binds every body as JSON (gin's BindJSON) whatever the Content-Type says, and its
    clients send `text/plain`, `encoding/json` or none at all: a view that takes JSON parses
    those as JSON instead of answering 415. Views with other parsers (restore's multipart)
    keep DRF's choice, and an overlong Content-Type is still a 415.

    CSRF is not weakened: a session-authenticated request has already passed DRF's CSRF check
    (SessionAuthentication runs before the body is read). What the 415 also stopped was a form
    on another site posting `text/plain`, which needs no CORS preflight, to a server that
    checks no credentials (DKRON_AUTH_ENABLED=false) or to a browser holding Basic
    credentials; such a request carries the browser's `Origin` header, so a non-JSON body
    from a foreign origin is refused (403). Dkron clients send no Origin."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        parser = super().select_parser(request, parsers)
        too_long = len(request.content_type) > getattr(self, "max_media_type_length", 256)
        if parser is not None or too_long:
            return parser
        json_parser = next((p for p in parsers if isinstance(p, JSONParser)), None)
        if json_parser is not None:
            _refuse_cross_site(request)
        return json_parser


def _refuse_cross_site(request: Any) -> None:
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        return
    if origin == f"{request.scheme}://{request.get_host()}":
        return
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return
    raise PermissionDenied(
        f"cross-site request from {origin} refused: "
        "send the body as application/json (or drop the Origin header)"
    )
