"""The scheduler's lifecycle (issue 13, items 1-5; docs/scheduler.md), in one process:

1. a SIGTERM/SIGINT inside a tick only asks to stop: the batch commits and is published,
   then the tick raises SystemExit and close() releases the lease; a second signal, or the
   stop watchdog, exits hard;
2. the lease is renewed apart from the tick and every fire transaction is fenced: a
   scheduler whose lease was taken fires nothing, and a run_all backlog is split over
   bounded transactions; leadership changes are counted in /metrics;
3. catch-up fires get publish slots CATCHUP_RATE apart while on-time fires go out at once;
4. a new leader's first act publishes what the previous one committed and never published;
5. (/health without a scheduler: tests/operations/test_health.py.)

The real processes under load are in tests/faults/test_scheduler_lifecycle.py.
"""

from __future__ import annotations

import logging
import signal
from datetime import timedelta
from itertools import pairwise

import pytest
from django.conf import settings as django_settings
from prometheus_client.parser import text_string_to_metric_families

from jobs import dispatch, timeutil
from jobs.models import Execution, Job, Lease, Run
from jobs.services import lease, runs
from scheduler import beat as scheduler_module
from scheduler.beat import JobScheduler
from tests.factories import agent as make_agent
from tests.scheduler.helpers import make_job, new_scheduler

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def node(db):
    return make_agent("node-1")


@pytest.fixture(autouse=True)
def no_hard_exit(monkeypatch) -> list[int]:
    """os._exit would end pytest: record the calls instead."""
    calls: list[int] = []

    def fake_exit(code: int) -> None:
        calls.append(code)
        raise SystemExit(f"os._exit({code})")

    monkeypatch.setattr(scheduler_module.os, "_exit", fake_exit)
    return calls


def conf(settings, **values) -> None:
    settings.DKRON = {**django_settings.DKRON, **values}


def overdue(name: str, *, seconds: float, **fields) -> Job:
    """A per-second job whose next_run is `seconds` in the past (an outage)."""
    job = make_job(name, schedule="@every 1s", **fields)
    since = (timeutil.now() - timedelta(seconds=seconds)).replace(microsecond=0)
    Job.objects.filter(pk=job.pk).update(next_run=since, anchor=since)  # created back then
    job.refresh_from_db()
    return job


def metric(api, name: str, **labels: str) -> float:
    text = api.get("/metrics").content.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not in /metrics")


# --- 1. stopping ----------------------------------------------------------------------------


def test_a_signal_inside_a_tick_lets_the_batch_commit_and_publish_then_stops(
    node, published, monkeypatch, settings
):
    conf(settings, STOP_TIMEOUT=3600.0)
    monkeypatch.setattr(JobScheduler, "_watchdog", lambda self, bound: None)
    for i in range(5):
        make_job(f"due-{i}", schedule="@every 1s")
    Job.objects.update(next_run=timeutil.now() - timedelta(seconds=0.5))
    s = new_scheduler()
    real_start = runs.start_runs

    def start_then_signal(fires):
        created = real_start(fires)
        s._on_signal(signal.SIGTERM, None)  # in the middle of the fire transaction
        return created

    monkeypatch.setattr(runs, "start_runs", start_then_signal)

    with pytest.raises(SystemExit):
        s.tick()

    assert s.stopping
    queued = Execution.objects.filter(status="queued")
    assert queued.count() == 5
    assert sorted(published) == sorted(queued.values_list("pk", flat=True))
    assert not queued.filter(published_at__isnull=True).exists()
    s.close()  # what celery's loop does on SystemExit
    assert Lease.objects.get().holder == ""


def test_a_signal_between_ticks_exits_at_once(node, published, monkeypatch):
    monkeypatch.setattr(JobScheduler, "_watchdog", lambda self, bound: None)
    s = new_scheduler()
    s.tick()
    with pytest.raises(SystemExit):
        s._on_signal(signal.SIGINT, None)
    with pytest.raises(SystemExit):
        s.tick()  # and a tick never starts after it


def test_a_second_signal_exits_hard(node, monkeypatch, no_hard_exit):
    monkeypatch.setattr(JobScheduler, "_watchdog", lambda self, bound: None)
    s = new_scheduler()
    s.busy = True
    s._on_signal(signal.SIGTERM, None)
    with pytest.raises(SystemExit):
        s._on_signal(signal.SIGTERM, None)
    assert no_hard_exit == [1]


def test_the_watchdog_exits_hard_when_the_stop_takes_too_long(node, no_hard_exit, caplog):
    s = new_scheduler()
    with caplog.at_level(logging.ERROR, logger="dkronweb.scheduler"), pytest.raises(SystemExit):
        s._watchdog(0.01)
    assert no_hard_exit == [1]
    assert "did not stop within" in caplog.text


def test_celery_beat_start_hands_the_signals_to_the_scheduler(node, monkeypatch):
    installed: dict[int, object] = {}
    monkeypatch.setattr(scheduler_module.signal, "signal", lambda n, h: installed.update({n: h}))
    s = new_scheduler()
    try:
        s.started()
        assert installed[signal.SIGTERM] == s._on_signal
        assert installed[signal.SIGINT] == s._on_signal
        assert s.renewer is not None and s.renewer.is_alive()
    finally:
        if s.renewer is not None:
            s.renewer.stop()


# --- 2. leadership --------------------------------------------------------------------------


def test_a_scheduler_whose_lease_was_taken_fires_nothing(node, published, settings):
    conf(settings, LEASE_TTL=60.0)
    s = new_scheduler()
    s.tick()
    assert s.is_leader
    make_job("later", schedule="@every 1s")
    Job.objects.update(next_run=timeutil.now() - timedelta(seconds=0.5))
    # Another scheduler took the lease (this one was stopped for longer than the TTL), while
    # this one still believes it holds it: its fence fails and it rolls back.
    Lease.objects.update(holder="other:1:x", expires_at=timeutil.now() + timedelta(seconds=60))
    assert s.holds_lease()

    s.tick()

    assert not s.is_leader
    assert Run.objects.count() == 0
    assert Job.objects.get().next_run < timeutil.now()  # not advanced: the new leader fires it
    assert published == []


def test_a_failed_fence_rolls_the_whole_batch_back(node, published):
    overdue("fenced", seconds=0.5)
    report = runs.fire_due_jobs(fence=lambda: False)
    assert report.fenced and report.fired == 0
    assert Run.objects.count() == 0 and Execution.objects.count() == 0
    assert published == []


def test_the_renewal_extends_only_a_lease_still_held(node, settings):
    conf(settings, LEASE_TTL=2.0)
    s = new_scheduler()
    s.tick()
    before = Lease.objects.get().expires_at
    assert s.renew_once()
    assert Lease.objects.get().expires_at >= before
    # Expired (a stall longer than the TTL): not renewed, and the scheduler is a standby.
    Lease.objects.update(expires_at=timeutil.now() - timedelta(seconds=1))
    assert not s.renew_once()
    assert not s.is_leader and not s.holds_lease()


def test_leadership_holds_while_the_renewer_renews(node, settings):
    """A tick may outlast the TTL: the lease the renewer extended is not taken."""
    conf(settings, LEASE_TTL=60.0)
    s = new_scheduler()
    s.tick()
    assert lease.lease_renew(holder=s.holder, ttl=60.0)
    assert not lease.lease_acquire(holder="standby:2:y", ttl=60.0)
    assert lease.lease_holder().holder == s.holder


def test_leadership_changes_are_counted_in_metrics(node, api, settings):
    conf(settings, LEASE_TTL=60.0)
    first = new_scheduler()
    first.tick()
    assert metric(api, "dkronweb_scheduler_leadership_changes_total") == 1
    Lease.objects.update(expires_at=timeutil.now() - timedelta(seconds=1))  # first stalled
    second = new_scheduler()
    second.tick()
    assert second.is_leader
    assert metric(api, "dkronweb_scheduler_leadership_changes_total") == 2
    first.tick()  # it resumes: its lease is gone, it does not take it back
    assert not first.is_leader
    assert metric(api, "dkronweb_scheduler_leadership_changes_total") == 2


def test_a_run_all_backlog_is_fired_in_bounded_transactions(node, published, settings):
    conf(settings, FIRE_BATCH=50, CATCHUP_RATE=0.0, MISFIRE_GRACE=5.0)
    job = overdue("backlog", seconds=180, misfire_policy="run_all", catchup_window=3600)
    reports = []
    for _ in range(20):
        report = runs.fire_due_jobs()
        reports.append(report)
        assert report.fired <= 50
        if not report.more:
            break
    assert not reports[-1].more
    assert len(reports) >= 4
    fired = Run.objects.filter(job=job).count()
    assert 178 <= fired <= 183  # every second of the outage, once
    assert Run.objects.filter(job=job).values("scheduled_at").distinct().count() == fired
    job.refresh_from_db()
    assert job.missed_count == 0 and job.next_run > timeutil.now() - timedelta(seconds=2)


# --- 3. catch-up rate -----------------------------------------------------------------------


def test_catch_up_fires_are_staggered_while_on_time_fires_go_out_at_once(
    node, published, settings, api
):
    conf(settings, CATCHUP_RATE=10.0, MISFIRE_GRACE=5.0)
    late = overdue("late", seconds=40, misfire_policy="run_all", catchup_window=3600)
    on_time = overdue("on-time", seconds=0.5)

    report = runs.fire_due_jobs()

    assert report.catchup_waiting >= 30
    on_time_exec = Execution.objects.get(job=on_time)
    assert on_time_exec.pk in published and on_time_exec.not_before is None
    catchups = list(
        Execution.objects.filter(job=late, run__trigger=Run.Trigger.CATCHUP).order_by("not_before")
    )
    assert len(catchups) == report.catchup_waiting
    assert all(e.published_at is None for e in catchups)
    gaps = [(b.not_before - a.not_before).total_seconds() for a, b in pairwise(catchups)]
    assert all(abs(g - 0.1) < 1e-3 for g in gaps)
    # Oldest fire time first.
    assert [e.scheduled_at for e in catchups] == sorted(e.scheduled_at for e in catchups)
    assert runs.catchup_backlog() == len(catchups)
    assert metric(api, "dkronweb_scheduler_catchup_waiting") == len(catchups)

    # One second later about ten have come due; a budget of 10 publishes them in slot order.
    n = runs.publish_due_catchups(limit=10, now=catchups[0].not_before + timedelta(seconds=0.95))
    assert n == 10
    assert published[-10:] == [e.pk for e in catchups[:10]]
    assert runs.catchup_backlog() == len(catchups) - 10


def test_a_later_catch_up_batch_queues_behind_the_waiting_ones(node, published, settings):
    conf(settings, CATCHUP_RATE=5.0, MISFIRE_GRACE=5.0, FIRE_BATCH=20)
    overdue("a", seconds=60, misfire_policy="run_all", catchup_window=3600)
    runs.fire_due_jobs()
    slotted = Execution.objects.filter(not_before__isnull=False)
    last = slotted.order_by("-not_before").first().not_before
    overdue("b", seconds=30, misfire_policy="run_all", catchup_window=3600)
    while runs.fire_due_jobs().more:
        pass
    slots = list(
        Execution.objects.filter(not_before__isnull=False)
        .order_by("not_before")
        .values_list("not_before", flat=True)
    )
    assert len(set(slots)) == len(slots)  # one slot each, cluster-wide
    b_first = slotted.filter(job__name="b").order_by("not_before").first().not_before
    assert b_first > last


def test_the_scheduler_publishes_catch_ups_at_the_rate(node, published, settings, monkeypatch):
    conf(settings, CATCHUP_RATE=10.0, MISFIRE_GRACE=5.0)
    overdue("late", seconds=40, misfire_policy="run_all", catchup_window=3600)
    s = new_scheduler()
    clock = [1000.0]
    monkeypatch.setattr(scheduler_module.time, "monotonic", lambda: clock[0])
    s.tick()  # fires the backlog, all waiting
    waiting = runs.catchup_backlog()
    assert waiting >= 30
    # Overdue slots (say, after a takeover) still go out at the rate, never as a burst.
    Execution.objects.filter(not_before__isnull=False).update(not_before=timeutil.now())
    sent = Execution.objects.filter(run__trigger=Run.Trigger.CATCHUP, published_at__isnull=False)
    assert sent.count() == 0
    clock[0] += 1.0
    s._publish_catchups()
    assert sent.count() == 10  # a second's worth (10 tokens), not the whole backlog
    clock[0] += 0.5
    s._publish_catchups()
    assert sent.count() == 15
    clock[0] += 10.0
    s._publish_catchups()
    assert sent.count() == 25  # the bucket holds one second's worth at most


def test_catch_up_rate_zero_publishes_everything_at_once(node, published, settings):
    conf(settings, CATCHUP_RATE=0.0, MISFIRE_GRACE=5.0)
    overdue("late", seconds=20, misfire_policy="run_all", catchup_window=3600)
    runs.fire_due_jobs()
    assert Execution.objects.filter(published_at__isnull=True).count() == 0
    assert Execution.objects.filter(not_before__isnull=False).count() == 0


def test_the_dashboard_shows_the_catch_up_backlog(node, published, settings, client, admin_user):
    conf(settings, CATCHUP_RATE=10.0, MISFIRE_GRACE=5.0)
    overdue("late", seconds=40, misfire_policy="run_all", catchup_window=3600)
    runs.fire_due_jobs()
    client.force_login(admin_user)
    page = client.get("/ui/?fragment=running").content.decode()
    assert 'data-testid="catchup-backlog"' in page
    assert f"{runs.catchup_backlog()} missed runs waiting" in page, page
    assert "10 per second" in page
    runs.publish_due_catchups(limit=1000, now=timeutil.now() + timedelta(seconds=60))
    page = client.get("/ui/?fragment=running").content.decode()
    assert "catchup-backlog" not in page


# --- 4. takeover ----------------------------------------------------------------------------


def test_a_new_leader_first_publishes_what_the_previous_one_left(
    node, published, monkeypatch, api, caplog, settings
):
    conf(settings, LEASE_TTL=60.0, CATCHUP_RATE=10.0)
    for i in range(30):
        make_job(f"left-{i}", schedule="@every 1s")
    Job.objects.update(next_run=timeutil.now() - timedelta(seconds=0.5))
    # The previous scheduler committed its batch and died before publishing it.
    monkeypatch.setattr(dispatch, "publish_on_commit", lambda executions, countdown=0.0: None)
    runs.fire_due_jobs()
    monkeypatch.undo()  # the real publish_on_commit again; keep the recording publish_many
    monkeypatch.setattr(dispatch, "publish_many", published_recorder(published))
    left = set(Execution.objects.filter(published_at__isnull=True).values_list("pk", flat=True))
    assert len(left) == 30
    # A catch-up still waiting for its slot is not the takeover's to publish.
    waiting = Execution.objects.filter(pk=min(left))
    waiting.update(not_before=timeutil.now() + timedelta(seconds=30))
    Run.objects.filter(executions__in=waiting).update(trigger=Run.Trigger.CATCHUP)
    # And a manual run a web process is about to publish is not either.
    manual = runs.run_now(job=Job.objects.get(name="left-1"), force=True)
    Execution.objects.filter(run=manual).update(published_at=None)
    published.clear()

    s = new_scheduler()
    with caplog.at_level(logging.INFO, logger="dkronweb.scheduler"):
        s.tick()

    assert s.is_leader and s.republished == 29
    assert set(published[:29]) == left - {min(left)}
    assert "republished 29 execution(s) left unpublished by the previous scheduler" in caplog.text
    assert metric(api, "dkronweb_scheduler_republished_total", by="takeover") == 29
    assert not Execution.objects.filter(run__trigger="schedule", published_at__isnull=True)


def published_recorder(sent: list[int]):
    def fake(executions: list[Execution], *, countdown: float = 0.0) -> None:
        if not executions:
            return
        sent.extend(e.pk for e in executions)
        Execution.objects.filter(pk__in=[e.pk for e in executions]).update(
            published_at=timeutil.now()
        )

    return fake


def test_an_ordinary_start_republishes_nothing_and_says_so(node, published, caplog):
    s = new_scheduler()
    with caplog.at_level(logging.INFO, logger="dkronweb.scheduler"):
        s.tick()
    assert s.republished == 0
    assert "republished 0 execution(s)" in caplog.text
