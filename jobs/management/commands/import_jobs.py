"""`manage.py import_jobs FILE [--dry-run] [--user NAME]`: restore a Dkron job export."""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from jobs.errors import DomainError
from jobs.models import AuditEntry
from jobs.services.jobs import Actor, describe_problems
from jobs.services.transfer import jobs_restore, parse_export


class Command(BaseCommand):
    help = (
        "Create or replace jobs from a JSON array in Dkron's format (export_jobs, GET /v1/jobs), "
        "parents before children, as POST /v1/restore does. Prints a line per job and exits "
        "non-zero if any job failed. Acts as the system (any executor) unless --user is given."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="the JSON file ('-' for standard input)")
        parser.add_argument(
            "--dry-run", action="store_true", help="validate and report, store nothing"
        )
        parser.add_argument(
            "--user", help="apply this user's run-code permission, as the API would"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        actor = Actor(via=AuditEntry.Via.CLI)
        if opts["user"]:
            try:
                user = get_user_model().objects.get(username=opts["user"])
            except get_user_model().DoesNotExist:
                raise CommandError(f"no user named {opts['user']!r}") from None
            actor = Actor.from_user(user, via=AuditEntry.Via.CLI)
        raw = self._read(opts["file"])
        try:
            results = jobs_restore(items=parse_export(raw), actor=actor, dry_run=opts["dry_run"])
        except DomainError as exc:
            raise CommandError(exc.message) from None
        for r in results:
            if r.ok:
                verb = "created" if r.created else "updated"
                # Stored anyway (a Dkron export must import whole); its runs fail until fixed.
                found = f"  (stored with problems: {describe_problems(r.problems)})"
                line = f"{'would be ' if opts['dry_run'] else ''}{verb}  {r.name}"
                self.stdout.write(line + (found if r.problems else ""))
            else:
                self.stdout.write(f"FAILED   {r.name}: {r.error}")
        failed = sum(not r.ok for r in results)
        with_problems = sum(bool(r.problems) for r in results)
        note = " (dry run: nothing stored)" if opts["dry_run"] else ""
        found_note = f", {with_problems} with problems" if with_problems else ""
        summary = f"{len(results) - failed} ok, {failed} failed{found_note}{note}"
        if failed:
            raise CommandError(summary)
        self.stdout.write(summary)

    def _read(self, path: str) -> bytes:
        if path == "-":
            return sys.stdin.buffer.read()
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
