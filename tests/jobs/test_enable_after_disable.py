"""Enabling a disabled job: time spent disabled is not missed time, on every path that enables.

Dkron takes a disabled job out of cron and adds it back on enable, so its next fire is the first
one after the enable; nothing runs for the fire times that fell while it was off. The clock is
controlled (time-machine) and the scheduler tick is called with an explicit `now`.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from jobs.models import Agent, Job, Run
from jobs.services.jobs import job_toggle, job_upsert
from jobs.services.runs import fire_due_jobs
from jobs.wire import job_to_dict
from tests.web.ui.test_job_form import form_data

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
EVERY_5S = "*/5 * * * * *"
POLICIES = ["skip", "run_once", "run_all"]


def body(name: str, **fields: object) -> dict[str, object]:
    return {
        "name": name,
        "schedule": EVERY_5S,
        "executor": "shell",
        "executor_config": {"command": "true"},
        **fields,
    }


@pytest.fixture
def agent(db) -> Agent:
    return Agent.objects.create(
        name="node-1",
        tags={"role": "dkron", "server": "true"},
        last_heartbeat=datetime.now(UTC) + timedelta(days=3650),  # alive whatever the clock
        concurrency=4,
    )


def disabled_for(seconds: int, *, name: str, **fields: object) -> Job:
    """A */5 s job created at T0, disabled at T0+1 s; returns it as stored at T0+`seconds`."""
    with time_machine.travel(T0, tick=False):
        job = job_upsert(data=body(name, **fields))[0]
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        job_toggle(job=job)
    job.refresh_from_db()
    assert job.disabled
    return job


def assert_fires_only_after_enable(job: Job, enabled_at: datetime) -> None:
    """Next fire is the first */5 s time after the enable; no run, no missed fire, before it."""
    job.refresh_from_db()
    assert not job.disabled
    first = enabled_at.replace(microsecond=0) + timedelta(seconds=5 - enabled_at.second % 5)
    assert job.next_run == first
    report = fire_due_jobs(now=enabled_at)
    assert (report.fired, report.missed) == (0, 0)
    assert fire_due_jobs(now=first).fired == 1
    assert list(Run.objects.filter(job=job).values_list("scheduled_at", flat=True)) == [first]
    job.refresh_from_db()
    assert job.missed_count == 0


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seconds", [22, 80])  # within the 60 s grace period, and beyond it
def test_enabling_never_runs_the_fires_that_fell_while_disabled(agent, policy, seconds):
    job = disabled_for(seconds, name=f"off-{policy.replace('_', '-')}", misfire_policy=policy)
    enabled_at = T0 + timedelta(seconds=seconds, milliseconds=300)
    with time_machine.travel(enabled_at, tick=False):
        job_toggle(job=job)
    assert_fires_only_after_enable(job, enabled_at)


@pytest.mark.parametrize("policy", POLICIES)
def test_misfires_from_before_the_disable_are_still_not_caught_up_on_enable(agent, policy):
    # The scheduler was down from T0 to the disable, then the job stayed off: on enable nothing
    # of either stretch runs (Dkron re-adds the entry from now).
    with time_machine.travel(T0, tick=False):
        job = job_upsert(data=body("late-off", misfire_policy=policy))[0]
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        job_toggle(job=job)
    enabled_at = T0 + timedelta(minutes=20, seconds=2)
    with time_machine.travel(enabled_at, tick=False):
        job_toggle(job=job)
    assert_fires_only_after_enable(job, enabled_at)


def test_an_every_job_keeps_its_phase_when_enabled(agent):
    with time_machine.travel(T0, tick=False):
        job = job_upsert(data=body("every-7", schedule="@every 7s", misfire_policy="run_all"))[0]
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        job_toggle(job=job)
    with time_machine.travel(T0 + timedelta(seconds=100), tick=False):
        job_toggle(job=job)
    job.refresh_from_db()
    assert job.next_run == T0 + timedelta(seconds=105)  # 15 * 7 s after the schedule was set
    assert fire_due_jobs(now=T0 + timedelta(seconds=100)).fired == 0


def test_an_at_time_that_fell_while_disabled_never_runs(agent):
    at = T0 + timedelta(seconds=30)
    with time_machine.travel(T0, tick=False):
        job = job_upsert(
            data=body("once", schedule=f"@at {at.isoformat()}", misfire_policy="run_once")
        )[0]
        job_toggle(job=job)
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        job_toggle(job=job)
        job.refresh_from_db()
        assert job.next_run is None
        assert job_to_dict(job)["next"] == "0001-01-01T00:00:00Z"
    assert fire_due_jobs(now=T0 + timedelta(minutes=5)).fired == 0


def test_an_at_time_still_ahead_is_kept_on_enable(agent):
    at = T0 + timedelta(hours=1)
    with time_machine.travel(T0, tick=False):
        job = job_upsert(data=body("later", schedule=f"@at {at.isoformat()}"))[0]
        job_toggle(job=job)
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        job_toggle(job=job)
    job.refresh_from_db()
    assert job.next_run == at


def test_an_upsert_of_an_enabled_job_keeps_its_due_time(agent):
    # Only the disabled -> enabled change recomputes from now: an ordinary edit of a late job
    # leaves its misfires to the policy.
    with time_machine.travel(T0, tick=False):
        job_upsert(data=body("edit", misfire_policy="run_all"))
    with time_machine.travel(T0 + timedelta(seconds=80), tick=False):
        job = job_upsert(data=body("edit", misfire_policy="run_all", displayname="Edited"))[0]
    assert job.next_run == T0 + timedelta(seconds=5)


@pytest.mark.parametrize("policy", POLICIES)
def test_next_is_never_in_the_past_while_disabled(agent, policy):
    job = disabled_for(80, name="shown", misfire_policy=policy)
    moment = T0 + timedelta(seconds=80, milliseconds=300)
    with time_machine.travel(moment, tick=False):
        job.refresh_from_db()
        shown = datetime.fromisoformat(job_to_dict(job)["next"].replace("Z", "+00:00"))
    assert shown == T0 + timedelta(seconds=85)


# --- every path that enables a job ------------------------------------------------------------


def _api_toggle(api, client, admin_user) -> None:  # type: ignore[no-untyped-def]
    response = api.post("/v1/jobs/path/toggle")
    assert response.status_code == 200, response.content
    assert response.json()["next"] == "2026-03-02T10:01:25Z"


def _api_upsert(api, client, admin_user) -> None:  # type: ignore[no-untyped-def]
    response = api.post("/v1/jobs", body("path", disabled=False), format="json")
    assert response.status_code in (200, 201), response.content
    assert response.json()["next"] == "2026-03-02T10:01:25Z"


def _ui_toggle(api, client, admin_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(admin_user)
    assert client.post("/ui/jobs/path/toggle/").status_code == 302


def _ui_bulk(api, client, admin_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(admin_user)
    response = client.post(
        "/ui/jobs/bulk/", {"action": "enable", "names": ["path"], "confirm": "1"}
    )
    assert response.status_code == 302


def _ui_form(api, client, admin_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(admin_user)
    form = form_data(
        name="path",
        schedule=EVERY_5S,
        timezone="",
        misfire_policy="run_all",
        tags_key=[""],
        tags_value=[""],
        metadata_key=[""],
        metadata_value=[""],
    )
    response = client.post("/ui/jobs/path/edit/", form)  # "disabled" unchecked: enabled
    assert response.status_code == 302, response.content.decode()[:2000]


def _admin_action(api, client, admin_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(admin_user)
    pk = Job.objects.get(name="path").pk
    client.post("/admin/jobs/job/", {"action": "enable", "_selected_action": [pk]})


def _restore(api, client, admin_user) -> None:  # type: ignore[no-untyped-def]
    raw = json.dumps([body("path", disabled=False, misfire_policy="run_all")]).encode()
    upload = SimpleUploadedFile("jobs.json", raw, content_type="application/json")
    response = api.post("/v1/restore", {"file": upload}, format="multipart")
    assert response.status_code == 200, response.content


def _import_command(api, client, admin_user) -> None:  # type: ignore[no-untyped-def]
    path = Path(f"/tmp/dk-enable-import-{id(api)}.json")
    path.write_text(json.dumps([body("path", disabled=False, misfire_policy="run_all")]))
    try:
        call_command("import_jobs", str(path), stdout=io.StringIO())
    finally:
        path.unlink()


ENABLE_PATHS: dict[str, Callable[..., None]] = {
    "api-toggle": _api_toggle,
    "api-upsert": _api_upsert,
    "ui-toggle": _ui_toggle,
    "ui-bulk": _ui_bulk,
    "ui-form": _ui_form,
    "admin-action": _admin_action,
    "restore": _restore,
    "import-command": _import_command,
}


@pytest.mark.parametrize("path", ENABLE_PATHS)
def test_every_enable_path_schedules_from_now(agent, api, client, admin_user, path):
    job = disabled_for(80, name="path", misfire_policy="run_all")
    enabled_at = T0 + timedelta(seconds=80, milliseconds=300)
    with time_machine.travel(enabled_at, tick=False):
        ENABLE_PATHS[path](api, client, admin_user)
    assert_fires_only_after_enable(job, enabled_at)


def test_the_job_page_shows_a_disabled_jobs_next_run_after_now(agent, client, admin_user):
    job = disabled_for(80, name="page")
    with time_machine.travel(T0 + timedelta(seconds=80, milliseconds=300), tick=False):
        client.force_login(admin_user)
        page = client.get("/ui/jobs/page/").content.decode()
    job.refresh_from_db()
    assert job.next_run == T0 + timedelta(seconds=5)  # stored, frozen at the disable
    shown = re.search(r"<dt>Next run</dt><dd>(.*?)</dd>", page, re.S)
    assert shown and 'datetime="2026-03-02T10:01:25+00:00"' in shown.group(1)
    assert "(once enabled)" in shown.group(1)
