"""Calendars in the UI: the job form picks them (the existing ones are offered, the choice is
saved through the service and shown again on edit), and a page lists them."""

from __future__ import annotations

from jobs.models import Job
from jobs.services.calendars import calendar_upsert
from tests.web.ui.test_job_form import form_data, make_job


def test_the_form_offers_the_calendars_and_saves_the_choice(client, admin_user):
    calendar_upsert(name="holidays", data={"timezone": "Europe/Paris", "dates": ["2026-12-25"]})
    calendar_upsert(
        name="office-hours",
        data={
            "timezone": "Europe/Paris",
            "windows": [{"days": "mon-fri", "start": "08:00", "end": "18:00"}],
        },
    )
    client.force_login(admin_user)
    page = client.get("/ui/jobs/new/").content.decode()
    assert 'name="exclude_calendars"' in page and '<option value="holidays"' in page

    response = client.post(
        "/ui/jobs/new/",
        form_data(exclude_calendars=["holidays"], only_calendars=["office-hours"]),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get(name="greet")
    assert (job.exclude_calendars, job.only_calendars) == (["holidays"], ["office-hours"])
    edit = client.get("/ui/jobs/greet/edit/").content.decode()
    assert '<option value="holidays" selected>' in edit
    page = client.get("/ui/jobs/greet/").content.decode()
    assert "never inside" in page and ">holidays</a>" in page
    assert "only inside" in page and ">office-hours</a>" in page


def test_an_unknown_calendar_is_refused_by_the_form(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/ui/jobs/new/", form_data(exclude_calendars=["nope"]))
    assert response.status_code == 400
    assert "nope" in response.content.decode()
    assert not Job.objects.filter(name="greet").exists()


def test_a_job_without_calendars_edits_unchanged(client, admin_user):
    make_job("plain")
    client.force_login(admin_user)
    page = client.get("/ui/jobs/plain/edit/").content.decode()
    assert "No calendars yet" in page


def test_the_calendars_page_lists_each_calendar_with_the_jobs_naming_it(client, admin_user):
    calendar_upsert(
        name="nights",
        data={
            "timezone": "Europe/Berlin",
            "dates": ["2026-12-24"],
            "windows": [{"days": ["fri"], "start": "22:00", "end": "06:00"}],
        },
    )
    make_job("batch", exclude_calendars=["nights"])
    client.force_login(admin_user)
    page = client.get("/ui/calendars/").content.decode()
    assert 'data-calendar="nights"' in page and "Europe/Berlin" in page
    assert "fri 22:00–06:00" in page and "2026-12-24" in page
    assert 'href="/ui/jobs/batch/"' in page
