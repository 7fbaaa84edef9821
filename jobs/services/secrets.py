"""Re-encrypting stored job secrets (executor configs, webhooks) after setting or rotating a key."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from confidential import SecretError
from jobs import secrets as job_secrets
from jobs.models import Job


@dataclass
class Reencrypted:
    changed: int = 0
    unchanged: int = 0


def secrets_reencrypt(*, decrypt: bool = False) -> Reencrypted:
    """Store every job's secrets encrypted with the first key (plain ones encrypted, tokens of
    an older key rotated), or, with `decrypt`, in clear (to stop using encryption).

    Each job is rewritten under a row lock, so an edit saved meanwhile is not overwritten.
    A token no key opens is left as it is (its runs keep failing with a clear error).
    """
    if not job_secrets.encryption_enabled():
        raise SecretError(f"{job_secrets.SETTING} is not set")
    result = Reencrypted()
    for pk in Job.objects.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            job = Job.objects.select_for_update().filter(pk=pk).first()
            if job is None:
                continue
            config, notify = job.executor_config or {}, job.notify or {}
            if decrypt:
                new = job_secrets.decrypt_config(job.executor, config, strict=False)
                new_notify = job_secrets.decrypt_notify(notify, strict=False)
            else:
                new = job_secrets.encrypt_config(job.executor, config, rotate=True)
                new_notify = job_secrets.encrypt_notify(notify, rotate=True)
            if new == config and new_notify == notify:
                result.unchanged += 1
                continue
            Job.objects.filter(pk=pk).update(executor_config=new, notify=new_notify)
            result.changed += 1
    return result
