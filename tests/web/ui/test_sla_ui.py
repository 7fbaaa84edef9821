"""SLA in the UI: the job form's rules (inline errors from the service), the job page's rules
and alerts, and the dashboard's open alerts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job
from jobs.services import sla
from jobs.services.runs import run_now
from tests.factories import agent, job
from tests.web.ui.test_job_form import form_data, inline_error

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_check():
    sla.reset()
    yield
    sla.reset()


def late(name: str) -> None:
    agent("n1")
    run_now(job=job(name, sla={"start_within": "2s"}))
    sla.check(now=timezone.now() + timedelta(seconds=10), deliver=lambda *_: None)


def test_the_form_saves_sla_rules_and_shows_them_when_edited(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/ui/jobs/new/",
        form_data(sla_start_within="5m", sla_success_within="26h", sla_consecutive_failures="3"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Job.objects.get(name="greet").sla == {
        "start_within": "5m",
        "success_within": "26h",
        "consecutive_failures": 3,
    }
    page = client.get("/ui/jobs/greet/edit/").content.decode()
    assert re.search(r'name="sla_start_within"[^>]*value="5m"', page)
    assert re.search(r'name="sla_consecutive_failures"[^>]*value="3"', page)


def test_a_bad_rule_is_shown_next_to_its_field_and_nothing_is_saved(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/ui/jobs/new/", form_data(sla_kill_after="1h"))
    assert "needs max_duration" in inline_error(response.content.decode(), "sla_kill_after")
    assert not Job.objects.filter(name="greet").exists()


def test_the_job_page_shows_its_rules_and_alerts(client, admin_user):
    late("nightly")
    client.force_login(admin_user)
    page = client.get("/ui/jobs/nightly/").content.decode()
    assert "start_within: 2s" in page
    table = page[page.index('id="job-alerts"') :]
    assert "1 open" in table
    assert re.search(r'<td class="mono">late</td>\s*<td><span class="badge failed">open', table)


def test_the_dashboard_lists_open_alerts(client, admin_user):
    late("nightly")
    client.force_login(admin_user)
    page = client.get("/ui/").content.decode()
    section = page[page.index('id="sla-alerts"') :]
    assert 'href="/ui/jobs/nightly/"' in section
    assert "1 open SLA alert(s)" in page


def test_a_job_without_rules_shows_no_alerts_section(client, admin_user):
    job("plain")
    client.force_login(admin_user)
    assert 'id="job-alerts"' not in client.get("/ui/jobs/plain/").content.decode()
    assert 'id="sla-alerts"' not in client.get("/ui/").content.decode()
