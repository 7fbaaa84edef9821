"""When a settled run is worth telling someone about: pure functions over statuses.

Rules:
- `always`: every settled run (skipped runs aside: nothing ran);
- `on_failure`: runs that failed or partially failed;
- `on_success`: runs that succeeded;
- `on_change`: the first failure after a success and the first success after a failure,
  compared with the job's previous settled run. A job's very first run counts as a change
  when it fails (nobody has heard of the job failing yet), not when it succeeds;
- `never`: nothing (a job can opt out of the global rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RULES = ("always", "on_failure", "on_success", "on_change", "never")
SUCCESS = "success"
FAILURES = frozenset({"failed", "partially_failed"})
NOTIFIABLE = FAILURES | {SUCCESS}


def is_failure(status: str) -> bool:
    return status in FAILURES


def effective_rule(job_rule: str | None, default: str) -> str:
    """The job's own rule wins; otherwise the global one (`never` when unset or unknown)."""
    rule = (job_rule or default or "never").strip().lower()
    return rule if rule in RULES else "never"


def should_notify(rule: str, status: str, previous: str | None) -> bool:
    """`previous` is the status of the job's previous settled run (None: there is none)."""
    if status not in NOTIFIABLE:
        return False
    if rule == "always":
        return True
    if rule == "on_failure":
        return is_failure(status)
    if rule == "on_success":
        return status == SUCCESS
    if rule == "on_change":
        if previous not in NOTIFIABLE:
            return is_failure(status)
        return is_failure(status) != is_failure(previous or "")
    return False


def may_notify(
    snapshot: Mapping[str, Any],
    status: str,
    *,
    default_rule: str,
    email_enabled: bool,
    global_webhook: bool,
) -> bool:
    """Cheap pre-check on the run's snapshot when it settles (no query, no parsing).

    False only when no notification can follow; `on_change` needs the previous run, so the
    final word belongs to `should_notify` in the task.
    """
    if status not in NOTIFIABLE:
        return False
    notify = snapshot.get("notify") or {}
    if not isinstance(notify, Mapping):
        notify = {}
    job_rule = notify.get("on")
    rule = effective_rule(job_rule if isinstance(job_rule, str) else None, default_rule)
    if rule == "never" or (rule != "on_change" and not should_notify(rule, status, None)):
        return False
    has_email = email_enabled and bool(snapshot.get("owner_email") or notify.get("email"))
    return has_email or global_webhook or bool(notify.get("webhooks"))
