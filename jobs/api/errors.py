"""JSON errors for every API failure: {"error": "...", "details": {...}} with the right status."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from jobs.api.serializers import first_message, validation_message
from jobs.errors import DomainError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response({"error": exc.message, "details": exc.details}, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {"error": f"request body too large (limit {limit} bytes)", "details": {"limit": limit}},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):
        return Response({"error": f"bad request: {exc}", "details": {}}, status=400)
    if isinstance(exc, Http404):
        return Response({"error": "not found", "details": {}}, status=404)
    if isinstance(exc, exceptions.ParseError):
        return Response(
            {"error": f"Unable to parse payload: {exc.detail}", "details": {}},
            status=status.HTTP_400_BAD_REQUEST,
        )
    response = drf_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(exc, exceptions.ValidationError):
        message = validation_message(exc)
        details = detail if isinstance(detail, dict) else {"non_field_errors": detail}
    else:
        message = first_message(
            detail.get("detail", detail) if isinstance(detail, dict) else detail
        )
        details = {}
    response.data = {"error": message, "details": details}
    return response
