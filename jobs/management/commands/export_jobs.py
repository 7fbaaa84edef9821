"""`manage.py export_jobs [--output FILE]`: every job as Dkron JSON, secrets included."""

from __future__ import annotations

import json
import os
from typing import Any

from django.core.management.base import BaseCommand

from jobs.services.transfer import jobs_export


class Command(BaseCommand):
    help = (
        "Write every job as a JSON array in Dkron's format (GET /v1/jobs), for import_jobs or "
        "POST /v1/restore. WARNING: the file holds the jobs' secrets unmasked (executor "
        "passwords, webhook headers) so that it restores exactly; keep it as safe as the "
        "database. A file given with --output is created readable by its owner only."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--output", "-o", help="file to write (standard output if omitted)")

    def handle(self, *args: Any, **opts: Any) -> None:
        jobs = jobs_export()
        text = json.dumps(jobs, indent=2, ensure_ascii=False) + "\n"
        if not opts["output"]:
            self.stdout.write(text, ending="")
            return
        fd = os.open(opts["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        self.stderr.write(f"exported {len(jobs)} job(s) to {opts['output']} (holds secrets)")
