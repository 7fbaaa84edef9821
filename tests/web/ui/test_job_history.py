"""The job page's History: the latest revisions, the full list, one revision with its diff
(secrets as "changed" only), the Restore button for those who may change the job, and the
revision each execution ran; the edit form and the admin record revisions too."""

from __future__ import annotations

from django.contrib.messages import get_messages

from jobs.models import Job, JobRevision
from jobs.services.runs import run_now
from tests.web.api.helpers import make_user
from tests.web.ui.test_job_form import form_data
from tests.web.ui.test_job_page import make_job

SECRET = "hunter2-db"


def two_revisions() -> Job:
    make_job(
        "nightly", displayname="First", executor_config={"command": "env", "env": f"PW={SECRET}"}
    )
    return make_job(
        "nightly", displayname="Second", executor_config={"command": "env", "env": "PW=other"}
    )


def test_the_job_page_shows_its_revision_the_latest_changes_and_each_execution_s_revision(
    client, admin_user
):
    job = two_revisions()
    run_now(job=job, force=True)
    client.force_login(admin_user)

    page = client.get("/ui/jobs/nightly/").content.decode()

    assert 'id="job-history"' in page
    assert "/ui/jobs/nightly/history/2/" in page and "/ui/jobs/nightly/history/1/" in page
    assert 'data-testid="revision"><a href="/ui/jobs/nightly/history/2/">2</a>' in page


def test_the_history_lists_every_revision_with_who_and_a_restore_button(client, admin_user):
    two_revisions()
    client.force_login(admin_user)

    page = client.get("/ui/jobs/nightly/history/").content.decode()

    assert 'data-revision="2"' in page and 'data-revision="1"' in page
    assert "/ui/jobs/nightly/history/1/restore/" in page
    assert "/ui/jobs/nightly/history/2/restore/" not in page  # the current one
    assert "executor_config.env.PW" in page and SECRET not in page


def test_a_revision_page_shows_the_diff_with_secrets_changed_only(client, admin_user):
    two_revisions()
    client.force_login(admin_user)

    page = client.get("/ui/jobs/nightly/history/2/").content.decode()

    assert 'data-path="displayname"' in page and "First" in page and "Second" in page
    assert 'data-path="executor_config.env.PW"' in page and "secret changed" in page
    assert SECRET not in page and "other" not in page.split('id="diff"')[1].split("</table>")[0]
    against = client.get("/ui/jobs/nightly/history/1/?against=2").content.decode()
    assert "since revision 2" in against


def test_restore_makes_the_job_what_the_revision_recorded_as_a_new_revision(client, admin_user):
    two_revisions()
    client.force_login(admin_user)

    response = client.post("/ui/jobs/nightly/history/1/restore/")

    assert response.status_code == 302 and response["Location"] == "/ui/jobs/nightly/"
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Revision 1 restored as revision 3"
    ]
    job = Job.objects.get(name="nightly")
    assert job.displayname == "First" and job.revision == 3
    assert JobRevision.objects.get(job_name="nightly", number=3).source == "ui"


def test_a_refused_restore_is_a_message_and_changes_nothing(client, admin_user):
    make_job("nightly", executor_config={"command": "env", "env": f"PW={SECRET}"})
    make_job("nightly", executor_config={"command": "env | sort", "env": f"PW={SECRET}"})
    client.force_login(admin_user)

    response = client.post("/ui/jobs/nightly/history/1/restore/", follow=True)

    assert "resend env PW" in response.content.decode()
    assert Job.objects.get(name="nightly").revision == 2


def test_readers_see_the_history_without_restore_and_cannot_post_one(client, db):
    two_revisions()
    client.force_login(make_user("viewer", "view_job"))

    page = client.get("/ui/jobs/nightly/history/").content.decode()
    response = client.post("/ui/jobs/nightly/history/1/restore/")

    assert 'data-revision="1"' in page and "/restore/" not in page
    assert response.status_code == 403
    assert Job.objects.get(name="nightly").revision == 2


def test_unknown_jobs_and_revisions_are_404s(client, admin_user):
    make_job("nightly")
    client.force_login(admin_user)

    assert client.get("/ui/jobs/ghost/history/").status_code == 404
    assert client.get("/ui/jobs/nightly/history/9/").status_code == 404
    assert client.get("/ui/jobs/nightly/history/0/").status_code == 404
    assert client.post("/ui/jobs/nightly/history/9/restore/").status_code == 404


def test_a_deleted_job_s_history_stays_and_restore_brings_it_back(client, admin_user):
    make_job("nightly", displayname="Gone")
    client.force_login(admin_user)
    client.post("/ui/jobs/nightly/delete/")

    page = client.get("/ui/jobs/nightly/history/").content.decode()
    client.post("/ui/jobs/nightly/history/1/restore/")

    assert "This job was deleted" in page
    assert Job.objects.get(name="nightly").displayname == "Gone"


def test_saving_the_edit_form_records_a_ui_revision(client, admin_user):
    client.force_login(admin_user)
    created = client.post("/ui/jobs/new/", form_data())
    edited = client.post("/ui/jobs/greet/edit/", form_data(displayname="Edited"))

    assert created.status_code == 302 and edited.status_code == 302, edited.content[:3000]
    assert [
        (r.number, r.change, r.source, r.actor)
        for r in JobRevision.objects.filter(job_name="greet").order_by("number")
    ] == [(1, "create", "ui", "root"), (2, "update", "ui", "root")]


def test_saving_in_the_admin_records_an_admin_revision_and_revisions_are_read_only(
    client, admin_user
):
    job = make_job("nightly")
    client.force_login(admin_user)
    url = f"/admin/jobs/job/{job.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {name: "" if value is None else value for name, value in data.items()}
    data["displayname"] = "From the admin"

    assert client.post(url, data).status_code == 302
    latest = JobRevision.objects.filter(job_name="nightly").latest("number")
    assert (latest.number, latest.source) == (2, "admin")

    listing = client.get("/admin/jobs/jobrevision/")
    assert listing.status_code == 200 and "nightly" in listing.content.decode()
    assert client.get("/admin/jobs/jobrevision/add/").status_code == 403
    assert (
        client.post(f"/admin/jobs/jobrevision/{latest.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
