"""The UI's Content-Security-Policy (django-csp), on /ui/ pages only.

The UI loads its one script and stylesheet from this server and has no inline script or style,
so the policy allows nothing else: an injected <script> or style="" does not run. The admin and
the browsable API are Django's and DRF's pages and keep their own behaviour.
"""

from __future__ import annotations

from csp.middleware import CSPMiddleware
from django.http import HttpRequest, HttpResponseBase

UI_PREFIX = "/ui/"


class UIContentSecurityPolicy(CSPMiddleware):
    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if not request.path_info.startswith(UI_PREFIX):
            return response
        return super().process_response(request, response)
