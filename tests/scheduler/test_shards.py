"""Several active schedulers sharing the jobs by shard (DKRON_SCHEDULER_SHARDS; issue 15,
item 7; docs/scheduler.md), in one process with two JobSchedulers on the test database.

The real processes (two `manage.py scheduler`, one killed) are in
tests/faults/test_scheduler_shards.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings

from jobs import timeutil
from jobs.models import Execution, Job, Lease, Run
from jobs.services import health, lease
from tests.factories import agent as make_agent
from tests.scheduler.helpers import make_job, new_scheduler

pytestmark = pytest.mark.django_db(transaction=True)

SHARDS = 4


@pytest.fixture
def sharded(settings):
    settings.DKRON = {**django_settings.DKRON, "SHARDS": SHARDS, "LEASE_TTL": 60.0}
    make_agent("node-1")


def held(scheduler) -> set[int]:
    names = set(Lease.objects.filter(holder=scheduler.holder).values_list("name", flat=True))
    return {k for k in range(SHARDS) if lease.shard_name(k) in names}


def due_jobs(count: int) -> list[Job]:
    jobs = [make_job(f"sharded-{i}", schedule="@every 1h") for i in range(count)]
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(
        next_run=timeutil.now() - timedelta(seconds=1)
    )
    return jobs


def fired() -> set[int]:
    return set(Run.objects.values_list("job_id", flat=True))


def test_two_schedulers_split_the_shards_and_each_fires_only_its_own(sharded, published):
    a = new_scheduler()
    a.tick()
    assert a.is_leader and held(a) == {0, 1, 2, 3}  # alone: every shard
    b = new_scheduler()
    b.tick()  # two alive now, but every shard is held
    a.tick()  # a's fair share is two: it hands back the highest
    b.tick()
    # Shards 1..3 dealt round the two, the leader last: b has 1 and 3, a has 0 and 2.
    assert held(a) == {0, 2} and held(b) == {1, 3}

    jobs = due_jobs(40)
    a.tick()
    assert fired() == {j.pk for j in jobs if j.pk % SHARDS in (0, 2)}
    b.tick()
    assert fired() == {j.pk for j in jobs}
    a.tick()
    b.tick()
    assert Run.objects.count() == 40  # each fire once, by the holder of its shard


def test_a_dead_schedulers_shards_are_taken_and_their_unpublished_fires_published(
    sharded, published
):
    a, b = new_scheduler(), new_scheduler()
    for s in (a, b, a, b):
        s.tick()
    assert held(b) == {1, 3}
    jobs = due_jobs(20)
    b.tick()  # fires shards 1 and 3, then "dies" before publishing
    left = list(Execution.objects.values_list("pk", flat=True))
    assert left
    Execution.objects.update(published_at=None)
    Lease.objects.filter(holder=b.holder).update(expires_at=timeutil.now() - timedelta(seconds=1))
    published.clear()
    a.tick()
    assert held(a) == {0, 1, 2, 3}
    assert sorted(published)[: len(left)] == sorted(left)  # b's fires, published first
    assert fired() == {j.pk for j in jobs}
    assert Run.objects.count() == 20


def test_a_scheduler_whose_shard_was_taken_fires_nothing_of_the_batch(sharded, published):
    a, b = new_scheduler(), new_scheduler()
    for s in (a, b, a, b):
        s.tick()
    Lease.objects.filter(name=lease.shard_name(1)).update(
        holder="thief", expires_at=timeutil.now() + timedelta(seconds=60)
    )
    jobs = due_jobs(20)
    b.tick()  # the fence renews shards 1 and 3: 1 is gone, the whole batch rolls back
    assert not Run.objects.filter(job__in=[j for j in jobs if j.pk % SHARDS in (1, 3)]).exists()
    assert b.shards.owned() == [3]
    b.tick()
    assert fired() == {j.pk for j in jobs if j.pk % SHARDS == 3}


def test_a_clean_stop_hands_the_shards_back_at_once(sharded, published):
    a, b = new_scheduler(), new_scheduler()
    for s in (a, b, a, b):
        s.tick()
    b.close()
    assert held(b) == set()
    assert not Lease.objects.filter(name=lease.PRESENCE + b.holder).exists()
    a.tick()
    assert held(a) == {0, 1, 2, 3}


def test_a_third_scheduler_gets_a_share_and_nobody_holds_a_shard_twice(sharded, published):
    a, b, c = new_scheduler(), new_scheduler(), new_scheduler()
    for s in (a, b, c, a, b, c, a, b, c):
        s.tick()
    shares = [held(s) for s in (a, b, c)]
    assert all(shares), shares  # each of three fires a share of four shards
    assert sorted(k for x in shares for k in x) == [0, 1, 2, 3]


def test_health_names_a_shard_nobody_holds(sharded, published):
    a = new_scheduler()
    a.tick()
    assert not [x for x in health.cluster_report().alerts if "shard" in x]
    Lease.objects.filter(name=lease.shard_name(3)).update(holder="")
    [alert] = [x for x in health.cluster_report().alerts if "shard" in x]
    assert "shard(s) 3 of 4 held by no scheduler" in alert


def test_metrics_count_the_shards_held_and_unheld(sharded, published, api):
    a, b = new_scheduler(), new_scheduler()
    for s in (a, b, a, b):
        s.tick()
    text = api.get("/metrics").content.decode()
    assert "dkronweb_scheduler_shards_unheld 0.0" in text
    assert f'dkronweb_scheduler_shards_held{{holder="{a.holder}"}} 2.0' in text
    assert f'dkronweb_scheduler_shards_held{{holder="{b.holder}"}} 2.0' in text
    b.close()
    assert "dkronweb_scheduler_shards_unheld 2.0" in api.get("/metrics").content.decode()


def test_one_shard_is_the_single_leader_of_before(settings, published):
    """SHARDS=1 (the default): no shard or presence lease, one active scheduler."""
    make_agent("node-1")
    settings.DKRON = {**django_settings.DKRON, "LEASE_TTL": 60.0}
    a, b = new_scheduler(), new_scheduler()
    a.tick()
    b.tick()
    assert a.is_leader and not b.is_leader
    assert list(Lease.objects.values_list("name", flat=True)) == ["scheduler"]
    jobs = due_jobs(5)
    b.tick()
    assert not fired()
    a.tick()
    assert fired() == {j.pk for j in jobs}
