"""The agent in the scheduler's own process (the embedded default) is alive while the process
is, whatever its heartbeat's age: a busy process once aged it and every fire failed with
"no target nodes found"."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from agent.worker import start_agent
from jobs.models import Agent, Execution, ExecutionStatus, Job
from jobs.node import Identity
from jobs.services import agents as agent_services
from jobs.services.jobs import job_upsert
from jobs.services.maintenance import sweep
from jobs.services.runs import run_now

LONG_AGO = datetime.now(UTC) - timedelta(hours=1)  # far past AGENT_DEAD_AFTER


@pytest.fixture(autouse=True)
def no_local_agent() -> Iterator[None]:
    agent_services.agent_local_stopped()
    yield
    agent_services.agent_local_stopped()


def aged_agent(name: str, instance_id: str) -> Agent:
    return Agent.objects.create(
        name=name,
        instance_id=instance_id,
        tags=agent_services.builtin_tags(),
        last_heartbeat=LONG_AGO,
        concurrency=4,
    )


def a_job() -> Job:
    data = {
        "name": "tick",
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": "true"},
    }
    return Job.objects.get(pk=job_upsert(data=data)[0].pk)


def test_a_fire_goes_to_the_in_process_agent_even_when_its_heartbeat_aged(db):  # type: ignore[no-untyped-def]
    aged_agent("embedded", "i-1")
    agent_services.agent_local_started(name="embedded", instance_id="i-1")
    run_now(job=a_job())
    execution = Execution.objects.get()
    assert execution.status == ExecutionStatus.QUEUED
    assert execution.node_name == "embedded"
    assert agent_services.agent_state(Agent.objects.get()) == "alive"


def test_an_aged_agent_of_another_process_is_still_dead(db):  # type: ignore[no-untyped-def]
    aged_agent("elsewhere", "i-2")
    agent_services.agent_local_started(name="embedded", instance_id="i-1")
    run_now(job=a_job())
    execution = Execution.objects.get()
    assert execution.status == ExecutionStatus.FAILED
    assert agent_services.agent_state(Agent.objects.get()) == "failed"


def test_a_new_instance_under_the_same_name_is_not_vouched_for(db):  # type: ignore[no-untyped-def]
    aged_agent("embedded", "another-instance")
    agent_services.agent_local_started(name="embedded", instance_id="i-1")
    assert agent_services.alive_nodes() == []


def test_a_forked_child_does_not_vouch_for_its_parents_agent(db, monkeypatch):  # type: ignore[no-untyped-def]
    aged_agent("embedded", "i-1")
    agent_services.agent_local_started(name="embedded", instance_id="i-1")
    pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: pid + 1)  # as in celery's forked embedded beat
    assert agent_services.alive_nodes() == []


def test_once_the_agent_stops_its_heartbeat_decides_again(db):  # type: ignore[no-untyped-def]
    aged_agent("embedded", "i-1")
    agent_services.agent_local_started(name="embedded", instance_id="i-1")
    agent_services.agent_local_stopped()
    assert agent_services.alive_nodes() == []
    assert agent_services.agent_state(Agent.objects.get()) == "failed"


def test_the_sweep_leaves_the_in_process_agents_running_executions_alone(db):  # type: ignore[no-untyped-def]
    aged_agent("embedded", "i-1")
    aged_agent("elsewhere", "i-2")
    agent_services.agent_local_started(name="embedded", instance_id="i-1")
    job = a_job()
    for node in ("embedded", "elsewhere"):
        run = run_now(job=job)
        Execution.objects.filter(run=run).update(
            node_name=node, status=ExecutionStatus.RUNNING, heartbeat_at=LONG_AGO
        )
    report = sweep()
    assert report.closed == 1
    statuses = dict(Execution.objects.values_list("node_name", "status"))
    assert statuses == {"embedded": ExecutionStatus.RUNNING, "elsewhere": ExecutionStatus.FAILED}


@pytest.mark.django_db(transaction=True)
def test_starting_an_agent_notes_it_as_the_local_one() -> None:
    ident = Identity(name="embedded", tags=agent_services.builtin_tags())
    beat = start_agent(ident, 1)
    try:
        local = agent_services.local_agent()
        assert local is not None
        assert (local.name, local.instance_id) == ("embedded", ident.instance_id)
    finally:
        beat.stop()
        beat.join(10)
