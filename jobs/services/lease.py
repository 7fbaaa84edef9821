"""A lease in the database that keeps one scheduler active; expiry uses the database clock."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Func, Q
from django.db.models.expressions import Combinable
from django.db.models.functions import Now

from jobs import timeutil
from jobs.models import Lease

SCHEDULER = "scheduler"


def lease_acquire(*, holder: str, ttl: float, name: str = SCHEDULER, member: str = "") -> bool:
    """Take or renew the lease; True when `holder` holds it until now + ttl (database time).

    `member` is the holder's member name (jobs.services.agents), stored with the lease so
    that /v1/leader answers one of /v1/members.

    1. Renew: one UPDATE that succeeds only if we hold it or it has expired.
    2. A first-ever lease row is created; a racing creator hits the unique name and loses.
    The lease keeps standbys idle; it is not the guarantee (fire keys are).
    """
    expires = ExpressionWrapper(Now() + timedelta(seconds=ttl), output_field=DateTimeField())
    renewed = Lease.objects.filter(name=name, holder=holder).update(
        expires_at=expires, member=member
    )
    if renewed:
        return True
    taken = (
        Lease.objects.filter(name=name)
        .filter(Q(expires_at__lt=Now()) | Q(expires_at__isnull=True) | Q(holder=""))
        .update(
            holder=holder,
            member=member,
            expires_at=expires,
            acquired_at=Now(),
            changes=F("changes") + 1,
        )
    )
    if taken:
        return True
    if Lease.objects.filter(name=name).exists():
        return False
    try:
        with transaction.atomic():
            Lease.objects.create(
                name=name,
                holder=holder,
                member=member,
                expires_at=expires,
                acquired_at=Now(),
                changes=1,
            )
    except IntegrityError:
        return False
    return True


def _clock() -> Combinable:
    """The database's current time: the wall clock on PostgreSQL (NOW() is the transaction's
    start there, which a fence at the end of a long transaction must not use)."""
    if connection.vendor == "postgresql":
        return Func(
            function="clock_timestamp", template="clock_timestamp()", output_field=DateTimeField()
        )
    return Now()


def lease_renew(*, holder: str, ttl: float, name: str = SCHEDULER) -> bool:
    """Extend the lease only while `holder` still holds it unexpired (database time).

    The renewer thread calls it every TTL/3, and `fire_due_jobs` calls it as the last
    statement of each fire transaction (the fence): 0 rows means the lease was lost or taken
    over, and the caller must roll back and stop firing. The row lock it takes lasts until the
    commit, so a standby's takeover UPDATE waits for it and then sees the extended expiry.
    """
    clock = _clock()
    expires = ExpressionWrapper(clock + timedelta(seconds=ttl), output_field=DateTimeField())
    return bool(
        Lease.objects.filter(name=name, holder=holder, expires_at__gt=clock).update(
            expires_at=expires
        )
    )


def database_clock_offset() -> timedelta:
    """The database clock minus this process's (taken at the query's midpoint, so the round
    trip cancels out); zero on SQLite, whose clock is this machine's."""
    if connection.vendor != "postgresql":
        return timedelta(0)
    sent = timeutil.local_now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        database_now = cursor.fetchone()[0]
    received = timeutil.local_now()
    return database_now - (sent + (received - sent) / 2)


def lease_changes(*, name: str = SCHEDULER) -> int:
    """How many times the lease changed hands (what /metrics reports)."""
    return int(Lease.objects.filter(name=name).values_list("changes", flat=True).first() or 0)


def lease_release(*, holder: str, name: str = SCHEDULER) -> None:
    Lease.objects.filter(name=name, holder=holder).update(holder="", member="", expires_at=None)


def lease_holder(*, name: str = SCHEDULER) -> Lease | None:
    """The current, unexpired holder (None when no scheduler is active)."""
    return Lease.objects.filter(name=name, expires_at__gte=Now()).exclude(holder="").first()


# --- shards: several active schedulers, each firing the jobs of the shards it holds ---------
#
# With DKRON_SCHEDULER_SHARDS=N > 1 a job belongs to shard `id % N`. Shard 0 is the lease
# above (its holder is also the leader: sweep, catch-ups, system tasks, /v1/leader); shards
# 1..N-1 are leases of their own. Each scheduler also keeps a presence lease, so that every one
# sees the same list of schedulers alive and can tell which shards are its own
# (scheduler.shards).

PRESENCE = "scheduler-presence/"


def shard_name(shard: int) -> str:
    return SCHEDULER if shard == 0 else f"{SCHEDULER}/{shard}"


def lease_renew_many(*, holder: str, names: list[str], ttl: float) -> set[str]:
    """Extend every lease in `names` still held unexpired by `holder`; the names renewed.

    One UPDATE (the fire transaction's fence when it fires several shards): the row locks
    last until the commit, as with `lease_renew`."""
    if not names:
        return set()
    clock = _clock()
    expires = ExpressionWrapper(clock + timedelta(seconds=ttl), output_field=DateTimeField())
    held = Lease.objects.filter(name__in=names, holder=holder, expires_at__gt=clock)
    if held.update(expires_at=expires) == len(names):
        return set(names)
    still = Lease.objects.filter(name__in=names, holder=holder, expires_at__gt=clock)
    return set(still.values_list("name", flat=True))


def presence_beat(*, holder: str, ttl: float) -> tuple[list[str], str]:
    """Say this scheduler is alive for `ttl`; the schedulers alive (sorted, itself included)
    and the leader (shard 0's holder, "" when none), read together."""
    lease_acquire(holder=holder, ttl=ttl, name=PRESENCE + holder)
    Lease.objects.filter(
        name__startswith=PRESENCE, expires_at__lt=Now() - timedelta(seconds=60)
    ).delete()  # schedulers gone for a minute: few rows, on the name index
    rows = Lease.objects.filter(
        Q(name__startswith=PRESENCE) | Q(name=SCHEDULER), expires_at__gt=Now()
    ).values_list("name", "holder")
    alive = sorted({h for n, h in rows if n.startswith(PRESENCE)} | {holder})
    leader = next((h for n, h in rows if n == SCHEDULER), "")
    return alive, leader


def presence_clear(*, holder: str) -> None:
    Lease.objects.filter(name=PRESENCE + holder).delete()


def shard_holders(*, shards: int) -> dict[int, str]:
    """Each shard's unexpired holder ("" when nobody holds it): /health and /metrics."""
    names = {shard_name(k): k for k in range(shards)}
    held = dict(
        Lease.objects.filter(name__in=list(names), expires_at__gte=Now())
        .exclude(holder="")
        .values_list("name", "holder")
    )
    return {k: held.get(name, "") for name, k in names.items()}
