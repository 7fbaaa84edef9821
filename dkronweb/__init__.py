"""dkronweb: a Dkron-compatible distributed job scheduler on Django and Celery."""

from dkronweb.celery import app as celery_app

__all__ = ["celery_app"]
__version__ = "0.1.0"
