"""What error reports (Django's debug 500 page, error mails) may show: no passwords, no secrets.

Django hides settings named like API, TOKEN, KEY, SECRET, PASS or SIGNATURE. Ours also carry
credentials under other names: the broker and database URLs (`redis://:password@host`), the
notification webhook (a Slack-style URL is itself the secret) and its headers. This filter
hides those whole and strips the password from any other URL it shows (settings, request META,
frame variables), with DEBUG on as well, where Django shows frame variables unfiltered.
"""

from __future__ import annotations

import re
from types import FrameType
from typing import Any

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@host -> scheme://user:********@host (also scheme://:password@host).
# A password holding an unescaped "/" or ":" is hidden too (up to the first "@").
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+?@", re.IGNORECASE)


def hide_url_passwords(text: str, substitute: str = "********") -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{substitute}@", text)


class SecretsFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|AUTHORIZATION|CREDENTIAL"
        "|DATABASE_URL|BROKER|WEBHOOK|HEADERS|DSN",
        flags=re.IGNORECASE,
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            # str(): a lazy string (django-csp's nonce) passes isinstance but is no str for re
            return hide_url_passwords(str(cleansed), self.cleansed_substitute)
        return cleansed

    def get_traceback_frame_variables(
        self, request: HttpRequest | None, tb_frame: FrameType
    ) -> Any:
        return [
            (name, self.cleanse_setting(name, value) if isinstance(value, str | dict) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
