"""The Celery application: configured from Django settings (prefix CELERY_)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dkronweb.settings")

app = Celery("dkronweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["jobs"])


def _install_agent() -> None:
    # Imported lazily: jobs.agent needs Django settings, which are ready by now.
    from jobs.agent import install

    install(app)


_install_agent()
