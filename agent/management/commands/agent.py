"""`manage.py agent --tag k=v`: a thin wrapper over `celery worker` for the agent role.

Celery's node name follows --node-name (`<name>@<host>`) here as with `celery worker`; a `-n`
among the extra arguments wins. See docs/agents.md.

What it loads is kept to what an agent uses (docs/agents.md, "A light agent"): it runs the
agent's system checks only (`jobs.checks.AGENT_TAGS`), not the URL and template checks nor the
one that imports every executor, which would load the web role and every client library; and
it starts Celery's `worker` command by itself, not through the `celery` command group, which
imports every other subcommand and the plugins (Flower with Tornado, prompt_toolkit for
`celery shell`).
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
        parser.add_argument(
            "--slots",
            type=int,
            default=None,
            help="executions run at once (default: --concurrency); the pool runs this many",
        )
        parser.add_argument("--pool", default="prefork")
        parser.add_argument("-l", "--loglevel", default="INFO")
        parser.add_argument("celery_args", nargs="*")

    def handle(self, *args: Any, **opts: Any) -> None:
        argv = ["-l", opts["loglevel"], "-c", str(opts["concurrency"])]
        argv += ["--pool", opts["pool"], "--without-mingle", "--without-gossip"]
        if opts["slots"] is not None:
            argv += ["--slots", str(opts["slots"])]
        for tag in opts["tag"]:
            argv += ["--tag", tag]
        if opts["node_name"]:
            argv += ["--node-name", opts["node_name"], "-n", f"{opts['node_name']}@%h"]
        worker_main(argv + list(opts["celery_args"]))


def worker_main(argv: list[str]) -> int:
    """`celery worker <argv>` as `app.worker_main(["worker", *argv])` runs it, without the
    `celery` group: the same command, options (the app's own `--tag`, `--node-name`
    included), signals and exit code."""
    import click
    from celery import current_app
    from celery.bin.base import CLIContext
    from celery.bin.worker import worker

    app = current_app._get_current_object()  # type: ignore[attr-defined]  # the app, not its proxy
    for option in app.user_options["worker"]:  # what the group adds before it runs `worker`
        if option not in worker.params:
            worker.params.append(option)
    context = CLIContext(app=app, no_color=None, workdir=None)
    try:
        return worker.main(args=argv, prog_name="celery worker", obj=context, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
