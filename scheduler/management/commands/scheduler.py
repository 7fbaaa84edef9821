"""`manage.py scheduler`: `celery beat` with the project's JobScheduler."""

from __future__ import annotations

from typing import Any

from celery import current_app as app
from django.core.management.base import BaseCommand

from scheduler.beat import configure


class Command(BaseCommand):
    help = "Start a scheduler (celery beat with scheduler.beat:JobScheduler)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("-l", "--loglevel", default="INFO")
        parser.add_argument(
            "--node-name",
            default=None,
            help="its member name in /v1/members and /v1/leader "
            "(default <DKRON_NODE_NAME>-scheduler; two schedulers on one host need two names)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        configure(member_name=opts["node_name"])
        app.start(["beat", "-S", "scheduler.beat:JobScheduler", "-l", opts["loglevel"]])
