"""The dashboard: counts that match the API, running work (live), failures, agents, scheduler."""

from __future__ import annotations

import re
from datetime import timedelta

from jobs.models import Execution, Job
from jobs.services.lease import lease_acquire
from tests.web.api.helpers import add_agent, add_execution, now

STATUSES = ["success", "failed", "partially_failed", "running", "untriggered"]


def make_job(name: str, **fields: object) -> Job:
    return Job.objects.create(name=name, schedule="@every 1m", executor="shell", **fields)


def counts(page: str) -> dict[str, tuple[str, int]]:
    found = re.findall(
        r'data-testid="count-(\w+)" href="([^"]+)">\s*<span class="n">(\d+)</span>', page
    )
    return {key: (href, int(n)) for key, href, n in found}


def section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}".*?</section>', page, re.S)
    assert match, f"no section {section_id}"
    return match.group(0)


def test_the_dashboard_asks_anonymous_visitors_to_log_in(client, db):
    response = client.get("/ui/")
    assert response.status_code == 302
    assert response["Location"] == "/ui/login/?next=/ui/"


def test_the_dashboard_counts_jobs_by_status_exactly_as_the_api_filters_them(
    client, admin_user, api
):
    for i, status in enumerate(["success", "success", "failed", "partially_failed", "running"]):
        make_job(f"job-{i}", status=status)
    make_job("fresh")
    make_job("off", disabled=True, status="failed")
    client.force_login(admin_user)
    shown = counts(client.get("/ui/").content.decode())

    assert shown["total"] == ("/ui/jobs/", int(api.get("/v1/jobs")["X-Total-Count"]))
    for status in STATUSES:
        expected = int(api.get(f"/v1/jobs?status={status}")["X-Total-Count"])
        assert shown[status] == (f"/ui/jobs/?status={status}", expected)
    disabled = int(api.get("/v1/jobs?disabled=true")["X-Total-Count"])
    assert shown["disabled"] == ("/ui/jobs/?disabled=true", disabled)
    assert [shown[s][1] for s in ["total", *STATUSES, "disabled"]] == [7, 2, 2, 1, 1, 1, 1]


def test_each_count_links_to_the_jobs_list_filtered_the_same_way(client, admin_user):
    make_job("good", status="success")
    make_job("bad", status="failed")
    client.force_login(admin_user)
    href = counts(client.get("/ui/").content.decode())["failed"][0]
    listed = client.get(href).content.decode()
    assert 'data-job="bad"' in listed and 'data-job="good"' not in listed


def test_running_executions_show_job_node_and_start_and_refresh_as_a_fragment(client, admin_user):
    make_job("long-task", status="running")
    add_execution("long-task", status="running", node="node-7")
    client.force_login(admin_user)
    running = section(client.get("/ui/").content.decode(), "running")
    assert 'data-refresh-url="/ui/?fragment=running"' in running
    assert 'href="/ui/jobs/long-task/"' in running and "node-7" in running

    fragment = client.get("/ui/?fragment=running").content.decode()
    assert "<html" not in fragment
    assert 'href="/ui/jobs/long-task/"' in fragment and "<time" in fragment


def test_recent_failures_list_the_last_ten_failed_timed_out_or_killed_executions(
    client, admin_user
):
    make_job("flaky")
    oldest = add_execution("flaky", status="timeout")
    Execution.objects.filter(pk=oldest.pk).update(reason="took too long")
    for _ in range(10):
        add_execution("flaky", status="failed")
    add_execution("flaky", status="success")
    newest_kill = add_execution("flaky", status="killed")
    client.force_login(admin_user)
    failures = section(client.get("/ui/").content.decode(), "recent-failures")
    rows = re.findall(r'<tr data-execution="(\d+)"', failures)
    assert len(rows) == 10
    assert rows[0] == str(newest_kill.pk)
    assert "took too long" not in failures  # the oldest failure is the eleventh
    assert "success" not in failures


def test_a_failure_shows_its_reason(client, admin_user):
    make_job("flaky")
    ex = add_execution("flaky", status="failed")
    Execution.objects.filter(pk=ex.pk).update(reason="exit status 3")
    client.force_login(admin_user)
    failures = section(client.get("/ui/").content.decode(), "recent-failures")
    assert "exit status 3" in failures and 'href="/ui/jobs/flaky/"' in failures


def test_the_dashboard_shows_agents_with_their_tags_and_health(client, admin_user):
    add_agent("agent-ok", tags={"role": "web", "dc": "eu"})
    add_agent("agent-dead", heartbeat_age=3600)
    add_agent("agent-gone", left=True)
    client.force_login(admin_user)
    agents = section(client.get("/ui/").content.decode(), "agents")
    assert "role=web" in agents and "dc=eu" in agents
    health = dict(re.findall(r'data-agent="([\w-]+)">.*?<span class="badge (\w+)"', agents, re.S))
    assert health == {"agent-dead": "failed", "agent-gone": "left", "agent-ok": "alive"}
    assert "1 alive of 3" in agents


def test_the_dashboard_names_the_active_scheduler_and_since_when(client, admin_user):
    client.force_login(admin_user)
    assert "No scheduler holds the lease" in section(
        client.get("/ui/").content.decode(), "scheduler"
    )

    assert lease_acquire(holder="sched-host:4242:abc", ttl=60, member="sched-host-scheduler")
    scheduler = section(client.get("/ui/").content.decode(), "scheduler")
    assert "sched-host:4242:abc" in scheduler
    assert "Leader (member)" in scheduler and "sched-host-scheduler" in scheduler
    assert "Since" in scheduler and "<time" in scheduler


def test_fire_skew_shows_p50_p99_and_max_of_the_last_hundred_scheduled_starts(client, admin_user):
    make_job("ticker", missed_count=3)
    make_job("other", missed_count=4)
    base = now() - timedelta(hours=1)
    for seconds in range(1, 101):
        ex = add_execution("ticker", status="success")
        Execution.objects.filter(pk=ex.pk).update(
            scheduled_at=base, started_at=base + timedelta(seconds=seconds)
        )
    add_execution("ticker", status="success")  # a manual run: no scheduled time, not counted
    client.force_login(admin_user)
    skew = section(client.get("/ui/").content.decode(), "skew")
    assert 'data-testid="skew-p50">50.0 s<' in skew
    assert 'data-testid="skew-p99">99.0 s<' in skew
    assert 'data-testid="skew-max">100.0 s<' in skew
    assert 'data-testid="missed-fires">7<' in skew


def test_fire_skew_before_any_scheduled_run_says_so(client, admin_user):
    client.force_login(admin_user)
    skew = section(client.get("/ui/").content.decode(), "skew")
    assert "No scheduled execution has started yet" in skew
    assert 'data-testid="missed-fires">0<' in skew


def test_the_dashboard_shows_the_alerts_of_health_with_the_unmatched_job_names(client, admin_user):
    from jobs.services.jobs import job_upsert

    job_upsert(
        data={
            "name": "needs-gpu",
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": {"command": "true"},
            "tags": {"gpu": "true"},
        }
    )
    client.force_login(admin_user)
    page = client.get("/ui/").content.decode()
    assert 'id="alerts"' in page
    assert "no active scheduler" in page
    assert "no live agent" in page
    assert 'href="/ui/jobs/needs-gpu/"' in page
