"""`manage.py jobs plan|apply PATH... [--prune --scope k=v] [--json]`: jobs as files.

Exit codes, for CI (as terraform's `plan -detailed-exitcode`): plan exits 0 when nothing would
change, 2 when changes are pending, 1 on an error; apply exits 0 when applied (or nothing to
do) and 1 on an error, when nothing was changed.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.errors import DomainError
from jobs.models import AuditEntry
from jobs.services import declarative
from jobs.services.audit import Actor

EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2


class Command(BaseCommand):
    help = (
        "Jobs as files: 'plan' prints what the job files (YAML or JSON, Dkron's job format) "
        "would create, change and delete; 'apply' does it in one transaction. --prune deletes "
        "the jobs carrying the --scope metadata label that no file names. Exit codes: plan 0 "
        "no changes, 2 changes pending, 1 error; apply 0 applied, 1 error (nothing changed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="plan|apply")
        for name, text in (
            ("plan", "print what applying the files would change; change nothing"),
            ("apply", "make the stored jobs what the files say, all or nothing"),
        ):
            sub = actions.add_parser(name, help=text, description=text)
            sub.add_argument(
                "paths", nargs="+", metavar="PATH", help="job files, or folders to read them from"
            )
            sub.add_argument(
                "--scope",
                metavar="KEY=VALUE",
                help="the metadata label of the jobs these files manage: every job of the files "
                "must carry it, and --prune deletes only jobs that carry it",
            )
            sub.add_argument(
                "--prune",
                action="store_true",
                help="delete jobs carrying the --scope label that no file names",
            )
            sub.add_argument("--json", action="store_true", help="print the plan as JSON")
            sub.add_argument(
                "--user", help="apply this user's run-code permission, as the API would"
            )

    def handle(self, *args: Any, **opts: Any) -> None:
        actor = Actor(via=AuditEntry.Via.APPLY)
        if opts["user"]:
            try:
                user = get_user_model().objects.get(username=opts["user"])
            except get_user_model().DoesNotExist:
                raise CommandError(f"no user named {opts['user']!r}") from None
            actor = Actor.from_user(user, via=AuditEntry.Via.APPLY)
        try:
            scope = declarative.parse_scope(opts["scope"])
            documents = declarative.read_paths(opts["paths"])
            run = declarative.apply if opts["action"] == "apply" else declarative.plan
            result = run(documents, actor=actor, prune=opts["prune"], scope=scope)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        if opts["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        else:
            for line in result.lines():
                self.stdout.write(line)
        if result.errors:
            raise CommandError("nothing was changed (see the errors above)", returncode=EXIT_ERROR)
        if opts["action"] == "plan" and result.has_changes:
            raise SystemExit(EXIT_PENDING)
