"""A URL that fails, to look at the 500 page (tests/operations/test_fail_closed_settings.py)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def boom(request: HttpRequest) -> HttpResponse:
    upstream = request.headers.get("X-Upstream", "")  # a local variable the debug page lists
    raise RuntimeError(f"cannot reach the broker ({len(upstream)})")


urlpatterns = [path("boom", boom)]
