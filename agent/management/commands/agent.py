"""`manage.py agent --tag k=v`: a thin wrapper over `celery worker` for the agent role.

Celery's node name follows --node-name (`<name>@<host>`) here as with `celery worker`; a `-n`
among the extra arguments wins. It runs the agent's system checks only (`jobs.checks.AGENT_TAGS`),
not the URL or template checks nor the one that imports every executor: those would load the
web role and every client library into the agent. See docs/agents.md.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from jobs.checks import AGENT_TAGS


class Command(BaseCommand):
    help = "Start an agent (a Celery worker with node tags). Extra args go to celery worker."
    requires_system_checks = list(AGENT_TAGS)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tag", action="append", default=[], help="node tag key=value")
        parser.add_argument("--node-name", default=None)
        parser.add_argument("-c", "--concurrency", type=int, default=4)
        parser.add_argument("--pool", default="prefork")
        parser.add_argument("-l", "--loglevel", default="INFO")
        parser.add_argument("celery_args", nargs="*")

    def handle(self, *args: Any, **opts: Any) -> None:
        from celery import current_app as app

        argv = ["worker", "-l", opts["loglevel"], "-c", str(opts["concurrency"])]
        argv += ["--pool", opts["pool"], "--without-mingle", "--without-gossip"]
        for tag in opts["tag"]:
            argv += ["--tag", tag]
        if opts["node_name"]:
            argv += ["--node-name", opts["node_name"], "-n", f"{opts['node_name']}@%h"]
        app.worker_main(argv + list(opts["celery_args"]))
