"""/v1/calendars: create, list, get, replace, import an .ics file, delete; bad input is a 4xx
that changes nothing; jobs name calendars by exclude_calendars and only_calendars."""

from __future__ import annotations

import pytest

from jobs.models import AuditEntry, Calendar, Job
from tests.web.api.helpers import assert_error, create, job_body
from tests.web.api.roles import principal

pytestmark = pytest.mark.django_db

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//dkronweb tests//EN
BEGIN:VEVENT
UID:xmas@test
DTSTAMP:20260101T000000Z
SUMMARY:Christmas
DTSTART;VALUE=DATE:20261225
DTEND;VALUE=DATE:20261227
END:VEVENT
BEGIN:VEVENT
UID:deploy@test
DTSTAMP:20260101T000000Z
SUMMARY:Freeze
DTSTART:20261230T170000Z
DTEND:20261230T190000Z
END:VEVENT
END:VCALENDAR
"""
BODY = {
    "name": "holidays",
    "timezone": "Europe/Berlin",
    "description": "Office closed",
    "dates": ["2026-10-03"],
    "windows": [{"days": ["sat", "sun"], "start": "22:00", "end": "06:00"}],
}


def test_it_creates_lists_gets_replaces_and_deletes_a_calendar(api):
    created = api.post("/v1/calendars", BODY, format="json")
    assert created.status_code == 201, created.content
    assert created["Location"] == "/v1/calendars/holidays"
    assert created.json()["windows"] == BODY["windows"]

    listed = api.get("/v1/calendars")
    assert [c["name"] for c in listed.json()] == ["holidays"] and listed["X-Total-Count"] == "1"
    assert api.get("/v1/calendars/holidays").json()["dates"] == ["2026-10-03"]

    replaced = api.put("/v1/calendars/holidays", {"timezone": "UTC", "dates": []}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["timezone"] == "UTC" and replaced.json()["windows"] == []

    assert api.delete("/v1/calendars/holidays").status_code == 200
    assert not Calendar.objects.exists()
    actions = list(AuditEntry.objects.filter(target="holidays").values_list("action", flat=True))
    assert sorted(actions) == ["calendar_create", "calendar_delete", "calendar_update"]


def test_it_imports_an_ics_file_as_text_calendar_or_json(api):
    api.post("/v1/calendars", {"name": "h", "timezone": "Europe/Berlin"}, format="json")

    raw = api.generic("POST", "/v1/calendars/h/ics", ICS, content_type="text/calendar")
    assert raw.status_code == 200, raw.content
    body = raw.json()
    assert body["dates"] == ["2026-12-25", "2026-12-26"]
    # 17:00-19:00Z is 18:00-20:00 in Berlin (CET).
    assert body["ranges"] == [{"start": "2026-12-30T18:00:00", "end": "2026-12-30T20:00:00"}]

    ics = ICS.replace("20261225", "20261231").replace("20261227", "20270101")
    again = api.post("/v1/calendars/h/ics", {"ics": ics, "replace": True}, format="json")
    assert again.json()["dates"] == ["2026-12-31"]
    vague = api.post("/v1/calendars/h/ics", {"ics": ICS, "replace": "yes"}, format="json")
    assert vague.status_code == 400 and "replace" in vague.json()["details"]
    assert api.get("/v1/calendars/h").json()["dates"] == ["2026-12-31"]  # nothing changed


def test_an_ics_field_on_create_is_imported(api):
    response = api.post(
        "/v1/calendars", {"name": "h", "timezone": "Europe/Berlin", "ics": ICS}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["dates"] == ["2026-12-25", "2026-12-26"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({**BODY, "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({**BODY, "windows": [{"days": ["sat"], "start": "22:00"}]}, "windows[0].end"),
        ({**BODY, "windows": [{"days": ["someday"], "start": "1:00", "end": "2:00"}]}, "days"),
        ({**BODY, "dates": ["2026-13-01"]}, "dates[0]"),
        ({**BODY, "ics": "BEGIN:VCALENDAR\nnot really"}, "ics"),
        ({**BODY, "name": "Bad Name"}, "illegal character"),
        ({**BODY, "name": ""}, "name"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_bad_input_is_a_400_that_changes_nothing(api, body, needle):
    entries = AuditEntry.objects.count()
    error = assert_error(api.post("/v1/calendars", body, format="json"), 400)
    assert needle in error["error"], error
    assert not Calendar.objects.exists()
    assert AuditEntry.objects.count() == entries


def test_a_bad_update_or_import_leaves_the_calendar_as_it_was(api):
    api.post("/v1/calendars", BODY, format="json")
    before = api.get("/v1/calendars/holidays").json()

    assert_error(api.put("/v1/calendars/holidays", {"timezone": "Nowhere"}, format="json"), 400)
    assert_error(
        api.generic("POST", "/v1/calendars/holidays/ics", "garbage", content_type="text/calendar"),
        400,
    )
    assert_error(api.put("/v1/calendars/holidays", {**BODY, "name": "other"}, format="json"), 400)

    assert api.get("/v1/calendars/holidays").json() == before


def test_a_second_create_of_a_name_is_a_409_and_unknown_calendars_are_404(api):
    api.post("/v1/calendars", BODY, format="json")
    assert_error(api.post("/v1/calendars", BODY, format="json"), 409)
    assert_error(api.get("/v1/calendars/nope"), 404)
    assert_error(api.delete("/v1/calendars/nope"), 404)
    assert_error(api.post("/v1/calendars/nope/ics", {"ics": ICS}, format="json"), 404)


def test_a_job_names_calendars_and_an_unknown_one_is_refused(api):
    api.post("/v1/calendars", BODY, format="json")
    job = create(api, "nightly", exclude_calendars=["holidays"], only_calendars=[])
    assert job["exclude_calendars"] == ["holidays"] and job["only_calendars"] == []

    error = assert_error(
        api.post("/v1/jobs", job_body("other", only_calendars=["nope"]), format="json"), 400
    )
    assert "unknown calendar 'nope'" in error["error"]
    assert error["details"]["only_calendars"]
    assert not Job.objects.filter(name="other").exists()
    bad_type = api.post("/v1/jobs", job_body("other", exclude_calendars="holidays"), format="json")
    assert bad_type.status_code == 400


def test_a_job_without_the_fields_keeps_them_empty_and_answers_them(api):
    job = create(api, "plain")
    assert job["exclude_calendars"] == [] and job["only_calendars"] == []


def test_deleting_a_calendar_jobs_still_name_is_a_409_naming_them(api):
    api.post("/v1/calendars", BODY, format="json")
    create(api, "uses-it", exclude_calendars=["holidays"])
    create(api, "also", only_calendars=["holidays"])
    create(api, "not-me")

    error = assert_error(api.delete("/v1/calendars/holidays"), 409)
    assert "also, uses-it" in error["error"]
    assert error["details"]["jobs"] == ["also", "uses-it"]
    assert Calendar.objects.filter(name="holidays").exists()


def test_a_read_only_role_reads_calendars_and_cannot_change_them(db):
    _, editor, _ = principal("editor")
    assert editor.post("/v1/calendars", BODY, format="json").status_code == 201
    _, reader, _ = principal("read-only")
    entries = AuditEntry.objects.count()

    assert reader.get("/v1/calendars").status_code == 200
    assert reader.get("/v1/calendars/holidays").status_code == 200
    assert_error(reader.post("/v1/calendars", {**BODY, "name": "mine"}, format="json"), 403)
    assert_error(reader.put("/v1/calendars/holidays", BODY, format="json"), 403)
    assert_error(reader.post("/v1/calendars/holidays/ics", {"ics": ICS}, format="json"), 403)
    assert_error(reader.delete("/v1/calendars/holidays"), 403)
    assert AuditEntry.objects.count() == entries
    assert list(Calendar.objects.values_list("name", flat=True)) == ["holidays"]


def test_the_openapi_document_describes_calendars_and_the_job_fields(api):
    doc = api.get("/v1/openapi.json").json()
    assert {"/v1/calendars", "/v1/calendars/{name}", "/v1/calendars/{name}/ics"} <= set(
        doc["paths"]
    )
    job = doc["components"]["schemas"]["Job"]["properties"]
    assert {"exclude_calendars", "only_calendars"} <= set(job)


def test_a_job_read_and_sent_back_keeps_its_calendars(api):
    api.post("/v1/calendars", BODY, format="json")
    job = create(api, "round-trip", exclude_calendars=["holidays"])

    again = api.put("/v1/jobs/round-trip", job, format="json")

    assert again.status_code == 201, again.content
    assert again.json()["exclude_calendars"] == ["holidays"]
    assert again.json()["next"] == job["next"]
