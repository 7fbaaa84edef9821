"""Shards 1..N-1 of the jobs, held by this scheduler when several are active at once.

With DKRON_SCHEDULER_SHARDS=N > 1 a job belongs to shard `id % N`, and each shard is a lease
(jobs.services.lease): every active scheduler fires the due jobs of the shards it holds, so
firing scales out over schedulers. Shard 0 is the ordinary scheduler lease, taken by
JobScheduler._lead; its holder is also the leader (sweep, catch-ups, system tasks,
/v1/leader). This class holds the others:

- every tick it beats a presence lease and reads the schedulers alive and the leader; from
  that list, the same for all, `share` deals shards 1..N-1 round the schedulers, the leader
  last (it has shard 0). Each hands back what is not in its share and takes the free shards
  that are, so a joining scheduler gets its share within a tick or two and a dead one's
  shards are dealt to the others once its presence and leases expire (LEASE_TTL);
- the renewer thread renews what it holds every TTL/3, apart from the tick;
- the fire transaction's fence renews every shard fired in it, in one UPDATE: one lost
  shard rolls the batch back (it is fired again by whoever holds it, from the same
  next_run);
- a shard taken over is published first: what its previous holder committed and never
  published.

Fire keys stay the guarantee: two schedulers that both believed they held a shard (or that
disagree on N) still cannot run a fire twice; the leases only keep them from trying.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from jobs import timeutil
from jobs.services import counters, lease

log = logging.getLogger("dkronweb.scheduler")


@dataclass
class _Held:
    until: float  # monotonic time until which the lease surely holds
    since: datetime  # when this scheduler took it (its shard's active_since)


class ShardLeases:
    """The extra shards (1..N-1) one scheduler holds; shard 0 stays JobScheduler's lease."""

    def __init__(self, *, holder: str, member: str, count: int) -> None:
        self.holder = holder
        self.member = member
        self.count = count
        self.held: dict[int, _Held] = {}
        self.lock = threading.Lock()  # the renewer thread and the tick both change `held`

    @property
    def enabled(self) -> bool:
        return self.count > 1

    def ttl(self) -> float:
        return float(settings.DKRON["LEASE_TTL"])

    def owned(self) -> list[int]:
        now = time.monotonic()
        with self.lock:
            return sorted(k for k, h in self.held.items() if h.until > now)

    def rebalance(self, *, leading: bool) -> list[int]:
        """Beat presence, then hand back the shards that are not this scheduler's share and
        take the free ones that are; the shards newly taken (their unpublished fires are the
        caller's to publish)."""
        if not self.enabled:
            return []
        ttl = self.ttl()
        alive, leader = lease.presence_beat(holder=self.holder, ttl=ttl)
        mine = share(self.holder, alive=alive, leader=leader, count=self.count)
        self._drop_expired()
        for shard in sorted(set(self.owned()) - mine, reverse=True):
            self.release(shard, why=f"its share among {len(alive)} schedulers is another's")
        taken: list[int] = []
        for shard in sorted(mine - set(self.owned())):
            sent = time.monotonic()
            name = lease.shard_name(shard)
            if lease.lease_acquire(holder=self.holder, ttl=ttl, name=name, member=self.member):
                with self.lock:
                    self.held[shard] = _Held(until=sent + ttl, since=timeutil.now())
                taken.append(shard)
        if taken:
            log.info("scheduler %s took shard(s) %s of %d", self.holder, taken, self.count)
            counters.counter_add("scheduler_shard_takes", len(taken))
        return taken

    def _drop_expired(self) -> None:
        now = time.monotonic()
        with self.lock:
            for shard in [k for k, h in self.held.items() if h.until <= now]:
                log.warning("scheduler %s: shard %d expired before renewal", self.holder, shard)
                del self.held[shard]

    def renew(self) -> None:
        """The renewer thread's call: extend every held shard; forget the lost ones."""
        with self.lock:
            shards = list(self.held)
        if shards:
            self._renew(shards, forget=True)

    def fence(self, shards: list[int]) -> bool:
        """Inside the fire transaction: renew the extra shards fired in it, all or nothing
        (the caller rolls back and calls `lost` when this is False)."""
        return not shards or self._renew(shards, forget=False) == set(shards)

    def lost(self, shards: list[int]) -> None:
        """A fence failed: ask the database which of these are still held, forget the rest."""
        self._renew(shards, forget=True)

    def _renew(self, shards: list[int], *, forget: bool) -> set[int]:
        """Extend these shards' leases in one UPDATE; the ones still held. Their `until`
        moves on; with `forget`, the others are dropped."""
        sent = time.monotonic()
        names = {lease.shard_name(k): k for k in shards}
        renewed = lease.lease_renew_many(holder=self.holder, names=list(names), ttl=self.ttl())
        kept = {names[n] for n in renewed}
        with self.lock:
            for shard in shards:
                held = self.held.get(shard)
                if held is None:
                    continue
                if shard in kept:
                    held.until = max(held.until, sent + self.ttl())
                elif forget:
                    log.warning("scheduler %s lost shard %d", self.holder, shard)
                    del self.held[shard]
        return kept

    def release(self, shard: int, *, why: str) -> None:
        with self.lock:
            self.held.pop(shard, None)
        lease.lease_release(holder=self.holder, name=lease.shard_name(shard))
        log.info("scheduler %s released shard %d (%s)", self.holder, shard, why)

    def since(self) -> dict[int, datetime | None]:
        now = time.monotonic()
        with self.lock:
            return {k: h.since for k, h in self.held.items() if h.until > now}

    def close(self) -> None:
        """Hand every shard back and leave the presence count (a clean stop)."""
        if not self.enabled:
            return
        for shard in list(self.held):
            self.release(shard, why="stopping")
        lease.presence_clear(holder=self.holder)


def share(holder: str, *, alive: list[str], leader: str, count: int) -> set[int]:
    """The extra shards (1..count-1) that are `holder`'s: dealt round the schedulers alive,
    the leader last, since it fires shard 0 already. Every scheduler computes it from the same
    rows, so the shares do not overlap (and while two views differ, the leases still do not)."""
    order = [h for h in alive if h != leader] + ([leader] if leader in alive else [])
    return {k for k in range(1, count) if order[(k - 1) % len(order)] == holder}
