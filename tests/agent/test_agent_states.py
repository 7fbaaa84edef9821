"""Leaving and dead agents in the services (issue 13, items 7, 8 and 10); the real-process
tests are in tests/faults/test_agent_lifecycle.py and tests/faults/test_agent_death.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from agent import revoke
from jobs.models import Agent, ClusterCounter, Execution, Job
from jobs.services import maintenance
from jobs.services.agents import agent_died, agent_leaving, agent_state, alive_nodes
from jobs.services.jobs import job_upsert
from jobs.services.maintenance import sweep
from jobs.services.runs import run_now
from tests.harness import empty_test_broker


def make_agent(name: str, **tags: str) -> Agent:
    return Agent.objects.create(
        name=name,
        instance_id=f"{name}-1",
        tags={"role": "dkron", **tags},
        last_heartbeat=datetime.now(UTC) + timedelta(days=3650),
        concurrency=4,
    )


def make_job(name: str, tags: dict[str, str] | None = None) -> Job:
    job = job_upsert(
        data={
            "name": name,
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": {"command": "true"},
            "tags": tags or {},
        }
    )[0]
    return Job.objects.get(pk=job.pk)


@pytest.fixture
def purged(monkeypatch):  # type: ignore[no-untyped-def]
    calls: list[str] = []
    monkeypatch.setattr(maintenance, "_purged", {})
    monkeypatch.setattr(maintenance, "purge_node_queue", lambda name: calls.append(name) or 3)
    empty_test_broker()  # the sweep republishes only past what waits in the node queues
    yield calls
    empty_test_broker()


def test_a_leaving_agent_shows_leaving_and_gets_no_new_work(db):
    make_agent("a1")
    make_agent("a2")
    agent_leaving(name="a1", instance_id="a1-1")
    assert agent_state(Agent.objects.get(name="a1")) == "leaving"
    assert [n.name for n in alive_nodes()] == ["a2"]


def test_an_agent_reported_dead_is_failed_at_once(db):
    make_agent("a1")
    assert agent_died(name="a1", instance_id="other") == 0  # another instance: untouched
    assert agent_died(name="a1", instance_id="a1-1") == 1
    assert agent_state(Agent.objects.get(name="a1")) == "failed"
    assert alive_nodes() == []


def test_members_api_shows_leaving_with_its_running_executions(db, api):
    make_agent("a1", box="x")
    run_now(job=make_job("j", {"box": "x"}))
    Execution.objects.update(status="running")
    agent_leaving(name="a1", instance_id="a1-1")
    [member] = api.get("/v1/members").json()
    assert (member["statusText"], member["Status"], member["running"]) == ("leaving", 2, 1)


def test_queued_work_of_a_dead_agent_moves_or_fails_on_the_next_sweep(db, purged):
    make_agent("a1", box="x")
    make_agent("a2", box="x")
    run_now(job=make_job("any-one", {"box": "x:1"}))
    run_now(job=make_job("all", {"box": "x"}))
    rows = Execution.objects.filter(node_name="a1")
    assert {r.placement for r in rows} == {"any", "node"}
    # Just published: before, nothing happened until QUEUED_REPUBLISH_AFTER had passed.
    Execution.objects.update(published_at=datetime.now(UTC))
    agent_died(name="a1", instance_id="a1-1")
    report = sweep()
    assert (report.moved, report.failed) == (1, 1)
    moved = Execution.objects.get(job_name="any-one")
    assert (moved.status, moved.node_name) == ("queued", "a2")
    failed = Execution.objects.get(job_name="all", node_name="a1")
    assert failed.status == "failed"
    assert failed.reason == "agent a1 died before it started this run"
    assert not failed.retryable
    assert purged == ["a1"] and report.purged == 3
    sweep()
    assert purged == ["a1"]  # once per dead instance


def test_queued_work_of_a_leaving_agent_moves_too(db, purged):
    make_agent("a1")
    make_agent("a2")
    run_now(job=make_job("u", {"role": "dkron:1"}))
    [execution] = Execution.objects.all()
    leaver = execution.node_name
    agent_leaving(name=leaver, instance_id=f"{leaver}-1")
    assert sweep().moved == 1
    execution.refresh_from_db()
    assert execution.node_name != leaver and execution.status == "queued"
    assert purged == [leaver]


def test_the_sweep_counts_what_it_republishes(db, purged):
    make_agent("a1")
    run_now(job=make_job("u"))
    old = datetime.now(UTC) - timedelta(hours=1)
    Execution.objects.update(published_at=old, queued_at=old)
    assert sweep().republished == 1
    assert ClusterCounter.objects.get(name="scheduler_republished:sweep").value == 1


def test_a_celery_revoke_of_a_queued_run_records_it_killed(db, monkeypatch):
    monkeypatch.setattr("executors.shell.kill_agent_processes", lambda *a, **k: [])
    make_agent("a1")
    run_now(job=make_job("u"))
    [execution] = Execution.objects.all()
    request = SimpleNamespace(task="dkronweb.run_execution", kwargs={"execution_id": execution.pk})
    revoke.on_task_revoked(sender=SimpleNamespace(name="shown-name"), request=request)
    execution.refresh_from_db()
    assert execution.status == "killed"
    assert execution.reason == "revoked by Celery (celery control revoke) before it started"


def test_a_celery_terminate_of_a_running_run_records_it_killed_with_the_signal(db, monkeypatch):
    monkeypatch.setattr("executors.shell.kill_agent_processes", lambda *a, **k: [4242])
    make_agent("a1")
    run_now(job=make_job("u"))
    Execution.objects.update(status="running", output="half")
    [execution] = Execution.objects.all()
    request = SimpleNamespace(task="dkronweb.run_execution", kwargs={"execution_id": execution.pk})
    revoke.on_task_revoked(request=request, terminated=True, signum=15)
    execution.refresh_from_db()
    assert execution.status == "killed" and not execution.retryable
    assert "SIGTERM" in execution.reason and "terminated by Celery" in execution.reason
    assert execution.output.startswith("half\n") and "killed 1 job process" in execution.output


def test_revokes_of_other_tasks_are_ignored(db):
    request = SimpleNamespace(task="dkronweb.notify_run", kwargs={"execution_id": 1})
    revoke.on_task_revoked(request=request)  # no query, no error


def test_celery_node_name_follows_the_agent_name_unless_n_was_given(settings):
    from celery.utils.nodenames import default_nodename, nodesplit

    from dkronweb.celery import _celery_node_name

    host = nodesplit(default_nodename(None))[1]
    worker = SimpleNamespace(hostname=default_nodename(None))
    _celery_node_name(instance=worker, options={"node_name": "w1"})
    assert worker.hostname == f"w1@{host}"
    explicit = SimpleNamespace(hostname="mine@box")
    _celery_node_name(instance=explicit, options={"node_name": "w1"})
    assert explicit.hostname == "mine@box"
