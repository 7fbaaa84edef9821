"""Busy (running executions with live output) and members (agents and what they run)."""

from __future__ import annotations

import re

from jobs.models import Execution, Job
from tests.web.api.helpers import add_agent, add_execution, make_user


def make_job(name: str) -> Job:
    return Job.objects.create(name=name, schedule="@every 1m", executor="shell", status="running")


def test_busy_and_members_ask_anonymous_visitors_to_log_in(client, db):
    for url in ["/ui/busy/", "/ui/busy/fragment/", "/ui/members/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/ui/login/?next="), url


def test_busy_lists_running_executions_and_refreshes_every_two_seconds(client, admin_user):
    make_job("long-task")
    running = add_execution("long-task", status="running", node="node-7", output="step 1\n")
    add_execution("long-task", status="success", output="done before")
    client.force_login(admin_user)
    page = client.get("/ui/busy/").content.decode()
    assert 'id="busy" data-refresh-url="/ui/busy/fragment/" data-refresh-every="2000"' in page
    assert re.findall(r'<tr data-execution="(\d+)"', page) == [str(running.pk)]
    assert 'href="/ui/jobs/long-task/"' in page and "node-7" in page and "step 1" in page
    assert "done before" not in page


def test_the_busy_fragment_is_the_live_part_of_the_page_with_the_latest_output(client, admin_user):
    make_job("long-task")
    running = add_execution("long-task", status="running", output="step 1\n")
    client.force_login(admin_user)
    Execution.objects.filter(pk=running.pk).update(output="step 1\nstep 2\n")
    fragment = client.get("/ui/busy/fragment/").content.decode()
    assert "<html" not in fragment
    assert f'data-execution="{running.pk}"' in fragment and "step 2" in fragment


def test_busy_shows_only_the_last_four_kilobytes_of_a_long_output(client, admin_user):
    make_job("chatty")
    ex = add_execution("chatty", status="running", output="a" * 6000 + "b" * 4096)
    client.force_login(admin_user)
    page = client.get("/ui/busy/").content.decode()
    shown = re.search(rf'<pre class="output" id="pre-{ex.pk}">(.*?)</pre>', page, re.S)
    assert shown and "a" not in shown.group(1) and "b" * 4096 in shown.group(1)
    assert f'href="/ui/executions/{ex.pk}/output/"' in page


def test_an_operator_gets_a_kill_button_and_a_read_only_user_does_not(client, admin_user):
    make_job("long-task")
    ex = add_execution("long-task", status="running")
    kill = f'action="/ui/executions/{ex.pk}/kill/"'
    client.force_login(admin_user)
    page = client.get("/ui/busy/").content.decode()
    assert kill in page and ">Kill</button>" in page

    client.force_login(make_user("viewer", "view_job"))
    for url in ["/ui/busy/", "/ui/busy/fragment/"]:
        page = client.get(url).content.decode()
        assert f'data-execution="{ex.pk}"' in page and kill not in page and "Kill" not in page


def test_busy_says_so_when_nothing_runs(client, admin_user):
    client.force_login(admin_user)
    assert "Nothing is running." in client.get("/ui/busy/").content.decode()


def test_members_lists_agents_with_state_tags_heartbeat_load_and_version(client, admin_user):
    add_agent(
        "agent-a", tags={"role": "web", "dc": "eu"}, running=1, concurrency=4, version="1.2.3"
    )
    add_agent("agent-b", heartbeat_age=3600)
    add_agent("agent-c", left=True)
    client.force_login(admin_user)
    page = client.get("/ui/members/").content.decode()
    assert 'id="members-table"' in page
    states = dict(re.findall(r'<tr data-agent="([\w-]+)" data-state="(\w+)"', page))
    assert states == {"agent-a": "alive", "agent-b": "failed", "agent-c": "left"}
    row = re.search(r'<tr data-agent="agent-a".*?</tr>', page, re.S)
    assert row
    for text in ["role=web", "dc=eu", "1 / 4", "1.2.3", "<time"]:
        assert text in row.group(0), text


def test_members_shows_what_each_agent_runs_with_links_to_the_jobs(client, admin_user):
    add_agent("agent-a")
    add_agent("agent-b")
    make_job("etl")
    make_job("backup")
    add_execution("etl", status="running", node="agent-a")
    add_execution("backup", status="running", node="agent-a")
    add_execution("backup", status="success", node="agent-b")
    add_execution("etl", status="running", node="ghost")
    client.force_login(admin_user)
    page = client.get("/ui/members/").content.decode()
    row_a = re.search(r'<tr data-agent="agent-a".*?</tr>', page, re.S)
    row_b = re.search(r'<tr data-agent="agent-b".*?</tr>', page, re.S)
    assert row_a and row_b
    assert 'href="/ui/jobs/etl/"' in row_a.group(0) and 'href="/ui/jobs/backup/"' in row_a.group(0)
    assert "/ui/jobs/" not in row_b.group(0)
    assert "Running on unregistered nodes" in page and "ghost" in page


def test_members_without_agents_explains_how_they_appear(client, db):
    client.force_login(make_user("viewer", "view_job"))
    page = client.get("/ui/members/").content.decode()
    assert "No agent has registered yet" in page


def test_members_shows_a_leaving_agent_with_what_it_still_runs(client, admin_user):
    from jobs.models import Agent

    add_agent("agent-l", running=0, concurrency=2)  # a prefork heartbeat says 0
    Agent.objects.filter(name="agent-l").update(leaving=True)
    make_job("etl")
    add_execution("etl", status="running", node="agent-l")
    client.force_login(admin_user)
    page = client.get("/ui/members/").content.decode()
    row = re.search(r'<tr data-agent="agent-l" data-state="leaving".*?</tr>', page, re.S)
    assert row, page
    assert "1 / 2" in row.group(0) and "badge leaving" in row.group(0)
