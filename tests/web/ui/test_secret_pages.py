"""The job page and the edit form never show an env or header value; saving the form as shown
keeps the stored ones."""

from __future__ import annotations

from jobs.models import Job
from tests.web.ui.test_job_form import form_data, make_job

ENV = "DB_PASSWORD=hunter2-db,LOG_LEVEL=debug"


def test_the_job_page_and_the_form_mask_env_values(client, admin_user):
    make_job("envy", executor_config={"command": "env", "env": ENV})
    client.force_login(admin_user)

    page = client.get("/ui/jobs/envy/").content.decode()
    form = client.get("/ui/jobs/envy/edit/").content.decode()

    for text in (page, form):
        assert "hunter2-db" not in text and "debug" not in text
    assert "DB_PASSWORD=********,LOG_LEVEL=********" in form


def test_saving_the_form_as_shown_keeps_the_stored_env(client, admin_user):
    make_job("envy", executor_config={"command": "env", "env": ENV})
    client.force_login(admin_user)
    data = form_data(
        name="envy", **{"config.command": "env", "config.env": "DB_PASSWORD=********,LOG_LEVEL=x"}
    )

    response = client.post("/ui/jobs/envy/edit/", data)

    assert response.status_code == 302
    assert (
        Job.objects.get(name="envy").executor_config["env"] == "DB_PASSWORD=hunter2-db,LOG_LEVEL=x"
    )
