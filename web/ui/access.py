"""Who may see and do what in the UI: the API's rules, applied to pages and form posts.

Pages need a signed-in user (unless auth is switched off, as for the API). Actions are POSTs
that need the same model permissions as the API calls they mirror; a user without one sees no
button for it and gets a 403 page if they post anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.utils.functional import SimpleLazyObject

from jobs.models import AuditEntry
from jobs.services import cluster
from jobs.services.audit import Actor

EDIT = "jobs.change_job"
ADD = "jobs.add_job"
DELETE = "jobs.delete_job"
OPERATE = "jobs.operate_job"  # run now, toggle, kill
RUN_CODE = "jobs.run_code_jobs"

View = Callable[..., HttpResponse]


def actor(request: HttpRequest) -> Actor:
    """The signed-in user as the services' actor (for the run-code check and the audit log)."""
    return Actor.from_user(request.user, via=AuditEntry.Via.UI)


def allowed(request: HttpRequest, perm: str) -> bool:
    if not settings.AUTH_ENABLED:
        return True
    user = request.user
    return bool(user.is_authenticated and user.has_perm(perm))


def permissions(request: HttpRequest) -> dict[str, Any]:
    """Template context: `can.add`, `can.edit`, `can.delete`, `can.operate`, `can.run_code`,
    and `paused` (the cluster's pause flag, for the banner in base.html)."""
    if not hasattr(request, "user"):
        return {}
    return {
        "can": {
            "add": allowed(request, ADD),
            "edit": allowed(request, EDIT),
            "delete": allowed(request, DELETE),
            "operate": allowed(request, OPERATE),
            "run_code": allowed(request, RUN_CODE),
        },
        "auth_enabled": settings.AUTH_ENABLED,
        # Who paused job submissions and when, or None; lazy, so fragments cost no query.
        "paused": SimpleLazyObject(cluster.pause_flag),
    }


def forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "ui/forbidden.html", {"message": message}, status=403)


def page(view: View) -> View:
    """A page: signed-in users only (the login page otherwise)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.AUTH_ENABLED and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def action(*perms: str, methods: tuple[str, ...] = ("POST",)) -> Callable[[View], View]:
    """A state change: signed in, one of the HTTP `methods`, and every permission in `perms`."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if settings.AUTH_ENABLED and not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if request.method not in methods:
                return HttpResponseNotAllowed(list(methods))
            missing = [p for p in perms if not allowed(request, p)]
            if missing:
                return forbidden(request, f"You do not have permission to do this ({missing[0]}).")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
