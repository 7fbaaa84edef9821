"""Leave: POST /v1/leave (a no-op answering the members, as no web node is a Serf member) and
`manage.py leave --node-name X`, which marks a decommissioned agent as left."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Agent
from jobs.services.agents import agent_state, alive_nodes
from tests.web.api.helpers import add_agent, assert_error, client_for, make_user

pytestmark = pytest.mark.django_db


def test_post_leave_answers_the_member_list_and_changes_nothing(api):
    add_agent("node-a")
    add_agent("node-b", left=True)
    members = api.get("/v1/members").json()

    response = api.post("/v1/leave")

    assert response.status_code == 200
    assert response.json() == members
    assert [m["statusText"] for m in response.json()] == ["alive", "left"]
    assert not Agent.objects.get(name="node-a").left


def test_post_leave_needs_the_change_agent_permission(db):
    reader = client_for(make_user("reader", "change_job"))

    assert_error(reader.post("/v1/leave"), 403)


def test_leave_needs_credentials(anon, db):
    assert_error(anon.post("/v1/leave"), 401)


def test_the_leave_command_marks_the_agent_left_and_it_gets_no_more_work(db):
    add_agent("old-node", running=3)
    add_agent("new-node")
    stdout = io.StringIO()

    call_command("leave", "--node-name", "old-node", stdout=stdout)

    agent = Agent.objects.get(name="old-node")
    assert agent.left and agent.running == 0
    assert agent_state(agent) == "left"
    assert [n.name for n in alive_nodes()] == ["new-node"]
    assert "agent old-node marked as left" in stdout.getvalue()


def test_the_leave_command_refuses_an_unknown_agent(db):
    with pytest.raises(CommandError, match="no agent named 'ghost'"):
        call_command("leave", "--node-name", "ghost")


def test_the_leave_command_needs_a_node_name(db):
    with pytest.raises(CommandError):
        call_command("leave")
