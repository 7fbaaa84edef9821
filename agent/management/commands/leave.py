"""`manage.py leave --node-name X`: mark an agent as having left the cluster (Dkron's leave)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.services.agents import agent_leave


class Command(BaseCommand):
    help = (
        "Mark an agent as left (statusText 'left' in /v1/members): for an agent being "
        "decommissioned that did not stop cleanly. No new work goes to it; its queued "
        "executions move to another matching node or fail, as for a dead agent. A running agent "
        "of that name sets itself alive again on its next heartbeat, so stop it first."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--node-name", required=True, help="the agent's node name")

    def handle(self, *args: Any, **opts: Any) -> None:
        name = opts["node_name"]
        if not agent_leave(name=name):
            raise CommandError(f"no agent named {name!r}")
        self.stdout.write(f"agent {name} marked as left")
