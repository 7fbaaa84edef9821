"""Cluster endpoints: /v1, /v1/members, /v1/leader, /v1/isleader, /v1/busy."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest

from jobs.models import Lease
from jobs.services.lease import lease_acquire
from tests.web.api.helpers import add_agent, add_execution, assert_error, create, now

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/v1", "/v1/"])
def test_status_describes_the_agent_and_the_cluster(api, path):
    add_agent("alive-1")
    add_agent("gone", left=True)
    add_agent("silent", heartbeat_age=3600)

    response = api.get(path)

    assert response.status_code == 200
    body = response.json()
    assert body["agent"]["name"]
    assert body["agent"]["version"]
    assert body["serf"]["members"] == "3"
    assert body["serf"]["failed"] == "1"
    assert body["serf"]["left"] == "1"
    assert body["tags"]["role"] == "dkron"


def test_members_lists_agents_in_serf_member_shape(api):
    add_agent("agent-a", address="10.1.2.3", port=8946, tags={"role": "web", "dc": "eu"})

    response = api.get("/v1/members")

    assert response.status_code == 200
    assert response["X-Total-Count"] == "1"
    [member] = response.json()
    assert member["Name"] == "agent-a"
    assert member["Addr"] == "10.1.2.3"
    assert member["Port"] == 8946
    assert member["Tags"] == {"role": "web", "dc": "eu"}
    assert member["Status"] == 1
    assert member["statusText"] == "alive"


def test_a_member_with_an_old_heartbeat_is_failed_and_one_that_left_is_left(api):
    add_agent("dead", heartbeat_age=3600)
    add_agent("gone", left=True)
    add_agent("ok")

    members = {m["Name"]: m for m in api.get("/v1/members").json()}

    assert (members["dead"]["statusText"], members["dead"]["Status"]) == ("failed", 4)
    assert (members["gone"]["statusText"], members["gone"]["Status"]) == ("left", 3)
    assert (members["ok"]["statusText"], members["ok"]["Status"]) == ("alive", 1)


def test_no_members_is_an_empty_list(api):
    response = api.get("/v1/members")

    assert response.json() == []
    assert response["X-Total-Count"] == "0"


def test_leader_is_a_404_when_no_scheduler_holds_the_lease(api):
    assert_error(api.get("/v1/leader"), 404)


def test_leader_shows_the_scheduler_holding_the_lease(api):
    assert lease_acquire(holder="sched-host:4242:abc", ttl=60)

    response = api.get("/v1/leader")

    assert response.status_code == 200
    body = response.json()
    assert body["Name"] == "sched-host:4242:abc"
    assert body["Addr"] == "sched-host"
    assert body["statusText"] == "alive"


def test_an_expired_lease_means_no_leader(api):
    assert lease_acquire(holder="old-host:1:x", ttl=60)
    Lease.objects.update(expires_at="2000-01-01T00:00:00Z")

    assert_error(api.get("/v1/leader"), 404)


def test_isleader_answers_i_am_a_follower_with_a_404(api):
    lease_acquire(holder="some-other-host:1:x", ttl=60)

    response = api.get("/v1/isleader")

    assert response.status_code == 404
    assert response.json() == "I am a follower"


def test_isleader_answers_i_am_a_leader_when_this_process_holds_the_lease(api):
    lease_acquire(holder=f"{socket.gethostname()}:{os.getpid()}:abc", ttl=60)

    response = api.get("/v1/isleader")

    assert response.status_code == 200
    assert response.json() == "I am a leader"


def test_isleader_is_a_follower_when_no_scheduler_runs(api):
    assert api.get("/v1/isleader").status_code == 404


def test_busy_lists_only_running_executions_oldest_first(api):
    create(api, "job1")
    create(api, "job2")
    newer = add_execution("job1", status="running", output="partial", started=now())
    older = add_execution("job2", status="running", started=now() - timedelta(minutes=5))
    add_execution("job1", status="queued")
    add_execution("job1", status="success")

    response = api.get("/v1/busy")

    assert response.status_code == 200
    assert response["X-Total-Count"] == "2"
    assert [e["id"] for e in response.json()] == [str(older.pk), str(newer.pk)]
    assert response.json()[1]["output"] == "partial"


def test_busy_is_an_empty_list_when_nothing_runs(api):
    assert api.get("/v1/busy").json() == []
