"""dkronweb extensions to the /v1 API: the caller's API tokens, and the audit log."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import selectors
from jobs.models import ApiToken, AuditEntry
from jobs.services import tokens as token_services
from jobs.services.audit import Actor
from jobs.wire import ErrorSerializer
from web.api.permissions import can
from web.api.views import ERRORS, NOT_FOUND, ApiView, _query
from web.filters import JobPageFilter

AUDIT_PERM = "jobs.view_auditentry"
AUDIT_PAGE_MAX = 1000  # entries per answer; page with _start/_end (X-Total-Count has all)


class TokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's first characters, to recognise it")
    role = serializers.CharField(allow_null=True, help_text="Group limiting the token, or null")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used = serializers.DateTimeField(allow_null=True)
    revoked = serializers.BooleanField()


class NewTokenSerializer(TokenSerializer):
    key = serializers.CharField(help_text="The token itself: shown in this answer only")


class TokenInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    role = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="A group (read-only, operator, editor, code-editor...); empty: all of your "
        "permissions. A token never exceeds its user, nor the token that creates it.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "via", "action", "target", "detail"]


def token_to_dict(token: ApiToken) -> dict[str, Any]:
    """A token as the API shows it: never the key or its hash."""
    return {
        "id": token.pk,
        "name": token.name,
        "prefix": token.prefix,
        "role": token.role.name if token.role else None,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "last_used": token.last_used,
        "revoked": token.revoked,
    }


class TokensView(ApiView):
    @extend_schema(
        operation_id="listTokens",
        summary="Your API tokens (dkronweb extension); never the keys",
        responses={200: TokenSerializer(many=True), **ERRORS},
        tags=["tokens"],
    )
    def get(self, request: Request) -> Response:
        data = [token_to_dict(t) for t in token_services.token_list(user=request.user)]
        response = Response(TokenSerializer(data, many=True).data)
        response["X-Total-Count"] = str(len(data))
        return response

    @extend_schema(
        operation_id="createToken",
        summary="Create an API token for yourself; the key is in this answer only",
        request=TokenInputSerializer,
        responses={201: NewTokenSerializer, **ERRORS},
        tags=["tokens"],
    )
    def post(self, request: Request) -> Response:
        serializer = TokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        token, raw = token_services.token_create(
            user=request.user,
            name=data["name"],
            role=token_services.role_by_name(data.get("role")),
            expires_at=data.get("expires_at"),
            parent=request.auth if isinstance(request.auth, ApiToken) else None,
            actor=Actor.from_user(request.user),
        )
        body = {**token_to_dict(token), "key": raw}
        return Response(NewTokenSerializer(body).data, status=201)


class TokenView(ApiView):
    @extend_schema(
        operation_id="revokeToken",
        summary="Revoke one of your API tokens (at once)",
        responses={200: TokenSerializer, **ERRORS, **NOT_FOUND},
        tags=["tokens"],
    )
    def delete(self, request: Request, token_id: str) -> Response:
        token = token_services.token_get(user=request.user, token_id=token_id)
        token = token_services.token_revoke(
            token=token, caller=request.user, actor=Actor.from_user(request.user)
        )
        return Response(TokenSerializer(token_to_dict(token)).data)


class AuditView(ApiView):
    @extend_schema(
        operation_id="listAudit",
        summary="The audit log, newest first (dkronweb extension; needs jobs.view_auditentry)",
        parameters=[
            _query("action", str, "Only this action (create, run, kill, token_create...)"),
            _query("actor", str, "Only this username"),
            _query("target", str, "Only this target (a job name...)"),
            _query("_start", int, "First index of the page"),
            _query("_end", int, f"Index after the last of the page (at most {AUDIT_PAGE_MAX})"),
        ],
        responses={
            200: AuditEntrySerializer(many=True),
            **ERRORS,
            403: OpenApiResponse(ErrorSerializer, "Needs jobs.view_auditentry"),
        },
        tags=["audit"],
    )
    def get(self, request: Request) -> Response:
        if not can(request, AUDIT_PERM):
            raise PermissionDenied(f"reading the audit log needs {AUDIT_PERM}")
        qs = AuditEntry.objects.all()
        for key in ("action", "actor", "target"):
            value = request.query_params.get(key)
            if value:
                qs = qs.filter(**{key: value})
        total = qs.count()
        start, end = selectors.page_bounds(JobPageFilter.parse(request.query_params), total)
        end = min(end, start + AUDIT_PAGE_MAX)
        response = Response(AuditEntrySerializer(qs[start:end], many=True).data)
        response["X-Total-Count"] = str(total)
        return response
