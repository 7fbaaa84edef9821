"""WSGI entry point (gunicorn dkronweb.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dkronweb.settings")
application = get_wsgi_application()
