"""Concurrency keys and agent slots in the web UI (issue 16): the job form carries the key,
its limit and rate; the job page shows the rendered key with its counts; held executions say
what they wait for; members show their slots; the Concurrency page lists every key."""

from __future__ import annotations

import html
import re

import pytest

from jobs.models import Execution, Job
from tests.factories import job
from tests.web.api.helpers import add_agent, add_execution, make_user
from tests.web.ui.test_job_form import form_data, inline_error

pytestmark = pytest.mark.django_db


def _field_value(page: str, name: str) -> str:
    found = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    assert found, f"no input {name}"
    value = re.search(r'value="([^"]*)"', found.group(0))
    return value.group(1) if value else ""


def _keyed(name: str, key: str, waiting: str = "", status: str = "queued") -> Execution:
    execution = add_execution(name, status=status)
    Execution.objects.filter(pk=execution.pk).update(concurrency_key=key, waiting=waiting)
    execution.refresh_from_db()
    return execution


# --- the job form ----------------------------------------------------------------------------


def test_the_form_has_the_key_fields_with_help(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/ui/jobs/new/").content.decode()
    for name in ("concurrency_key", "concurrency_limit", "rate_limit"):
        assert f'name="{name}"' in page, name
    assert "{metadata.x}" in page and "N/s, N/m or N/h" in page
    assert 'href="/ui/concurrency/"' in page


def test_the_form_saves_the_key_fields_and_the_edit_page_shows_them(client, admin_user):
    client.force_login(admin_user)
    data = form_data(concurrency_key="db:{metadata.team}", concurrency_limit="2", rate_limit="10/m")
    response = client.post("/ui/jobs/new/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    saved = Job.objects.get(name="greet")
    assert (saved.concurrency_key, saved.concurrency_limit, saved.rate_limit) == (
        "db:{metadata.team}",
        2,
        "10/m",
    )

    page = client.get("/ui/jobs/greet/edit/").content.decode()
    assert _field_value(page, "concurrency_key") == "db:{metadata.team}"
    assert _field_value(page, "concurrency_limit") == "2"
    assert _field_value(page, "rate_limit") == "10/m"


def test_saving_the_edit_page_untouched_keeps_the_key_fields(client, admin_user):
    job("greet", concurrency_key="db", concurrency_limit=3, rate_limit="5/s")
    client.force_login(admin_user)
    page = client.get("/ui/jobs/greet/edit/").content.decode()
    data = form_data(
        schedule="@manually",
        timezone="",
        **{
            name: _field_value(page, name)
            for name in ("concurrency_key", "concurrency_limit", "rate_limit")
        },
        **{"config.command": "true", "tags_key": [""], "tags_value": [""]},
        metadata_key=[""],
        metadata_value=[""],
    )
    response = client.post("/ui/jobs/greet/edit/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    saved = Job.objects.get(name="greet")
    assert (saved.concurrency_key, saved.concurrency_limit, saved.rate_limit) == ("db", 3, "5/s")


def test_clearing_the_key_fields_removes_them(client, admin_user):
    job("greet", concurrency_key="db", concurrency_limit=3)
    client.force_login(admin_user)
    data = form_data(concurrency_key="", concurrency_limit="", rate_limit="")
    response = client.post("/ui/jobs/greet/edit/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    saved = Job.objects.get(name="greet")
    assert (saved.concurrency_key, saved.concurrency_limit, saved.rate_limit) == ("", None, "")


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"rate_limit": "10 per minute", "concurrency_key": "db"}, "rate_limit", "N/s, N/m or N/h"),
        ({"concurrency_key": "db"}, "concurrency_limit", "needs a concurrency_limit or"),
        ({"concurrency_limit": "2"}, "concurrency_limit", "needs a concurrency_key"),
        ({"rate_limit": "1/s"}, "rate_limit", "needs a concurrency_key"),
        ({"concurrency_key": "db", "concurrency_limit": "0"}, "concurrency_limit", "at least 1"),
        (
            {"concurrency_key": "db:{metadata.db}", "concurrency_limit": "1"},
            "concurrency_key",
            "metadata 'db'",
        ),
    ],
)
def test_the_services_verdict_shows_next_to_the_key_field(
    client, admin_user, fields, field, message
):
    client.force_login(admin_user)
    response = client.post("/ui/jobs/new/", form_data(**fields))
    assert response.status_code == 400
    page = response.content.decode()
    assert message in html.unescape(inline_error(page, field))
    assert not Job.objects.filter(name="greet").exists()
    for name, value in fields.items():  # what was typed stays in the form
        assert html.unescape(_field_value(page, name)) == value


def test_a_limit_that_is_not_a_number_is_refused_by_the_form(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/ui/jobs/new/", form_data(concurrency_key="db", concurrency_limit="x"))
    assert response.status_code == 400
    assert "whole number" in inline_error(response.content.decode(), "concurrency_limit")


# --- the job page ----------------------------------------------------------------------------


def test_the_job_page_shows_the_rendered_key_its_limits_and_counts(client, admin_user):
    job(
        "etl",
        concurrency_key="db:{metadata.db}",
        concurrency_limit=2,
        rate_limit="10/m",
        metadata={"db": "main"},
    )
    _keyed("etl", "db:main", status="running")
    _keyed("etl", "db:main")
    _keyed("etl", "db:main", waiting="key")
    _keyed("etl", "db:main", waiting="key")
    client.force_login(admin_user)
    page = client.get("/ui/jobs/etl/").content.decode()
    section = re.search(r'<dd id="job-concurrency-key">(.*?)</dd>', page, re.S)
    assert section, "no concurrency key on the page"
    text = section.group(1)
    assert ">db:main</a>" in text and "db:{metadata.db}" in text
    assert "at most 2 at once" in text and "rate limit 10/m" in text
    assert "1 running, 1 queued, 2 waiting" in text


def test_the_job_page_says_when_another_job_gave_the_key_other_limits(client, admin_user):
    job("a", concurrency_key="db", concurrency_limit=2)
    job("b", concurrency_key="db", concurrency_limit=5)  # saved last: the key's limit is 5
    client.force_login(admin_user)
    page = client.get("/ui/jobs/a/").content.decode()
    section = re.search(r'<dd id="job-concurrency-key">(.*?)</dd>', page, re.S)
    assert section and "at most 2 at once" in section.group(1)
    assert "the key has limit 5" in section.group(1)


def test_a_job_without_a_key_shows_none(client, admin_user):
    job("plain")
    client.force_login(admin_user)
    page = client.get("/ui/jobs/plain/").content.decode()
    assert "job-concurrency-key" not in page


def test_held_executions_say_what_they_wait_for(client, admin_user):
    job("etl", concurrency_key="db", concurrency_limit=2)
    by_key = _keyed("etl", "db", waiting="key")
    by_slot = add_execution("etl")
    Execution.objects.filter(pk=by_slot.pk).update(waiting="slot", node_name="")
    plain = add_execution("etl")
    client.force_login(admin_user)
    for url in ("/ui/jobs/etl/", "/ui/jobs/etl/executions/"):
        page = client.get(url).content.decode()
        rows = {
            int(pk): row
            for pk, row in re.findall(r'<tr data-execution="(\d+)"[^>]*>(.*?)</tr>', page, re.S)
        }
        assert "queued" in rows[by_key.pk] and "waiting for key db (limit 2)" in rows[by_key.pk]
        assert "waiting for a free agent slot" in rows[by_slot.pk]
        assert 'data-testid="waiting"' not in rows[plain.pk]


def test_a_key_with_a_rate_only_says_its_rate(client, admin_user):
    job("etl", concurrency_key="api", rate_limit="3/s")
    held = _keyed("etl", "api", waiting="key")
    client.force_login(admin_user)
    page = client.get("/ui/jobs/etl/executions/").content.decode()
    row = re.search(rf'<tr data-execution="{held.pk}".*?</tr>', page, re.S)
    assert row and "waiting for key api (rate 3/s)" in row.group(0)


# --- members ---------------------------------------------------------------------------------


def test_members_show_used_and_total_slots(client, admin_user):
    add_agent("agent-a", concurrency=4, slots=2)
    add_agent("agent-b", concurrency=3)  # no --slots: its pool concurrency
    add_agent("sched", concurrency=0, tags={"dkronweb_role": "scheduler"})
    job("etl")
    add_execution("etl", status="running", node="agent-a")
    add_execution("etl", status="running", node="agent-a")
    add_execution("etl", status="queued", node="agent-b")  # queued is not a used slot
    client.force_login(admin_user)
    page = client.get("/ui/members/").content.decode()
    assert ">Slots</th>" in page
    slots = dict(
        re.findall(r'<tr data-agent="([\w-]+)".*?data-testid="slots">(.*?)</td>', page, re.S)
    )
    assert slots == {"agent-a": "2 / 2", "agent-b": "0 / 3", "sched": "—"}


# --- the concurrency page --------------------------------------------------------------------


def test_the_concurrency_page_lists_every_key_with_its_limits_and_counts(client, db):
    job("a", concurrency_key="db:{metadata.db}", concurrency_limit=2, metadata={"db": "x"})
    job("b", concurrency_key="db:x", concurrency_limit=2)
    job("c", concurrency_key="api", rate_limit="10/m")
    _keyed("a", "db:x", status="running")
    _keyed("a", "db:x", waiting="key")
    _keyed("c", "api")
    client.force_login(make_user("viewer", "view_job"))
    page = client.get("/ui/concurrency/").content.decode()
    assert 'href="/ui/concurrency/" aria-current="page"' in page
    rows = dict(re.findall(r'<tr data-key="([^"]+)">(.*?)</tr>', page, re.S))
    assert list(rows) == ["api", "db:x"]
    cells = [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", rows["db:x"], re.S)
    ]
    assert cells[:6] == ["db:x", "2", "—", "1", "0", "1"]
    assert 'href="/ui/jobs/a/"' in rows["db:x"] and 'href="/ui/jobs/b/"' in rows["db:x"]
    cells = [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", rows["api"], re.S)
    ]
    assert cells[:6] == ["api", "—", "10/m", "0", "1", "0"]


def test_the_concurrency_page_without_keys_and_for_anonymous_visitors(client, db):
    response = client.get("/ui/concurrency/")
    assert response.status_code == 302 and response["Location"].startswith("/ui/login/")
    client.force_login(make_user("viewer", "view_job"))
    page = client.get("/ui/concurrency/").content.decode()
    assert "No job has a concurrency key yet." in page


def test_every_page_links_to_the_concurrency_page_next_to_members(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/ui/members/").content.decode()
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page, re.S)
    assert nav
    links = re.findall(r'href="([^"]+)"', nav.group(1))
    assert links.index("/ui/concurrency/") == links.index("/ui/members/") + 1
