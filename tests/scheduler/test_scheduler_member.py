"""The scheduler is a cluster member, so /v1/leader names one of /v1/members (Dkron's leader
is always a member): a scheduler-only process registers a member of its own, tagged and never
given work; in one process with an agent, the leader is that agent."""

from __future__ import annotations

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

import dkronweb
from jobs import node as node
from jobs.models import Agent, Execution, Lease
from jobs.services.runs import run_now
from scheduler.beat import JobScheduler
from tests.factories import agent, job

SCHEDULER_MEMBER = f"{settings.NODE_NAME}-scheduler"


@pytest.fixture
def no_agent_here(monkeypatch):
    """This process runs no agent (as `manage.py scheduler` does not)."""
    monkeypatch.setattr(node, "_identity", None)


def scheduler() -> JobScheduler:
    s = JobScheduler(app=dkronweb.celery_app, lazy=True)
    s.tick()
    return s


def names(api) -> list[str]:
    return [m["Name"] for m in api.get("/v1/members").json()]


def test_a_scheduler_only_process_is_the_leader_and_one_of_the_members(
    transactional_db, api, no_agent_here
):
    agent("worker-1")

    scheduler()

    leader = api.get("/v1/leader").json()
    assert leader["Name"] == SCHEDULER_MEMBER
    assert leader["Name"] in names(api)
    assert leader["Tags"]["dkronweb_role"] == "scheduler"
    assert leader["Tags"]["server"] == "true" and leader["statusText"] == "alive"
    assert leader["leadership_changes"] == 1
    assert api.get("/v1/isleader").json() == "I am a leader"  # as before: the lease holder


def test_in_one_process_with_an_agent_the_leader_is_that_agent(transactional_db, api, monkeypatch):
    monkeypatch.setattr(node, "_identity", node.Identity(name="vm"))
    agent("vm")

    scheduler()

    assert names(api) == ["vm"]
    leader = api.get("/v1/leader").json()
    assert leader["Name"] == "vm" and "dkronweb_role" not in leader["Tags"]


def test_a_scheduler_only_member_is_never_given_work_nor_counted_as_an_agent(
    transactional_db, api, no_agent_here
):
    agent("worker-1")
    scheduler()

    run_now(job=job("once", tags={"server": "true:1"}))
    run_now(job=job("everywhere"))
    run_now(job=job("aimed-at-it", tags={"dkronweb_role": "scheduler"}))

    placed = dict(Execution.objects.values_list("job_name", "node_name"))
    assert placed["once"] == placed["everywhere"] == "worker-1"
    failed = Execution.objects.get(job_name="aimed-at-it")
    assert failed.status == "failed" and failed.node_name != SCHEDULER_MEMBER
    assert api.get("/health").json()["agents"] == {"alive": 1}
    scraped = {
        m.name: m for m in text_string_to_metric_families(api.get("/metrics").content.decode())
    }
    alive = [s for s in scraped["dkronweb_agents"].samples if s.labels["state"] == "alive"]
    assert alive[0].value == 1


def test_a_scheduler_that_stops_leaves_and_a_restart_takes_its_member_back(
    transactional_db, api, no_agent_here
):
    first = scheduler()
    first.close()

    assert Agent.objects.get(name=SCHEDULER_MEMBER).left
    assert Lease.objects.get().member == ""

    second = scheduler()

    member = Agent.objects.get(name=SCHEDULER_MEMBER)
    assert not member.left and member.instance_id == second.member.instance_id
    assert api.get("/v1/leader").json()["Name"] == SCHEDULER_MEMBER


def test_a_lease_without_a_member_still_answers_its_holder(transactional_db, api):
    from jobs.services.lease import lease_acquire

    assert lease_acquire(holder="old-release:1:abc", ttl=60)  # a scheduler before this change

    assert api.get("/v1/leader").json()["Name"] == "old-release:1:abc"
