"""Cluster-wide event counters in the database, exposed by /metrics as `dkronweb_<name>_total`.

Counted where the event happens (any process of the cluster) with one UPDATE; a counter is
created on its first use. Names are fixed strings of the code, never user input. A name
`<family>:<value>` is one series of the family, labelled with LABELS[family]=value.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F

from jobs.models import ClusterCounter

# Known counter families and their help text; /metrics lists each, at 0 before its first event.
HELP = {
    "scheduler_republished": "Executions published again: left committed but unpublished by a "
    "scheduler that stopped (by=takeover, the new leader's first act) or whose message was "
    "lost (by=sweep)",
    "alerts": "SLA alerts opened, by kind (jobs.services.sla): late, overdue, no_success, failing",
}
# The label of a family's series, and the series listed before their first event.
LABELS = {
    "scheduler_republished": ("by", ("takeover", "sweep")),
    "alerts": ("kind", ("late", "overdue", "no_success", "failing")),
}


def counter_add(name: str, n: int = 1) -> None:
    """Add `n` to the counter `name` (no-op for n <= 0)."""
    if n <= 0:
        return
    if ClusterCounter.objects.filter(name=name).update(value=F("value") + n):
        return
    try:
        with transaction.atomic():
            ClusterCounter.objects.create(name=name, value=n)
    except IntegrityError:  # created meanwhile by another process
        ClusterCounter.objects.filter(name=name).update(value=F("value") + n)


def counter_values() -> dict[str, int]:
    """Every counter's total (0 for the known ones not counted yet)."""
    values = {name: 0 for name in HELP if name not in LABELS}
    for family, (_, known) in LABELS.items():
        values.update({f"{family}:{value}": 0 for value in known})
    values.update(dict(ClusterCounter.objects.values_list("name", "value")))
    return values
