"""Cluster-wide flags in the database: pausing job submissions (Dkron's /v1/pause)."""

from __future__ import annotations

from django.db import transaction

from jobs import timeutil
from jobs.errors import ClusterPaused
from jobs.models import ClusterFlag
from jobs.services.audit import Actor, audit_record

PAUSED = "paused"


def pause_flag() -> ClusterFlag | None:
    """The `paused` flag row when the cluster is paused (who and when), else None."""
    return ClusterFlag.objects.filter(name=PAUSED, value=True).first()


def is_paused() -> bool:
    return ClusterFlag.objects.filter(name=PAUSED, value=True).exists()


def ensure_not_paused(action: str = "New job submissions are") -> None:
    """Raise ClusterPaused (503) while paused. Services that change job definitions call it;
    firing, running, toggling and killing do not (pausing freezes definitions, not work)."""
    if is_paused():
        raise ClusterPaused(action)


@transaction.atomic
def cluster_set_paused(*, paused: bool, actor: str | Actor) -> bool:
    """Pause or resume job submissions for every node; idempotent. Returns the new state.

    `actor`: an Actor (recorded in the audit log too) or, from older callers, a name."""
    if isinstance(actor, Actor):
        audit_record(actor=actor, action="pause" if paused else "unpause")
        actor = actor.name
    flag, created = ClusterFlag.objects.select_for_update().get_or_create(
        name=PAUSED,
        defaults={"value": paused, "changed_at": timeutil.now(), "changed_by": actor},
    )
    if not created and flag.value != paused:
        flag.value = paused
        flag.changed_at = timeutil.now()
        flag.changed_by = actor
        flag.save(update_fields=["value", "changed_at", "changed_by"])
    return paused
