"""Pause: /v1/pause and /v1/unpause, cluster-wide in the database; job definitions are frozen
for every entry point (API, UI form, services) while jobs keep firing and running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.errors import ClusterPaused
from jobs.models import Agent, ClusterFlag, Execution, Job
from jobs.services import cluster
from jobs.services.executions import execution_claim, execution_finish
from jobs.services.jobs import job_delete, job_upsert
from jobs.services.runs import fire_due_jobs, run_now
from tests.web.api.helpers import assert_error, client_for, create, job_body, make_user
from tests.web.ui.test_job_form import form_data

pytestmark = pytest.mark.django_db

PAUSED_MESSAGE = "New job submissions are currently paused"


def pause(api) -> None:
    response = api.post("/v1/pause")
    assert response.status_code == 200, response.content
    assert response.json() == {"paused": True}


def test_the_cluster_is_not_paused_at_first(api):
    response = api.get("/v1/pause")

    assert response.status_code == 200
    assert response.json() == {"paused": False}


def test_pause_and_unpause_answer_and_store_the_state_with_who_and_when(api):
    pause(api)
    assert api.get("/v1/pause").json() == {"paused": True}
    flag = ClusterFlag.objects.get(name="paused")
    assert flag.value is True and flag.changed_by == "root" and flag.changed_at is not None

    response = api.post("/v1/unpause")

    assert response.status_code == 200
    assert response.json() == {"paused": False}
    assert api.get("/v1/pause").json() == {"paused": False}


def test_pausing_twice_and_unpausing_twice_are_harmless(api):
    pause(api)
    pause(api)
    assert api.post("/v1/unpause").json() == {"paused": False}
    assert api.post("/v1/unpause").json() == {"paused": False}
    assert ClusterFlag.objects.count() == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/v1/jobs"), ("patch", "/v1/jobs"), ("put", "/v1/jobs/new-job")],
)
def test_creating_a_job_through_the_api_is_a_503_while_paused(api, method, path):
    pause(api)

    response = getattr(api, method)(path, job_body("new-job"), format="json")

    # Dkron's text word for word (issue 11; the UI banner says how to unpause).
    assert assert_error(response, 503)["error"] == PAUSED_MESSAGE
    assert not Job.objects.filter(name="new-job").exists()


def test_changing_and_deleting_a_job_through_the_api_are_503_while_paused(api):
    create(api, "kept", owner="before")
    pause(api)

    changed = api.put("/v1/jobs/kept", job_body("kept", owner="after"), format="json")
    deleted = api.delete("/v1/jobs/kept")

    assert_error(changed, 503)
    assert assert_error(deleted, 503)["error"].startswith("Job deletions are currently paused")
    assert Job.objects.get(name="kept").owner == "before"


def test_writes_work_again_after_unpause(api):
    pause(api)
    api.post("/v1/unpause")

    create(api, "after")
    assert api.delete("/v1/jobs/after").status_code == 200


def test_run_toggle_and_reads_still_work_while_paused(api):
    Agent.objects.create(
        name="n1", tags={"role": "dkron"}, last_heartbeat=datetime.now(UTC) + timedelta(days=1)
    )
    create(api, "busy")
    pause(api)

    assert api.get("/v1/jobs/busy").status_code == 200
    assert api.post("/v1/jobs/busy/run").status_code == 202
    assert api.post("/v1/jobs/busy/toggle").json()["disabled"] is True
    assert Execution.objects.filter(job_name="busy").exists()


def test_the_services_refuse_every_change_while_paused_whoever_calls_them(api):
    job = create(api, "svc")
    cluster.cluster_set_paused(paused=True, actor="ops")

    with pytest.raises(ClusterPaused):
        job_upsert(data=job_body("other"))
    with pytest.raises(ClusterPaused):
        job_delete(job=Job.objects.get(name=job["name"]))


def test_the_scheduler_keeps_firing_due_jobs_while_paused(db):
    Agent.objects.create(
        name="n1", tags={"role": "dkron"}, last_heartbeat=datetime.now(UTC) + timedelta(days=1)
    )
    job = job_upsert(data=job_body("ticking", schedule="@every 1m"))[0]
    cluster.cluster_set_paused(paused=True, actor="ops")

    report = fire_due_jobs(now=job.next_run + timedelta(milliseconds=5))

    assert report.fired == 1
    assert Execution.objects.filter(job_name="ticking").exists()


def test_an_ephemeral_job_is_still_deleted_after_its_success_while_paused(transactional_db):
    Agent.objects.create(
        name="n1", tags={"role": "dkron"}, last_heartbeat=datetime.now(UTC) + timedelta(days=1)
    )
    job = job_upsert(data=job_body("once", schedule="@manually", ephemeral=True))[0]
    cluster.cluster_set_paused(paused=True, actor="ops")
    run_now(job=job)
    execution = Execution.objects.get(job_name="once")
    assert execution_claim(execution_id=execution.pk, node_name="n1") is not None

    execution_finish(execution_id=execution.pk, status="success", output="")

    assert not Job.objects.filter(name="once").exists()


def test_the_ui_job_form_refuses_to_create_while_paused_and_says_why(client, admin_user):
    cluster.cluster_set_paused(paused=True, actor="ops")
    client.force_login(admin_user)

    response = client.post("/ui/jobs/new/", form_data(name="from-ui"))

    assert response.status_code == 400
    assert PAUSED_MESSAGE in response.content.decode()
    assert not Job.objects.filter(name="from-ui").exists()


def test_the_ui_job_form_refuses_to_save_changes_while_paused(client, admin_user):
    job_upsert(data=job_body("greet", owner="before"))
    cluster.cluster_set_paused(paused=True, actor="ops")
    client.force_login(admin_user)

    response = client.post("/ui/jobs/greet/edit/", form_data(name="greet", owner="after"))

    assert response.status_code == 400
    assert PAUSED_MESSAGE in response.content.decode()
    assert Job.objects.get(name="greet").owner == "before"


def test_the_ui_delete_button_refuses_while_paused(client, admin_user):
    job_upsert(data=job_body("stays"))
    cluster.cluster_set_paused(paused=True, actor="ops")
    client.force_login(admin_user)

    response = client.post("/ui/jobs/stays/delete/", follow=True)

    assert "Job deletions are currently paused" in response.content.decode()
    assert Job.objects.filter(name="stays").exists()


def test_every_ui_page_shows_a_paused_banner_with_who_paused(client, admin_user):
    client.force_login(admin_user)
    assert 'id="paused-banner"' not in client.get("/ui/").content.decode()

    cluster.cluster_set_paused(paused=True, actor="ops-alice")
    page = client.get("/ui/jobs/").content.decode()

    assert 'id="paused-banner"' in page
    assert "Paused" in page and "by ops-alice" in page


def test_the_login_page_does_not_show_the_banner_to_strangers(client, db):
    cluster.cluster_set_paused(paused=True, actor="ops-alice")

    page = client.get("/ui/login/").content.decode()

    assert 'id="paused-banner"' not in page and "ops-alice" not in page


# --- permissions ---


def test_anyone_signed_in_may_read_the_pause_state(db):
    reader = client_for(make_user("reader"))

    assert reader.get("/v1/pause").json() == {"paused": False}


@pytest.mark.parametrize("path", ["/v1/pause", "/v1/unpause"])
def test_pausing_needs_the_change_job_permission(db, path):
    operator = client_for(make_user("operator", "operate_job", "add_job", "delete_job"))

    assert_error(operator.post(path), 403)
    assert not cluster.is_paused()


def test_an_editor_may_pause_and_unpause(db):
    editor = client_for(make_user("editor", "change_job"))

    assert editor.post("/v1/pause").json() == {"paused": True}
    assert ClusterFlag.objects.get().changed_by == "editor"
    assert editor.post("/v1/unpause").json() == {"paused": False}


@pytest.mark.parametrize(("method", "path"), [("get", "/v1/pause"), ("post", "/v1/pause")])
def test_pause_needs_credentials(anon, db, method, path):
    assert_error(getattr(anon, method)(path), 401)


def test_the_openapi_document_lists_the_operations_with_dkron_ids(api):
    document = api.get("/v1/openapi.json").json()

    assert {"/v1/pause", "/v1/unpause", "/v1/restore", "/v1/leave"} <= document["paths"].keys()
    ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    assert {"pauseStatus", "pause", "unpause", "restore", "leave"} <= ids
    restore = document["paths"]["/v1/restore"]["post"]
    assert "multipart/form-data" in restore["requestBody"]["content"]
    ok = restore["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"type": "string"}  # Dkron's: the encoded array of lines as one JSON string
