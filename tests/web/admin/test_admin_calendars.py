"""Calendars in the Django admin: saved and deleted through their service (checked, audited,
refused while jobs name one)."""

from __future__ import annotations

from jobs.models import AuditEntry, Calendar
from jobs.services.calendars import calendar_upsert
from tests.web.admin.test_admin import make_job


def test_adding_a_calendar_in_the_admin_goes_through_the_service(client, admin_user):
    client.force_login(admin_user)
    form = {
        "name": "holidays",
        "description": "",
        "timezone": "Europe/Berlin",
        "dates": '["2026-12-26", "2026-12-25"]',
        "ranges": "[]",
        "windows": '[{"days": "sat-sun", "start": "22:00", "end": "6:00"}]',
    }
    client.post("/admin/jobs/calendar/add/", form)
    calendar = Calendar.objects.get(name="holidays")
    assert calendar.dates == ["2026-12-25", "2026-12-26"]  # cleaned by the service
    assert calendar.windows == [{"days": ["sat", "sun"], "start": "22:00", "end": "06:00"}]
    assert AuditEntry.objects.filter(action="calendar_create", via="admin").exists()

    response = client.post(
        "/admin/jobs/calendar/add/", {**form, "name": "bad", "timezone": "Nowhere"}
    )
    assert not Calendar.objects.filter(name="bad").exists()
    # Shown on the form again with the service's reason, not as an addition that did not happen.
    assert response.status_code == 200
    page = response.content.decode()
    assert "Nowhere" in page and response.context["adminform"].form.errors


def test_a_calendar_jobs_name_is_not_deleted_in_the_admin(client, admin_user):
    calendar = calendar_upsert(name="holidays", data={"timezone": "UTC"})[0]
    make_job("uses-it", exclude_calendars=["holidays"])
    client.force_login(admin_user)
    client.post(f"/admin/jobs/calendar/{calendar.pk}/delete/", {"post": "yes"})
    assert Calendar.objects.filter(name="holidays").exists()


def test_a_job_names_calendars_in_the_admin(client, admin_user):
    calendar_upsert(name="holidays", data={"timezone": "UTC"})
    job = make_job("nightly")
    client.force_login(admin_user)
    page = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert 'name="exclude_calendars"' in page and 'name="only_calendars"' in page
