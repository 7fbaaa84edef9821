"""The signed-in user's API tokens: list, create (the key is shown once, on that answer only)
and revoke. Everything goes through jobs.services.tokens, as the /v1/tokens API does."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import Group
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from jobs.errors import DomainError, NotFound
from jobs.services import tokens as token_services
from web.ui import access


def _page(request: HttpRequest, *, status: int = 200, **extra: object) -> HttpResponse:
    context = {
        "tokens": list(token_services.token_list(user=request.user)),
        "roles": list(Group.objects.order_by("name").values_list("name", flat=True)),
        **extra,
    }
    response = render(request, "ui/tokens.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the answer to a create holds the key
    return response


@access.action(methods=("GET", "POST"))
def tokens(request: HttpRequest) -> HttpResponse:
    """GET: the list and the form. POST: create, and show the key on this answer only."""
    if not request.user.is_authenticated:
        return access.forbidden(request, "Sign in to manage API tokens.")
    if request.method == "GET":
        return _page(request)
    name = request.POST.get("name", "")
    try:
        token, raw = token_services.token_create(
            user=request.user,
            name=name,
            role=token_services.role_by_name(request.POST.get("role") or None),
            actor=access.actor(request),
        )
    except DomainError as exc:
        return _page(request, status=exc.status_code, error=exc.message, name=name)
    return _page(request, status=201, created=token, key=raw)


@access.action()
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        token = token_services.token_get(user=request.user, token_id=pk)
    except NotFound:
        raise Http404("token not found") from None
    token_services.token_revoke(token=token, actor=access.actor(request))
    messages.success(request, f"Token {token.name} ({token.prefix}…) revoked")
    return redirect("ui-tokens")
