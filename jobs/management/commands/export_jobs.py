"""`manage.py export_jobs [--output FILE] [--include-secrets]`: every job as Dkron JSON."""

from __future__ import annotations

import json
import os
from typing import Any

from django.core.management.base import BaseCommand

from jobs.services.transfer import jobs_export


class Command(BaseCommand):
    help = (
        "Write every job as a JSON array in Dkron's format (GET /v1/jobs), for import_jobs or "
        "POST /v1/restore. Secrets (executor passwords, env and header values, webhook "
        "headers) are masked as in the API: imported over the same jobs they keep the stored "
        "values, imported elsewhere they are left out. --include-secrets writes them in clear "
        "(decrypted) so that the file restores exactly anywhere; keep such a file as safe as "
        "the database. A file given with --output is created readable by its owner only."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--output", "-o", help="file to write (standard output if omitted)")
        parser.add_argument(
            "--include-secrets",
            action="store_true",
            help="write the real secret values instead of masks (the file then holds secrets)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        include = bool(opts["include_secrets"])
        jobs = jobs_export(include_secrets=include)
        text = json.dumps(jobs, indent=2, ensure_ascii=False) + "\n"
        if not opts["output"]:
            self.stdout.write(text, ending="")
            return
        fd = os.open(opts["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        note = "holds secrets" if include else "secrets masked"
        self.stderr.write(f"exported {len(jobs)} job(s) to {opts['output']} ({note})")
