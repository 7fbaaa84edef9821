"""Who may do what on the job page and form: the API's permissions, with buttons hidden from
users who lack them and a 403 for posting anyway."""

from __future__ import annotations

import re
from typing import Any

import pytest

from jobs.models import Execution, Job, Run
from jobs.services.jobs import job_upsert
from tests.web.api.helpers import add_agent, make_user
from tests.web.ui.test_job_form import form_data, inline_error


def make_job(name: str = "nightly", **fields: Any) -> Job:
    data: dict[str, Any] = {
        "name": name,
        "schedule": "0 0 3 * * *",
        "timezone": "Europe/Berlin",
        "executor": "shell",
        "executor_config": {"command": "true"},
    }
    data.update(fields)
    return job_upsert(data=data)[0]


def running_execution(job: Job) -> Execution:
    run = Run.objects.create(job=job, trigger="manual", snapshot={})
    return Execution.objects.create(
        run=run, job=job, job_name=job.name, node_name="n1", status="running"
    )


@pytest.fixture
def viewer(db):  # type: ignore[no-untyped-def]
    return make_user("viewer", "view_job")


def test_a_read_only_user_sees_the_job_page_without_action_buttons(client, viewer):
    job = make_job()
    running_execution(job)
    client.force_login(viewer)
    page = client.get("/ui/jobs/nightly/").content.decode()
    assert 'id="job-summary"' in page and 'id="next-fires"' in page
    assert 'data-status="running"' in page
    for text in ("Run now", "Disable", "Enable", "Edit", "Clone", "Delete", "Kill"):
        assert not re.search(rf">\s*{text}\s*</(button|a)>", page), text
    fragment = client.get("/ui/jobs/nightly/executions/").content.decode()
    assert 'data-status="running"' in fragment and "Kill" not in fragment


def test_a_read_only_user_gets_403_for_every_action_and_nothing_changes(client, viewer):
    add_agent("agent-1")
    job = make_job()
    execution = running_execution(job)
    client.force_login(viewer)
    posts = [
        "/ui/jobs/nightly/run/",
        "/ui/jobs/nightly/toggle/",
        "/ui/jobs/nightly/delete/",
        f"/ui/executions/{execution.pk}/kill/",
        "/ui/jobs/new/",
        "/ui/jobs/nightly/edit/",
    ]
    for url in posts:
        data = form_data(name="nightly") if url.endswith(("/new/", "/edit/")) else {}
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert "You do not have permission" in response.content.decode()
    for url in ("/ui/jobs/new/", "/ui/jobs/nightly/edit/", "/ui/jobs/nightly/clone/"):
        assert client.get(url).status_code == 403, url
    assert client.get("/ui/jobs/nightly/delete/").status_code == 403
    job.refresh_from_db()
    execution.refresh_from_db()
    assert job.disabled is False and job.executor_config == {"command": "true"}
    assert Execution.objects.filter(job=job).count() == 1
    assert execution.kill_requested is False


def test_each_button_shows_for_the_permission_it_needs(client, db):
    job = make_job()
    running_execution(job)
    expected = {
        "operate_job": ("Run now", "Disable", "Kill"),
        "change_job": ("Edit",),
        "add_job": ("Clone",),
        "delete_job": ("Delete",),
    }
    everything = {text for texts in expected.values() for text in texts}
    for perm, texts in expected.items():
        user = make_user(f"only-{perm}", "view_job", perm)
        client.force_login(user)
        page = client.get("/ui/jobs/nightly/").content.decode()
        shown = {t for t in everything if re.search(rf">\s*{t}\s*</(button|a)>", page)}
        assert shown == set(texts), perm


def test_run_now_needs_operate_but_not_the_run_code_permission(client, db):
    add_agent("agent-1")
    job = make_job()
    client.force_login(make_user("operator", "view_job", "operate_job"))
    response = client.post("/ui/jobs/nightly/run/")
    assert response.status_code == 302
    assert Execution.objects.filter(job=job, status="queued").count() == 1


def test_without_run_code_a_shell_job_cannot_be_created_or_changed(client, db):
    make_job("existing")
    user = make_user("editor", "view_job", "add_job", "change_job")
    client.force_login(user)
    response = client.post("/ui/jobs/new/", form_data())
    assert response.status_code == 403
    page = response.content.decode()
    assert "permission required" in inline_error(page, "executor")
    assert "run code jobs" in page and 'id="form-errors"' in page
    assert not Job.objects.filter(name="greet").exists()
    response = client.post(
        "/ui/jobs/existing/edit/", form_data(name="existing", **{"config.command": "rm -rf /"})
    )
    assert response.status_code == 403
    assert Job.objects.get(name="existing").executor_config == {"command": "true"}


def test_without_run_code_a_job_that_runs_no_code_can_be_created(client, db):
    client.force_login(make_user("editor", "view_job", "add_job"))
    data = form_data(
        executor="http",
        _config_executor="http",
        **{"config.command": None, "config.method": "GET", "config.url": "http://example.com/"},
    )
    response = client.post("/ui/jobs/new/", data)
    assert response.status_code == 302, response.content.decode()
    assert Job.objects.get(name="greet").executor == "http"


def test_adding_is_not_editing(client, db):
    make_job("existing")
    client.force_login(make_user("adder", "view_job", "add_job", "run_code_jobs"))
    assert client.get("/ui/jobs/new/").status_code == 200
    assert client.get("/ui/jobs/existing/clone/").status_code == 200
    assert client.get("/ui/jobs/existing/edit/").status_code == 403
    client.force_login(make_user("changer", "view_job", "change_job", "run_code_jobs"))
    assert client.get("/ui/jobs/existing/edit/").status_code == 200
    assert client.get("/ui/jobs/new/").status_code == 403
