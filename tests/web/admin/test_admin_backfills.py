"""Backfills in the admin: listed read-only, cancelled through the service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs.models import AuditEntry, Backfill
from jobs.services.backfill import backfill_start, clean_request
from jobs.services.jobs import job_upsert


def open_backfill() -> Backfill:
    job = job_upsert(
        data={
            "name": "hourly",
            "schedule": "0 0 * * * *",
            "executor": "shell",
            "executor_config": {"command": "true"},
        }
    )[0]
    start = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    return backfill_start(job=job, request=clean_request(job=job, data={"from": start}))


def test_the_list_shows_backfills_and_cancel_goes_through_the_service(client, admin_user):
    backfill = open_backfill()
    client.force_login(admin_user)
    page = client.get("/admin/jobs/backfill/")
    assert page.status_code == 200 and "hourly" in page.content.decode()
    assert client.get("/admin/jobs/backfill/add/").status_code == 403

    client.post(
        "/admin/jobs/backfill/",
        {"action": "cancel", "_selected_action": [backfill.pk]},
    )
    backfill.refresh_from_db()
    assert backfill.state == "cancelled"
    assert AuditEntry.objects.filter(action="backfill_cancel", via="admin").count() == 1
