"""`manage.py serve`: the embedded default, every role in one process (Dkron's single binary).

Web (waitress) in the main thread; a real Celery worker (threads pool) over the in-process
broker, and the scheduler (celery beat with JobScheduler) in threads. Ctrl-C stops all three.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from celery import beat
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from dkronweb.celery import app
from dkronweb.webserver import make_server
from dkronweb.wsgi import application
from jobs.bootstrap import bootstrap_admin
from jobs.dispatch import node_queue
from jobs.node import configure, parse_tag_options

log = logging.getLogger("dkronweb")

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class Command(BaseCommand):
    help = "Run web, scheduler and an agent in one process (the embedded default)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8080)
        parser.add_argument("--concurrency", type=int, default=4, help="agent threads")
        parser.add_argument("--tag", action="append", default=[], help="node tag key=value")
        parser.add_argument("--node-name", default=None)
        parser.add_argument("--no-agent", action="store_true")
        parser.add_argument("--no-scheduler", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        creds = bootstrap_admin()

        worker: Any = None
        if not opts["no_agent"]:
            ident = configure(name=opts["node_name"], tags=parse_tag_options(opts["tag"]))
            worker = app.WorkController(  # type: ignore[call-arg]
                hostname=f"{ident.name}@dkronweb",
                pool_cls="threads",
                concurrency=opts["concurrency"],
                queues=[node_queue(ident.name), settings.CELERY_TASK_DEFAULT_QUEUE],
                without_heartbeat=True,
                without_mingle=True,
                without_gossip=True,
                loglevel="WARNING",
                tag=opts["tag"],
                node_name=ident.name,
            )
            threading.Thread(target=worker.start, name="agent", daemon=True).start()

        service: Any = None
        scheduler_thread: threading.Thread | None = None
        if not opts["no_scheduler"]:
            service = beat.Service(app, scheduler_cls="scheduler.beat:JobScheduler")  # type: ignore[call-arg]
            scheduler_thread = threading.Thread(target=service.start, name="scheduler", daemon=True)
            scheduler_thread.start()

        server = make_server(
            application,
            host=opts["host"],
            port=opts["port"],
            threads=8,
            header_timeout=settings.WEB_HEADER_TIMEOUT,
            read_timeout=settings.WEB_READ_TIMEOUT,
        )
        url = f"http://{opts['host']}:{opts['port']}"
        self.stdout.write(f"dkronweb is running on {url}  (UI {url}/ui/, API {url}/v1/)")
        if creds:
            self.stdout.write(
                "First start: created the admin login and an API token (shown only now).\n"
                f"  admin user:     {creds.username}\n"
                f"  admin password: {creds.password}\n"
                f"  API token:      {creds.token}\n"
                f"  try: curl -H 'Authorization: Bearer {creds.token}' {url}/v1/jobs"
            )
        if not settings.AUTH_ENABLED:
            self.stdout.write("WARNING: authentication is OFF (DKRON_AUTH_ENABLED=false)")
        if opts["host"] not in LOOPBACK and set(settings.ALLOWED_HOSTS) <= LOOPBACK:
            self.stdout.write(
                f"NOTE: listening on {opts['host']}, but only loopback host names are accepted "
                "(localhost, 127.0.0.1, [::1]); set DKRON_ALLOWED_HOSTS to the names clients use"
            )
        self.stdout.write("Press Ctrl-C to stop.")
        self.stdout.flush()

        def stop(*_: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            self.stdout.write("Stopping...")
            server.close()
            if service is not None and scheduler_thread is not None:
                # Wait for beat's loop to wake (at most TICK_MAX) and close the scheduler: it
                # releases the lease, so a restart or another scheduler leads at once instead
                # of after LEASE_TTL. Bounded like the scheduler command's own stop.
                service.stop()
                scheduler_thread.join(timeout=float(settings.DKRON["STOP_TIMEOUT"]))
            if worker is not None:
                worker.stop(in_sighandler=False)
            self.stdout.write("Stopped.")
