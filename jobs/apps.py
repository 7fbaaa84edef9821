"""App config: system checks and the auth-off warning live here."""

import logging
from typing import Any

from django.apps import AppConfig

log = logging.getLogger("dkronweb")


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings
        from django.contrib.auth.signals import user_login_failed

        from jobs import checks  # registers system checks

        loose = checks.loose_data_files()
        if loose:
            log.warning(
                "the data directory or database is readable by other users: %s; run chmod 700 "
                "on the directory and chmod 600 on its files",
                ", ".join(loose),
            )

        # Admin and UI logins fail inside Django's own views: the signal is the one hook.
        user_login_failed.connect(_login_failed, dispatch_uid="dkronweb-login-failed")

        if not settings.AUTH_ENABLED:
            override = (
                " (DKRON_ENV=production with DKRON_PRODUCTION_ALLOW_AUTH_OFF=true)"
                if settings.PRODUCTION
                else ""
            )
            log.warning(
                "AUTHENTICATION IS OFF (DKRON_AUTH_ENABLED=false%s): anyone who can reach this "
                "port can create and run jobs. Use this only on a trusted network.",
                override,
            )


def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    from axes.helpers import get_client_ip_address

    from jobs.services.audit import audit_login_failed

    if request is None:
        return  # authenticate() without a request (a management command): no door, no address
    path = getattr(request, "path", "")
    via = "admin" if path.startswith("/admin") else "ui" if path.startswith("/ui") else "api"
    audit_login_failed(
        username=str(credentials.get("username", ""))[:150],
        ip=get_client_ip_address(request) or "",
        via=via,
        locked_out=bool(getattr(request, "axes_locked_out", False)),
    )
