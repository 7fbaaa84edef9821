"""App config: system checks and the auth-off warning live here."""

import logging

from django.apps import AppConfig

log = logging.getLogger("dkronweb")


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from jobs import checks  # registers system checks

        loose = checks.loose_data_files()
        if loose:
            log.warning(
                "the data directory or database is readable by other users: %s; run chmod 700 "
                "on the directory and chmod 600 on its files",
                ", ".join(loose),
            )

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
