"""OpenAPI generation details: Dkron's paths without trailing slashes, and the token schemes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


def dkron_paths(endpoints: list[Any]) -> list[Any]:
    """Document each route once, the way Dkron spells it (`/v1/jobs`, not `/v1/jobs/`)."""
    result = []
    for path, path_regex, method, callback in endpoints:
        if path.endswith("/openapi.json"):
            continue  # the document does not describe itself
        if path.endswith("/"):
            path = path.rstrip("/") or "/"
        result.append((path, path_regex, method, callback))
    return result


def document_auth_errors(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Every secured operation can answer 401 (no or a bad credential): say so in each one,
    with the error shape, so clients and schema checks (tests/web/api/test_fuzz.py) expect it."""
    unauthorized = {
        "description": "Not authenticated",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and operation.get("security"):
                operation.get("responses", {}).setdefault("401", unauthorized)
    return result


def document_plain_text_errors(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Every error is Dkron's plain text unless the client asks for JSON (web.api.errors):
    next to each JSON error shape, document the text/plain body. Runs after
    document_auth_errors, so the 401s get it too."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for code, response in operation.get("responses", {}).items():
                content = response.get("content") if isinstance(response, dict) else None
                error = str(code).isdigit() and int(code) >= 400
                if error and isinstance(content, dict) and "application/json" in content:
                    content.setdefault(
                        "text/plain",
                        {"schema": {"type": "string", "description": "The error text"}},
                    )
    return result


class TokenAuthScheme(OpenApiAuthenticationExtension):
    target_class = "web.api.auth.TokenAuthentication"
    name = ["BearerAuth", "TokenAuth"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"BearerAuth": []}, {"TokenAuth": []}]  # either one (OR), not both

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {"type": "http", "scheme": "bearer", "description": "An API token"},
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Dkron-Token",
                "description": "An API token in Dkron Pro's header",
            },
        ]


class BasicAuthScheme(OpenApiAuthenticationExtension):
    """HTTP Basic with a Django user (web.api.auth.BasicAuthentication: axes' lockout)."""

    target_class = "web.api.auth.BasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "basic"}
