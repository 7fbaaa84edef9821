"""Agent-side counting: in process, across forked children (prefork), and the snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from agent.runner import run_execution
from jobs import telemetry, timeutil
from jobs.models import Agent
from jobs.services import notifications
from jobs.services.agents import agent_heartbeat, agent_register
from jobs.services.runs import run_now
from jobs.telemetry import DURATION, EXECUTIONS, FIRE_SKEW, NOTIFICATION_FAILURES
from tests.factories import agent, job

ROOT = Path(__file__).resolve().parents[3]


def rows(snapshot: dict, family: telemetry.Family) -> list:
    return snapshot["f"].get(family.name, [])


def test_an_empty_snapshot_before_anything_ran():
    assert telemetry.snapshot() == {"v": 1, "f": {}}


def test_executions_durations_and_fire_skew_are_counted_in_process():
    now = timeutil.now()
    started = now - timedelta(seconds=2)
    for status in ("success", "success", "failed"):
        telemetry.observe_execution(
            job="backup",
            status=status,
            started_at=started,
            finished_at=now,
            scheduled_at=started - timedelta(seconds=0.2),
            scheduled=True,
        )
    telemetry.observe_execution(  # a manual run: no fire skew
        job="adhoc", status="success", started_at=started, finished_at=now, scheduled=False
    )
    snap = json.loads(json.dumps(telemetry.snapshot()))  # what the JSONField stores

    assert rows(snap, EXECUTIONS) == [
        ["adhoc", "success", 1.0],
        ["backup", "failed", 1.0],
        ["backup", "success", 2.0],
    ]
    [adhoc, backup] = rows(snap, DURATION)
    assert backup[0] == "backup" and backup[1] == pytest.approx(6.0)
    counts = backup[2]
    assert len(counts) == len(DURATION.buckets) + 1 and counts[-1] == 3
    two_and_a_half = DURATION.buckets.index(2.5)
    assert counts[two_and_a_half - 1] == 0 and counts[two_and_a_half] == 3  # 2 s <= 2.5
    [skew] = rows(snap, FIRE_SKEW)
    assert skew[0] == pytest.approx(0.6) and skew[1][-1] == 3
    assert skew[1][FIRE_SKEW.buckets.index(0.25)] == 3


def test_a_notification_failure_is_counted_by_channel():
    def broken() -> None:
        raise RuntimeError("smtp down")

    outcome = notifications._deliver("job x run 1", "email", "email to 1", broken)
    assert not outcome.ok
    telemetry.count_notification_failure("webhook")
    telemetry.count_notification_failure("webhook")
    assert rows(telemetry.snapshot(), NOTIFICATION_FAILURES) == [
        ["email", 1.0],
        ["webhook", 2.0],
    ]


def test_observing_never_raises(monkeypatch):
    def boom(family):
        raise OSError("disk full")

    monkeypatch.setattr(telemetry, "_metric", boom)
    now = timeutil.now()
    telemetry.observe_execution(job="j", status="success", started_at=now, finished_at=now)
    telemetry.count_notification_failure("email")


def test_the_runner_counts_what_it_ran_without_a_query_more(transactional_db, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from agent import runner
    from jobs.models import Execution
    from jobs.services import executions as execution_services

    class NoFlusher:  # the agent's output thread would outlive the test database
        def add(self, *args: object) -> None:
            pass

        def remove(self, *args: object) -> None:
            pass

    monkeypatch.setattr(runner, "_flusher", NoFlusher())
    # History trimming runs on every TRIM_EVERY-th run id: keep it out of the query counts.
    monkeypatch.setattr(execution_services, "TRIM_EVERY", 10**9)
    agent("n1")
    ok = job("metric-ok", executor_config={"command": "echo fine"})
    bad = job("metric-bad", executor_config={"command": "exit 3"})

    def run_all() -> list[int]:
        for j in (ok, ok, bad):
            run_now(job=j)
        counts = []
        for execution in Execution.objects.filter(status="queued").order_by("id"):
            with CaptureQueriesContext(connection) as captured:
                run_execution(execution.pk, node_name="n1")
            counts.append(len(captured))
        return counts

    with monkeypatch.context() as m:
        m.setattr(runner.telemetry, "observe_execution", lambda **kw: None)
        without = run_all()
    assert telemetry.snapshot() == {"v": 1, "f": {}}
    assert run_all() == without  # counting costs no query

    snap = telemetry.snapshot()
    assert rows(snap, EXECUTIONS) == [["metric-bad", "failed", 1.0], ["metric-ok", "success", 2.0]]
    assert {r[0]: r[2][-1] for r in rows(snap, DURATION)} == {"metric-bad": 1, "metric-ok": 2}
    [[_, skew_counts]] = rows(snap, FIRE_SKEW)
    assert skew_counts[-1] == 0  # manual runs have no fire skew


FORKING = textwrap.dedent(
    """
    import json, multiprocessing, sys
    from datetime import datetime, timedelta, timezone
    import prometheus_client  # imported first, as in an agent: the env var was not set yet
    from jobs import telemetry

    path = telemetry.setup(sys.argv[1], base=sys.argv[2])

    def work(n):
        now = datetime.now(timezone.utc)
        for i in range(n):
            telemetry.observe_execution(
                job="forked", status="success" if i % 2 else "failed",
                started_at=now - timedelta(seconds=1), finished_at=now,
                scheduled_at=now - timedelta(seconds=1.01), scheduled=True,
            )

    if __name__ == "__main__":
        work(1)  # the parent counts too, before forking
        ctx = multiprocessing.get_context("fork")
        children = [ctx.Process(target=work, args=(n,)) for n in (4, 6)]
        for c in children:
            c.start()
        for c in children:
            c.join()
        files = sorted(p.name for p in path.glob("counter_*.db"))
        print(json.dumps({"snapshot": telemetry.snapshot(), "files": files}))
    """
)


def test_forked_children_count_into_the_agents_directory_and_the_parent_merges_them(
    tmp_path: Path,
):
    script = tmp_path / "forking.py"
    script.write_text(FORKING)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(script), "abc123", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["files"]) == 3  # the parent and two children, one file each
    snap = result["snapshot"]
    # 1 + 4 + 6 executions; odd i succeed: 0 + 2 + 3 successes.
    assert rows(snap, EXECUTIONS) == [["forked", "failed", 6.0], ["forked", "success", 5.0]]
    [[job_name, total, counts]] = rows(snap, DURATION)
    assert job_name == "forked" and counts[-1] == 11 and total == pytest.approx(11.0)
    [[_, skew_counts]] = rows(snap, FIRE_SKEW)
    assert skew_counts[-1] == 11
    # The directory is private to the instance and removed when the agent exits.
    assert not (tmp_path / "dkronweb-metrics-abc123").exists()


def test_setup_starts_clean_and_prunes_the_directories_of_dead_agents(tmp_path: Path):
    stale = tmp_path / "dkronweb-metrics-dead"
    stale.mkdir()
    (stale / "owner.pid").write_text("999999999")
    (stale / "counter_1.db").write_bytes(b"x")
    live = tmp_path / "dkronweb-metrics-live"
    live.mkdir()
    (live / "owner.pid").write_text(str(os.getppid()))
    mine = tmp_path / "dkronweb-metrics-me"
    mine.mkdir()
    (mine / "counter_42.db").write_bytes(b"left by a previous run")

    path = telemetry.setup("me", base=tmp_path)

    assert path == mine and os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(mine)
    assert sorted(p.name for p in mine.iterdir()) == ["owner.pid"]
    assert not stale.exists() and live.exists()
    now = timeutil.now()
    telemetry.observe_execution(job="j", status="success", started_at=now, finished_at=now)
    assert rows(telemetry.snapshot(), EXECUTIONS) == [["j", "success", 1.0]]
    assert any(p.name.startswith("counter_") for p in mine.iterdir())


def test_the_heartbeat_stores_the_snapshot_in_the_same_update(db, django_assert_num_queries):
    agent_register(name="a1", instance_id="i1", tags={})
    snap = {"v": 1, "f": {"dkronweb_executions": [["j", "success", 2.0]]}}
    with django_assert_num_queries(1):
        assert agent_heartbeat(name="a1", instance_id="i1", running=1, metrics=snap)
    assert Agent.objects.get(name="a1").metrics == snap
    assert agent_heartbeat(name="a1", instance_id="i1", running=0)  # None: kept as it is
    assert Agent.objects.get(name="a1").metrics == snap
    assert not agent_heartbeat(name="a1", instance_id="other", running=0, metrics={})
    agent_register(name="a1", instance_id="i2", tags={})  # a new instance counts from zero
    assert Agent.objects.get(name="a1").metrics == {}
