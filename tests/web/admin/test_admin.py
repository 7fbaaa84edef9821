"""The Django admin: useful lists for jobs and executions, actions that go through services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from jobs.models import Agent, Execution, Job
from jobs.services.executions import execution_claim
from jobs.services.jobs import job_upsert
from jobs.services.runs import run_now

FUTURE = datetime.now(UTC) + timedelta(days=3650)


def make_job(name: str = "nightly", **fields) -> Job:
    data = {
        "name": name,
        "schedule": "0 0 3 * * *",
        "executor": "shell",
        "executor_config": {"command": "true"},
        **fields,
    }
    return job_upsert(data=data)[0]


def alive_agent() -> Agent:
    return Agent.objects.create(name="n1", tags={"role": "x"}, last_heartbeat=FUTURE)


def staff(*perms: str):
    user = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_the_job_list_has_columns_filters_and_search(client, admin_user):
    make_job("alpha")
    make_job("beta", disabled=True)
    client.force_login(admin_user)
    page = client.get("/admin/jobs/job/?q=alp").content.decode()
    assert "alpha" in page and "beta" not in page
    page = client.get("/admin/jobs/job/?disabled__exact=1").content.decode()
    assert "beta" in page and ">alpha<" not in page


def test_enable_and_disable_actions_toggle_through_the_service(client, admin_user):
    job = make_job("flip")
    client.force_login(admin_user)
    client.post("/admin/jobs/job/", {"action": "disable", "_selected_action": [job.pk]})
    assert Job.objects.get(pk=job.pk).disabled
    client.post("/admin/jobs/job/", {"action": "enable", "_selected_action": [job.pk]})
    assert not Job.objects.get(pk=job.pk).disabled


def test_the_execution_list_links_the_job_and_the_kill_action_asks_the_agent_to_stop(
    client, admin_user
):
    alive_agent()
    run_now(job=make_job("long"))
    execution = Execution.objects.get()
    execution_claim(execution_id=execution.pk, node_name="n1")
    client.force_login(admin_user)
    page = client.get("/admin/jobs/execution/").content.decode()
    assert 'href="/ui/jobs/long/"' in page
    client.post("/admin/jobs/execution/", {"action": "kill", "_selected_action": [execution.pk]})
    assert Execution.objects.get(pk=execution.pk).kill_requested


def test_staff_without_the_operate_permission_get_no_run_or_kill_actions(client, db):
    make_job("guarded")
    client.force_login(staff("view_job", "view_execution"))
    jobs_page = client.get("/admin/jobs/job/")
    assert jobs_page.status_code == 200
    assert 'value="run_now"' not in jobs_page.content.decode()
    executions_page = client.get("/admin/jobs/execution/").content.decode()
    assert 'value="kill"' not in executions_page


def test_deleting_in_the_admin_goes_through_the_service(client, admin_user):
    parent = make_job("parent-a")
    make_job("child-a", parent_job="parent-a")
    client.force_login(admin_user)
    client.post(f"/admin/jobs/job/{parent.pk}/delete/", {"post": "yes"})
    assert Job.objects.filter(name="parent-a").exists()  # refused: it has a dependent
    child = Job.objects.get(name="child-a")
    client.post(
        "/admin/jobs/job/",
        {"action": "delete_selected", "_selected_action": [child.pk], "post": "yes"},
    )
    assert not Job.objects.filter(name="child-a").exists()
    client.post(f"/admin/jobs/job/{parent.pk}/delete/", {"post": "yes"})
    assert not Job.objects.filter(name="parent-a").exists()
