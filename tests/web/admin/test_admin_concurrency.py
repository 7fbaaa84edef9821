"""The admin carries concurrency keys and agent slots (issue 16): the job change page shows and
edits the key, its limit and rate through the service's validation, the agent list shows
slots, and the concurrency keys are listed read-only."""

from __future__ import annotations

import pytest

from jobs.models import ConcurrencyKey, Execution, Job
from tests.web.admin.test_admin import make_job
from tests.web.admin.test_admin_params import _posted
from tests.web.api.helpers import add_agent, add_execution

pytestmark = pytest.mark.django_db


def test_the_change_page_shows_the_key_fields_and_saving_keeps_them(client, admin_user):
    job = make_job("etl", concurrency_key="db", concurrency_limit=2, rate_limit="10/m")
    client.force_login(admin_user)
    url = f"/admin/jobs/job/{job.pk}/change/"
    data = _posted(client, url)
    assert (data["concurrency_key"], data["concurrency_limit"], data["rate_limit"]) == (
        "db",
        2,
        "10/m",
    )

    response = client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    saved = Job.objects.get(name="etl")
    assert (saved.concurrency_key, saved.concurrency_limit, saved.rate_limit) == ("db", 2, "10/m")


def test_edited_key_fields_go_through_the_service(client, admin_user):
    job = make_job("etl", metadata={"db": "main"})
    client.force_login(admin_user)
    url = f"/admin/jobs/job/{job.pk}/change/"
    data = _posted(client, url)
    data.update(concurrency_key="db:{metadata.db}", concurrency_limit="3", rate_limit="2/s")

    response = client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    saved = Job.objects.get(name="etl")
    assert (saved.concurrency_key, saved.concurrency_limit, saved.rate_limit) == (
        "db:{metadata.db}",
        3,
        "2/s",
    )
    row = ConcurrencyKey.objects.get(key="db:main")  # the service synced the key's row
    assert (row.limit, row.rate_limit) == (3, "2/s")


def test_a_bad_rate_is_refused_by_the_service_and_nothing_changes(client, admin_user):
    job = make_job("etl", concurrency_key="db", concurrency_limit=2)
    client.force_login(admin_user)
    url = f"/admin/jobs/job/{job.pk}/change/"
    data = _posted(client, url)
    data["rate_limit"] = "often"

    response = client.post(url, data, follow=True)

    assert "N/s, N/m or N/h" in response.content.decode()
    assert Job.objects.get(name="etl").rate_limit == ""


def test_a_key_without_limits_is_refused(client, admin_user):
    job = make_job("etl")
    client.force_login(admin_user)
    url = f"/admin/jobs/job/{job.pk}/change/"
    data = _posted(client, url)
    data["concurrency_key"] = "db"

    response = client.post(url, data, follow=True)

    assert "needs a concurrency_limit or a rate_limit" in response.content.decode()
    assert Job.objects.get(name="etl").concurrency_key == ""


def test_the_agent_list_shows_slots(client, admin_user):
    add_agent("agent-a", concurrency=4, slots=7)
    client.force_login(admin_user)
    page = client.get("/admin/jobs/agent/").content.decode()
    assert "column-slots" in page and '<td class="field-slots">7</td>' in page


def test_concurrency_keys_are_listed_read_only(client, admin_user):
    make_job("etl", concurrency_key="db", concurrency_limit=2, rate_limit="10/m")
    row = ConcurrencyKey.objects.get(key="db")
    client.force_login(admin_user)
    page = client.get("/admin/jobs/concurrencykey/").content.decode()
    for column in ("key", "limit", "rate_limit", "updated_at"):
        assert f"column-{column}" in page, column
    assert "10/m" in page and ">db<" in page
    assert client.get("/admin/jobs/concurrencykey/add/").status_code == 403
    change = client.get(f"/admin/jobs/concurrencykey/{row.pk}/change/")
    assert change.status_code == 200 and 'name="limit"' not in change.content.decode()
    assert (
        client.post(f"/admin/jobs/concurrencykey/{row.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert ConcurrencyKey.objects.filter(key="db").exists()


def test_the_execution_list_shows_what_a_queued_execution_waits_for(client, admin_user):
    make_job("etl")
    held = add_execution("etl")
    Execution.objects.filter(pk=held.pk).update(waiting="slot")
    client.force_login(admin_user)
    page = client.get("/admin/jobs/execution/").content.decode()
    assert "column-waiting" in page and '<td class="field-waiting">slot</td>' in page


def test_a_refused_change_is_shown_on_the_form_not_as_a_success(client, admin_user):
    """It used to say "changed successfully" over the save that the service refused."""
    job = make_job("etl", concurrency_key="db", concurrency_limit=2)
    client.force_login(admin_user)
    url = f"/admin/jobs/job/{job.pk}/change/"
    data = _posted(client, url)
    data["rate_limit"] = "often"

    response = client.post(url, data)

    assert response.status_code == 200  # the form again, not a redirect to the list
    page = response.content.decode()
    assert "was changed successfully" not in page
    assert "N/s, N/m or N/h" in page
    assert response.context["adminform"].form.errors["rate_limit"]


def test_a_refused_new_job_is_not_added_and_keeps_its_input(client, admin_user):
    client.force_login(admin_user)
    data = _posted(client, "/admin/jobs/job/add/")
    data.update(name="fresh", schedule="@every 1m", executor="shell", concurrency_key="db")
    data["executor_config"] = '{"command": "true"}'  # no limit for the key: refused

    response = client.post("/admin/jobs/job/add/", data)

    assert response.status_code == 200
    page = response.content.decode()
    assert "was added successfully" not in page
    assert "needs a concurrency_limit or a rate_limit" in page
    assert not Job.objects.filter(name="fresh").exists()
