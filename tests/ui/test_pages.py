"""The minimal UI and the admin: login required, pages render, admin actions use services."""

from __future__ import annotations

from jobs.models import Agent, Execution, Job
from jobs.services.jobs import job_upsert


def make_job(name: str = "nightly") -> Job:
    return job_upsert(
        data={
            "name": name,
            "schedule": "0 0 3 * * *",
            "timezone": "Europe/Berlin",
            "executor": "shell",
            "executor_config": {"command": "true"},
        }
    )[0]


def test_the_ui_asks_anonymous_visitors_to_log_in(client, db):
    response = client.get("/ui/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_dashboard_lists_jobs_and_agents(client, admin_user):
    make_job()
    Agent.objects.create(name="agent-x", tags={"role": "web"})
    client.force_login(admin_user)
    page = client.get("/ui/").content.decode()
    assert "nightly" in page and "agent-x" in page


def test_the_job_page_describes_the_schedule_in_plain_language(client, admin_user):
    make_job()
    client.force_login(admin_user)
    page = client.get("/ui/jobs/nightly/").content.decode()
    assert "03:00" in page and "Europe/Berlin" in page


def test_the_admin_lists_jobs_and_its_run_now_action_starts_a_run(client, admin_user):
    job = make_job()
    Agent.objects.create(
        name="agent-x", tags={"role": "dkron"}, last_heartbeat="2999-01-01T00:00:00Z"
    )
    client.force_login(admin_user)
    assert client.get("/admin/jobs/job/").status_code == 200
    response = client.post("/admin/jobs/job/", {"action": "run_now", "_selected_action": [job.pk]})
    assert response.status_code == 302
    assert Execution.objects.filter(job=job, status="queued").count() == 1


def test_the_admin_saves_jobs_through_the_validating_service(client, admin_user):
    client.force_login(admin_user)
    form = {
        "name": "from-admin",
        "schedule": "*/5 * * * *",
        "executor": "shell",
        "executor_config": '{"command": "true"}',
        "tags": "{}",
        "metadata": "{}",
        "processors": "{}",
        "notify": "{}",
        "retries": 0,
        "retry_backoff": 1,
        "concurrency": "allow",
        "misfire_policy": "skip",
        "catchup_window": 3600,
    }
    client.post("/admin/jobs/job/add/", form)
    assert not Job.objects.filter(name="from-admin").exists()  # 5-field cron refused
    form["schedule"] = "0 */5 * * * *"
    client.post("/admin/jobs/job/add/", form)
    job = Job.objects.get(name="from-admin")
    assert job.next_run is not None
