"""The schedule preview and the backfill pages in a real browser (Chromium): the job form's
preview follows what is typed (calendar skips, a bad schedule's message), and a backfill goes
from a dry run to its progress page and its cancel. No agent: the runs stay queued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobs.models import Backfill
from jobs.services.calendars import calendar_upsert
from tests.web.ui.browser.conftest import UI
from tests.web.ui.browser.test_browser import button, expect, field, make_job, submit

pytestmark = [pytest.mark.browser]


def test_the_job_form_previews_the_schedule_as_it_is_typed(ui: UI) -> None:
    # Three days ahead in Berlin is among the next ten daily fires whatever the hour now.
    day = (datetime.now(UTC).astimezone(ZoneInfo("Europe/Berlin")) + timedelta(days=3)).date()
    calendar_upsert(name="closed", data={"timezone": "Europe/Berlin", "dates": [day.isoformat()]})
    page = ui.page
    ui.goto("/ui/jobs/new/", "new-job")
    form = page.locator("#job-form")
    preview = page.locator("#schedule-preview")

    field(form, "schedule").fill("0 30 2 * * *")
    field(form, "timezone").fill("Europe/Berlin")
    expect(preview.locator("tbody tr")).to_have_count(10)
    field(form, "exclude_calendars").select_option("closed")
    expect(preview.get_by_text("excluded by calendar 'closed'")).to_be_visible()
    ui.shot("preview")
    assert all(
        t.endswith(("CET", "CEST"))
        for t in preview.locator("tbody tr td:first-child").all_inner_texts()
    )

    field(form, "schedule").fill("0 30 2 * *")
    expect(preview.get_by_text("6 fields expected")).to_be_visible()


def test_a_backfill_goes_from_a_dry_run_to_its_progress_and_is_cancelled(ui: UI) -> None:
    make_job("hourly", schedule="0 0 * * * *", disabled=True)
    page = ui.page
    ui.goto("/ui/jobs/hourly/", "job")
    submit(ui, page.get_by_role("link", name="Backfill", exact=True))
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = (hour - timedelta(hours=2, minutes=59)).strftime("%Y-%m-%dT%H:%M:%SZ")  # 3 times
    form = page.locator("#backfill-form")
    field(form, "from").fill(start)
    submit(ui, button(ui, "Dry run", form))
    expect(page.get_by_text("Dry run: 3 of 3 fire times would run")).to_be_visible()
    ui.shot("dry-run")

    submit(ui, button(ui, "Start", page.locator("#backfill-form")))
    backfill = Backfill.objects.get()
    assert ui.path() == f"/ui/jobs/hourly/backfills/{backfill.pk}/"
    expect(page.get_by_test_id("progress")).to_contain_text("of 3")
    submit(ui, button(ui, "Cancel"))
    expect(page.get_by_text(f"Backfill {backfill.pk} cancelled")).to_be_visible()
    backfill.refresh_from_db()
    assert backfill.state == "cancelled"
