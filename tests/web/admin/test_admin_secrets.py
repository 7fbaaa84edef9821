"""The admin change page shows executor secrets and webhook headers masked, to editors and
viewers alike, and saving it unchanged keeps the stored values."""

from __future__ import annotations

from jobs.models import Job
from tests.web.admin.test_admin import make_job, staff

CONFIG = {"command": "env", "env": "DB_PASSWORD=hunter2-db"}
NOTIFY = {"webhooks": [{"url": "https://hooks.example.com/x", "headers": {"X-Key": "hook-key"}}]}


def test_the_change_page_masks_secrets_and_saving_it_keeps_them(client, admin_user):
    job = make_job("envy", executor_config=CONFIG, notify=NOTIFY)
    client.force_login(admin_user)
    url = f"/admin/jobs/job/{job.pk}/change/"

    page = client.get(url).content.decode()
    assert "hunter2-db" not in page and "hook-key" not in page
    assert "DB_PASSWORD=********" in page

    # Post back what the page shows, as a browser would.
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {name: "" if value is None else value for name, value in data.items()}
    response = client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    stored = Job.objects.get(name="envy")
    assert stored.executor_config == CONFIG
    assert stored.notify["webhooks"][0]["headers"] == {"X-Key": "hook-key"}


def test_a_viewer_sees_the_config_masked(client, db):
    job = make_job("envy", executor_config=CONFIG, notify=NOTIFY)
    client.force_login(staff("view_job"))

    page = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()

    assert "hunter2-db" not in page and "hook-key" not in page
    assert "DB_PASSWORD=********" in page
