"""Agent slots, concurrency keys and rate limits (issue 16), at the service level: what is held,
what is admitted, in which order, and what a claim refuses. The end-to-end tests with real
agents and schedulers are in tests/e2e/test_capacity.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction

from jobs import timeutil
from jobs.errors import InvalidJob
from jobs.models import Agent, ConcurrencyKey, Execution, Job, Run
from jobs.services import capacity, executions
from jobs.services.runs import Fire, run_now, start_runs
from tests.factories import agent, job
from tests.harness import require
from tests.jobs.test_history_costs import assert_bounded, explained, on_postgres


def _run(j: Job) -> Execution:
    run = run_now(job=Job.objects.get(pk=j.pk), force=True)
    return Execution.objects.filter(run=run).order_by("pk").last()


def _claim(e: Execution, node: str = "n1") -> Execution | None:
    return executions.execution_claim(execution_id=e.pk, node_name=node)


def _finish(claimed: Execution) -> None:
    closed = executions.execution_close(
        execution_id=claimed.pk, status="success", output="", claimed=claimed
    )
    capacity.after_finish(key=claimed.concurrency_key, slot_waiters=closed.slot_waiters)


def test_a_key_lets_its_limit_run_and_holds_the_rest_in_fire_order(db):
    agent("n1")
    jobs = [job(f"j{i}", concurrency_key="db", concurrency_limit=2) for i in range(4)]
    made = [_run(j) for j in jobs]
    rows = [Execution.objects.get(pk=e.pk) for e in made]
    assert [r.waiting for r in rows] == ["", "", "key", "key"]  # two admitted, two held
    # Held ones are on no agent yet (their node waits in `queue`); admitted ones are on it.
    assert [r.node_name for r in rows] == ["n1", "n1", "", ""]
    assert {r.queue for r in rows} == {"dkron.node.n1"}
    first = _claim(made[0])
    assert first is not None and first.status == "running"
    _finish(first)
    states = [Execution.objects.get(pk=e.pk).waiting for e in made[2:]]
    assert states == ["", "key"]  # the oldest held one took the freed place
    [key] = capacity.key_states()
    assert (key.key, key.limit, key.queued, key.waiting) == ("db", 2, 2, 1)


def test_a_claim_never_runs_more_than_the_limit(db):
    """A message for an execution past the limit (another scheduler's admission, a
    redelivery) is refused by the claim and the execution held again, ahead of later fires."""
    agent("n1")
    a, b = (
        job("a", concurrency_key="k", concurrency_limit=1),
        job("b", concurrency_key="k", concurrency_limit=1),
    )
    ea = _run(a)
    eb = _run(b)
    Execution.objects.filter(pk=eb.pk).update(waiting="")  # as if admitted by someone else
    assert _claim(ea) is not None
    assert _claim(eb) is None
    eb.refresh_from_db()
    assert (eb.status, eb.waiting, eb.published_at) == ("queued", "key", None)


def test_the_key_renders_from_metadata(db):
    agent("n1")
    j = job("m", concurrency_key="db:{metadata.db}", concurrency_limit=1, metadata={"db": "main"})
    e = _run(j)
    assert Execution.objects.get(pk=e.pk).concurrency_key == "db:main"
    assert ConcurrencyKey.objects.get(key="db:main").limit == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"concurrency_key": "db:{metadata.db}", "concurrency_limit": 1}, "concurrency_key"),
        ({"concurrency_key": "k"}, "concurrency_limit"),
        ({"concurrency_limit": 3}, "concurrency_limit"),
        ({"concurrency_key": "k", "rate_limit": "10/d"}, "rate_limit"),
        ({"concurrency_key": "k", "rate_limit": "0/s"}, "rate_limit"),
    ],
)
def test_bad_key_fields_are_refused_and_change_nothing(db, fields, field):
    with pytest.raises(InvalidJob) as caught:
        job("bad", **fields)
    assert field in str(caught.value.details) or field in str(caught.value)
    assert not Job.objects.filter(name="bad").exists()
    assert not ConcurrencyKey.objects.exists()


def test_forbid_skips_a_fire_while_its_key_is_full(db):
    agent("n1")
    holder = job("holder", concurrency_key="k", concurrency_limit=1)
    _claim(_run(holder))
    forbid = job("forbid", concurrency_key="k", concurrency_limit=1, concurrency="forbid")
    with transaction.atomic():
        [scheduled] = start_runs(
            [Fire(job=forbid, scheduled_at=timeutil.now(), trigger=Run.Trigger.SCHEDULE)]
        )
    [skipped] = Execution.objects.filter(run=scheduled)
    assert skipped.status == "skipped" and "key 'k'" in skipped.reason


def test_a_rate_limit_caps_starts_in_its_window(db):
    agent("n1")
    jobs = [job(f"r{i}", concurrency_key="api", rate_limit="2/m") for i in range(4)]
    made = [_run(j) for j in jobs]
    assert [Execution.objects.get(pk=e.pk).waiting for e in made] == ["", "", "key", "key"]
    for e in made[:2]:
        _finish(_claim(e))
    # Both finished, but the window still holds their two starts: nothing more starts.
    capacity.tick()
    assert Execution.objects.get(pk=made[2].pk).waiting == "key"
    # A minute later the window has moved on.
    later = timeutil.now() + timedelta(seconds=61)
    capacity.admit(now=later)
    assert [Execution.objects.get(pk=e.pk).waiting for e in made[2:]] == ["", ""]


def test_the_scheduler_comes_back_when_a_full_rate_window_frees_a_place(db):
    # Regression (e2e test_capacity): the leader admitted rate-held executions only on its
    # 0.5 s capacity pass; the window freed a moment after one (claims start after their
    # admission), so a 5/s key started 5 every 1.5 s. rate_wait says when to come back.
    agent("n1")
    jobs = [job(f"w{i}", concurrency_key="api", rate_limit="2/m") for i in range(3)]
    assert capacity.rate_wait() is None  # nothing held
    made = [_run(j) for j in jobs]
    assert capacity.rate_wait() is None  # held, but the window is not full: nothing started
    first = _claim(made[0])
    _claim(made[1])
    wait = capacity.rate_wait()
    assert wait is not None
    expected = (first.started_at - timeutil.now()).total_seconds() + 60
    assert abs(wait - expected) < 0.5
    assert capacity.rate_wait(now=first.started_at + timedelta(seconds=61)) is None
    limited = job("l0", concurrency_key="db", concurrency_limit=1)
    [_run(limited) for _ in range(2)]
    _claim(Execution.objects.filter(job_name="l0").order_by("pk").first())
    assert abs(capacity.rate_wait() - expected) < 0.5  # a limit alone sets no wake-up


def test_a_run_for_one_agent_waits_for_a_free_slot_and_takes_the_first(
    db, django_capture_on_commit_callbacks, settings
):
    settings.DKRON = {**settings.DKRON, "SLOT_QUEUE": 1}  # full: its slots are taken
    agent("n1")
    agent("n2")
    Agent.objects.update(slots=1)
    one = {"role": "dkron:1"}
    made = [_run(job(f"s{i}", tags=one)) for i in range(3)]
    rows = [Execution.objects.get(pk=e.pk) for e in made]
    assert sorted(r.node_name for r in rows[:2]) == ["n1", "n2"]
    assert (rows[2].node_name, rows[2].waiting, rows[2].status) == ("", "slot", "queued")
    on_n2 = next(r for r in rows[:2] if r.node_name == "n2")
    claimed = _claim(on_n2, "n2")
    with django_capture_on_commit_callbacks(execute=True):
        _finish(claimed)  # n2's slot frees: the waiting run goes there, and is published
    rows[2].refresh_from_db()
    assert (rows[2].node_name, rows[2].waiting) == ("n2", "")
    assert rows[2].published_at is not None


def test_a_run_for_every_agent_is_never_held_for_slots(db):
    """Placement on every matching agent (Dkron's default): each node runs it when its pool
    has room, oldest first in its queue; only runs for one of several agents wait unplaced."""
    agent("n1")
    Agent.objects.update(slots=1)
    made = [_run(job(f"all{i}")) for i in range(3)]
    assert all(Execution.objects.get(pk=e.pk).waiting == "" for e in made)


def test_members_and_metrics_show_slots(db, client, admin_user):
    agent("n1")
    Agent.objects.update(slots=3)
    e = _run(job("x"))
    _claim(e)
    client.force_login(admin_user)
    [member] = client.get("/v1/members").json()
    assert (member["slots"], member["slots_used"]) == (3, 1)
    text = client.get("/metrics").content.decode()
    assert 'dkronweb_agent_slots{agent="n1"} 3.0' in text
    assert 'dkronweb_agent_slots_used{agent="n1"} 1.0' in text


def test_the_concurrency_endpoint_lists_keys(db, client, admin_user):
    agent("n1")
    for i in range(3):
        _run(job(f"c{i}", concurrency_key="db", concurrency_limit=1, rate_limit="5/s"))
    client.force_login(admin_user)
    answer = client.get("/v1/concurrency")
    assert answer.status_code == 200
    assert answer.json() == [
        {"key": "db", "limit": 1, "rate_limit": "5/s", "running": 0, "queued": 1, "waiting": 2}
    ]


def test_dkron_fields_round_trip_and_unknown_clients_are_unchanged(db, client, admin_user):
    client.force_login(admin_user)
    body = {
        "name": "plain",
        "schedule": "@every 1h",
        "executor": "shell",
        "executor_config": {"command": "true"},
    }
    assert client.post("/v1/jobs", body, content_type="application/json").status_code == 201
    got = client.get("/v1/jobs/plain").json()
    assert (got["concurrency_key"], got["concurrency_limit"], got["rate_limit"]) == ("", None, "")
    keyed = {
        **body,
        "name": "keyed",
        "concurrency_key": "db",
        "concurrency_limit": 2,
        "rate_limit": "10/m",
    }
    assert client.post("/v1/jobs", keyed, content_type="application/json").status_code == 201
    got = client.get("/v1/jobs/keyed").json()
    assert (got["concurrency_key"], got["concurrency_limit"], got["rate_limit"]) == (
        "db",
        2,
        "10/m",
    )
    bad = {**body, "name": "bad", "concurrency_key": "db", "rate_limit": "often"}
    answer = client.post("/v1/jobs", bad, content_type="application/json")
    assert answer.status_code == 400 and "rate_limit" in answer.content.decode()


def test_a_key_no_job_declares_is_listed_until_its_last_execution_ends(db):
    agent("n1")
    j = job("moving", concurrency_key="old", concurrency_limit=1)
    held = _run(j)
    job("moving", concurrency_key="new", concurrency_limit=1)
    assert [s.key for s in capacity.key_states()] == ["new", "old"]  # "old" still holds one
    _finish(_claim(held))
    assert [s.key for s in capacity.key_states()] == ["new"]


@pytest.mark.postgresql
def test_a_long_waiting_line_costs_a_claim_admission_and_finish_nothing_more(db, monkeypatch):
    """3,000 executions waiting under a key and 3,000 finished ones of it: the claim, the
    finish and the admission after it read the key's running and admitted rows, its rate
    window and the head of its line, never the line or the history (issue 15's rule)."""

    require(on_postgres(), "plans are PostgreSQL's")
    # Every TRIM_EVERY-th run id trims the job's history, by design (test_history_costs).
    monkeypatch.setattr(executions, "TRIM_EVERY", 10**9)
    agent("n1")
    j = job("lined", concurrency_key="db", concurrency_limit=2, rate_limit="100/s")
    first = _run(j)
    now = timeutil.now()
    runs = Run.objects.bulk_create(Run(job=j, snapshot=first.run.snapshot) for _ in range(6000))
    Execution.objects.bulk_create(
        Execution(
            run=r,
            job=j,
            job_name=j.name,
            concurrency_key="db",
            **(
                {"waiting": "key"}
                if i % 2
                else {
                    "status": "success",
                    "started_at": now - timedelta(hours=1),
                    "finished_at": now - timedelta(hours=1),
                    "final": True,
                }
            ),
        )
        for i, r in enumerate(runs)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_execution")
    with explained() as seen:
        claimed = _claim(first)
        assert claimed is not None
        _finish(claimed)
    assert_bounded(seen)


def test_an_admitted_run_for_one_agent_goes_to_a_live_agent_with_room(db):
    """Held for its key, a run is on no agent; admitted, it takes a live one, not the agent
    that looked least busy when it fired (and may have died since)."""
    agent("n1")
    agent("n2")
    one = {"role": "dkron:1"}
    first = _run(job("hold", tags=one, concurrency_key="k", concurrency_limit=1))
    second = _run(job("next", tags=one, concurrency_key="k", concurrency_limit=1))
    second.refresh_from_db()
    assert (second.waiting, second.node_name) == ("key", "")
    first.refresh_from_db()
    other = "n2" if first.node_name == "n1" else "n1"
    Agent.objects.filter(name=other).update(last_heartbeat=None)  # declared dead
    _finish(_claim(first, first.node_name))
    moved = Execution.objects.get(pk=second.pk)
    assert (moved.waiting, moved.node_name) == ("", first.node_name)


def test_runs_held_for_a_key_leave_the_agents_free_for_other_work(db):
    """A key's waiting line is on no agent: it does not fill the agents' slots, so runs
    without the key (or with another) are placed at once (an outsider's run waited minutes
    behind 574 runs held for another key)."""
    agent("n1")
    agent("n2")
    Agent.objects.update(slots=2)
    one = {"role": "dkron:1"}
    hog = job("hog", tags=one, concurrency_key="hogkey", concurrency_limit=1)
    for _ in range(20):
        _run(hog)
    plain = _run(job("plain", tags=one))
    plain.refresh_from_db()
    assert plain.waiting == "" and plain.node_name in ("n1", "n2")
    other = _run(job("other", tags=one, concurrency_key="otherkey", concurrency_limit=1))
    other.refresh_from_db()
    assert other.waiting == "" and other.node_name in ("n1", "n2")


def test_by_default_a_full_agent_queues_runs_in_its_own_queue_least_busy_per_slot_first(db):
    """DKRON_SLOT_QUEUE=0 (the default): no run waits unplaced; the agent with the fewest
    queued or running per slot takes it, and its own queue holds it (Celery's model)."""
    agent("n1")
    agent("n2")
    Agent.objects.filter(name="n1").update(slots=1)
    Agent.objects.filter(name="n2").update(slots=3)
    one = {"role": "dkron:1"}
    made = [Execution.objects.get(pk=_run(job(f"d{i}", tags=one)).pk) for i in range(8)]
    assert all(e.waiting == "" for e in made)
    nodes = [e.node_name for e in made]
    assert (nodes.count("n1"), nodes.count("n2")) == (2, 6)  # 2 per slot on each
