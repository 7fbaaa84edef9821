"""The jobs list: search, filters, sort, pages, and bulk actions confirmed then done by services.

The Django admin's job list and actions (the other way to manage jobs in bulk) are tested here too.
"""

from __future__ import annotations

import re

from jobs.models import Execution, Job, Run
from jobs.services.jobs import job_upsert
from tests.web.api.helpers import add_agent, make_user


def make_job(name: str, **fields: object) -> Job:
    """A job saved through the validating service (so runs and deletes behave for real)."""
    data: dict[str, object] = {
        "name": name,
        "schedule": "@every 1m",
        "executor": "shell",
        "executor_config": {"command": "true"},
    }
    data.update(fields)
    return job_upsert(data=data)[0]


def quick_job(name: str, **fields: object) -> Job:
    """A job row made directly, for listing tests that only need columns set."""
    fields.setdefault("executor", "shell")
    return Job.objects.create(name=name, schedule="@every 1m", **fields)


def listed(client, url: str = "/ui/jobs/") -> list[str]:  # type: ignore[no-untyped-def]
    response = client.get(url)
    assert response.status_code == 200
    return re.findall(r'<tr data-job="([^"]+)"', response.content.decode())


def test_the_jobs_list_asks_anonymous_visitors_to_log_in(client, db):
    response = client.get("/ui/jobs/?status=failed")
    assert response.status_code == 302
    assert response["Location"].startswith("/ui/login/?next=/ui/jobs/")


def test_the_list_shows_every_job_with_a_link_to_its_page(client, admin_user):
    quick_job("alpha", displayname="The first", tags={"role": "web"})
    quick_job("beta")
    client.force_login(admin_user)
    page = client.get("/ui/jobs/").content.decode()
    assert re.findall(r'<tr data-job="([^"]+)"', page) == ["alpha", "beta"]
    assert 'href="/ui/jobs/alpha/"' in page and "The first" in page and "role=web" in page
    assert 'id="job-filters"' in page and 'id="bulk-form"' in page
    assert "1–2 of 2" in page


def test_search_matches_the_name_or_the_display_name(client, admin_user):
    quick_job("backup-db")
    quick_job("report", displayname="nightly backup report")
    quick_job("cleanup")
    client.force_login(admin_user)
    assert listed(client, "/ui/jobs/?q=backup") == ["backup-db", "report"]


def test_status_disabled_and_executor_filters_narrow_the_list(client, admin_user):
    quick_job("ok", status="success")
    quick_job("broken", status="failed")
    quick_job("broken-off", status="failed", disabled=True)
    quick_job("fresh")
    quick_job("ping", executor="http")
    client.force_login(admin_user)
    assert listed(client, "/ui/jobs/?status=failed") == ["broken", "broken-off"]
    assert listed(client, "/ui/jobs/?status=untriggered") == ["fresh", "ping"]
    assert listed(client, "/ui/jobs/?status=failed&disabled=false") == ["broken"]
    assert listed(client, "/ui/jobs/?disabled=true") == ["broken-off"]
    assert listed(client, "/ui/jobs/?executor=http") == ["ping"]


def test_the_executor_filter_offers_the_registry_s_executors(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/ui/jobs/").content.decode()
    assert '<option value="shell"' in page and '<option value="http"' in page


def test_the_tag_filter_matches_a_value_with_or_without_a_node_count(client, admin_user):
    quick_job("web-one", tags={"role": "web:1"})
    quick_job("web-all", tags={"role": "web"})
    quick_job("db", tags={"role": "db"})
    quick_job("untagged")
    client.force_login(admin_user)
    assert listed(client, "/ui/jobs/?tag=role%3Dweb") == ["web-all", "web-one"]
    assert listed(client, "/ui/jobs/?tag=role") == ["db", "web-all", "web-one"]
    assert listed(client, "/ui/jobs/?tag=role%3Dwe") == []


def test_the_metadata_filter_matches_key_and_value(client, admin_user):
    quick_job("billing", metadata={"team": "payments", "tier": "1"})
    quick_job("mailer", metadata={"team": "growth"})
    client.force_login(admin_user)
    assert listed(client, "/ui/jobs/?metadata=team%3Dpayments") == ["billing"]
    assert listed(client, "/ui/jobs/?metadata=team%3Dpayments&metadata=tier%3D2") == []


def test_a_malformed_filter_is_explained_on_the_page_not_a_server_error(client, admin_user):
    quick_job("anything")
    client.force_login(admin_user)
    for query in ["metadata=team", "status=sleeping", "disabled=maybe", "sort=owner", "q=a%00b"]:
        response = client.get(f"/ui/jobs/?{query}")
        assert response.status_code == 200, query
        page = response.content.decode()
        assert 'role="alert"' in page and 'data-job="anything"' not in page, query


def test_column_headers_sort_the_list_and_toggle_the_order(client, admin_user):
    quick_job("a-few", error_count=5)
    quick_job("b-none", error_count=0)
    quick_job("c-many", error_count=9)
    client.force_login(admin_user)
    page = client.get("/ui/jobs/?status=untriggered").content.decode()
    link = re.search(r'<a href="([^"]+)">Errors</a>', page)
    assert link and "sort=error_count" in link.group(1) and "status=untriggered" in link.group(1)
    ascending = link.group(1).replace("&amp;", "&")
    assert listed(client, "/ui/jobs/" + ascending) == ["b-none", "a-few", "c-many"]

    page = client.get("/ui/jobs/" + ascending).content.decode()
    assert 'aria-sort="ascending"' in page
    toggled = re.search(r'<a href="([^"]+)">Errors ▲</a>', page)
    assert toggled and "order=desc" in toggled.group(1)
    descending = toggled.group(1).replace("&amp;", "&")
    assert listed(client, "/ui/jobs/" + descending) == ["c-many", "a-few", "b-none"]


def test_the_list_pages_by_fifty_with_next_and_previous_links_keeping_filters(client, admin_user):
    Job.objects.bulk_create(
        [Job(name=f"job-{i:03d}", status="failed") for i in range(120)]
        + [Job(name="other", status="success")]
    )
    client.force_login(admin_user)
    first = client.get("/ui/jobs/?status=failed").content.decode()
    assert len(re.findall(r"<tr data-job=", first)) == 50
    assert "1–50 of 120" in first and 'rel="prev"' not in first
    next_url = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert next_url and next_url.group(1).replace("&amp;", "&") == "?status=failed&page=2"

    last = client.get("/ui/jobs/?status=failed&page=3").content.decode()
    rows = re.findall(r'<tr data-job="([^"]+)"', last)
    assert rows[0] == "job-100" and len(rows) == 20
    assert "101–120 of 120" in last and 'rel="next"' not in last
    prev_url = re.search(r'<a rel="prev" href="([^"]+)"', last)
    assert prev_url and prev_url.group(1).replace("&amp;", "&") == "?status=failed&page=2"
    assert "1–50 of 120" in client.get("/ui/jobs/?status=failed&page=x").content.decode()


def test_each_row_has_a_checkbox_and_the_header_one_selects_all(client, admin_user):
    quick_job("one")
    client.force_login(admin_user)
    page = client.get("/ui/jobs/").content.decode()
    assert 'name="names" value="one"' in page
    assert 'data-select-all="#jobs-table input[name=names]"' in page
    for action in ["run", "enable", "disable", "delete"]:
        assert f'name="action" value="{action}"' in page


def test_a_bulk_action_first_asks_for_confirmation_and_changes_nothing(client, admin_user):
    make_job("one")
    make_job("two")
    client.force_login(admin_user)
    response = client.post(
        "/ui/jobs/bulk/",
        {"action": "disable", "names": ["one", "two"], "next": "/ui/jobs/?q=o"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Disable 2 jobs?" in page and 'data-job="one"' in page and 'data-job="two"' in page
    assert 'name="confirm" value="1"' in page and ">Confirm</button>" in page
    assert not Job.objects.filter(disabled=True).exists()


def test_confirmed_bulk_disable_disables_the_jobs_and_returns_to_the_filtered_list(
    client, admin_user
):
    make_job("one")
    make_job("two")
    make_job("three")
    client.force_login(admin_user)
    response = client.post(
        "/ui/jobs/bulk/",
        {"action": "disable", "names": ["one", "two"], "next": "/ui/jobs/?q=o", "confirm": "1"},
        follow=True,
    )
    assert response.redirect_chain == [("/ui/jobs/?q=o", 302)]
    assert set(Job.objects.filter(disabled=True).values_list("name", flat=True)) == {"one", "two"}
    assert "Disabled 2 jobs: one, two." in response.content.decode()


def test_bulk_enable_toggles_only_the_jobs_that_are_disabled(client, admin_user):
    make_job("off", disabled=True)
    make_job("on")
    client.force_login(admin_user)
    response = client.post(
        "/ui/jobs/bulk/", {"action": "enable", "names": ["off", "on"], "confirm": "1"}, follow=True
    )
    assert not Job.objects.filter(disabled=True).exists()
    page = response.content.decode()
    assert "Enabled 1 job: off." in page and "Already enabled" in page


def test_bulk_run_starts_a_manual_run_of_each_job_even_a_disabled_one(client, admin_user):
    add_agent("agent-1", tags={"role": "dkron"})
    make_job("one")
    make_job("two", disabled=True, concurrency="forbid")
    client.force_login(admin_user)
    client.post("/ui/jobs/bulk/", {"action": "run", "names": ["one", "two"], "confirm": "1"})
    for name in ["one", "two"]:
        assert Run.objects.filter(job__name=name, trigger="manual").count() == 1
        assert Execution.objects.filter(job__name=name).count() == 1


def test_bulk_delete_removes_parent_and_child_together(client, admin_user):
    make_job("parent")
    make_job("child", schedule="", parent_job="parent")
    client.force_login(admin_user)
    client.post(
        "/ui/jobs/bulk/", {"action": "delete", "names": ["parent", "child"], "confirm": "1"}
    )
    assert not Job.objects.exists()


def test_a_refused_delete_is_reported_per_job_and_the_others_still_go(client, admin_user):
    make_job("parent")
    make_job("child", schedule="", parent_job="parent")
    make_job("loner")
    client.force_login(admin_user)
    response = client.post(
        "/ui/jobs/bulk/",
        {"action": "delete", "names": ["parent", "loner"], "confirm": "1"},
        follow=True,
    )
    assert set(Job.objects.values_list("name", flat=True)) == {"parent", "child"}
    page = response.content.decode()
    assert "Deleted 1 job: loner." in page
    assert "parent: could not delete job with dependent jobs" in page


def test_the_delete_confirmation_names_each_job_s_dependents(client, admin_user):
    make_job("parent")
    make_job("child", schedule="", parent_job="parent")
    client.force_login(admin_user)
    page = client.post("/ui/jobs/bulk/", {"action": "delete", "names": ["parent"]}).content.decode()
    assert "Delete 1 job?" in page and '<span class="tag">child</span>' in page


def test_bulk_actions_only_return_to_pages_of_the_ui(client, admin_user):
    make_job("one")
    client.force_login(admin_user)
    for bad in ["https://evil.example/", "//evil.example/ui/", "/admin/", ""]:
        response = client.post(
            "/ui/jobs/bulk/", {"action": "disable", "names": ["one"], "next": bad, "confirm": "1"}
        )
        assert response["Location"] == "/ui/jobs/", bad


def test_a_bulk_post_without_jobs_or_with_an_unknown_action_changes_nothing(client, admin_user):
    make_job("one")
    client.force_login(admin_user)
    assert client.post("/ui/jobs/bulk/", {"action": "delete", "confirm": "1"}).status_code == 302
    response = client.post(
        "/ui/jobs/bulk/", {"action": "explode", "names": ["one"], "confirm": "1"}
    )
    assert response.status_code == 302
    assert client.get("/ui/jobs/bulk/").status_code == 405
    assert Job.objects.filter(name="one", disabled=False).exists()


def test_a_read_only_user_sees_no_bulk_controls_and_is_refused_bulk_actions(client, db):
    make_job("one")
    client.force_login(make_user("viewer", "view_job"))
    page = client.get("/ui/jobs/").content.decode()
    assert 'data-job="one"' in page
    assert 'name="names"' not in page and 'name="action"' not in page
    for action in ["run", "enable", "disable", "delete"]:
        response = client.post(
            "/ui/jobs/bulk/", {"action": action, "names": ["one"], "confirm": "1"}
        )
        assert response.status_code == 403, action
    assert Job.objects.filter(name="one", disabled=False).exists()
    assert not Run.objects.exists()


def test_an_operator_may_run_and_toggle_in_bulk_but_not_delete(client, db):
    make_job("one")
    client.force_login(make_user("operator", "view_job", "operate_job"))
    page = client.get("/ui/jobs/").content.decode()
    assert 'name="action" value="disable"' in page and 'name="action" value="delete"' not in page
    response = client.post("/ui/jobs/bulk/", {"action": "delete", "names": ["one"], "confirm": "1"})
    assert response.status_code == 403
    client.post("/ui/jobs/bulk/", {"action": "disable", "names": ["one"], "confirm": "1"})
    assert Job.objects.get(name="one").disabled


def test_the_admin_lists_jobs_and_its_run_now_action_starts_a_run(client, admin_user):
    job = make_job("nightly")
    add_agent("agent-x", tags={"role": "dkron"})
    client.force_login(admin_user)
    assert client.get("/admin/jobs/job/").status_code == 200
    response = client.post("/admin/jobs/job/", {"action": "run_now", "_selected_action": [job.pk]})
    assert response.status_code == 302
    assert Execution.objects.filter(job=job, status="queued").count() == 1


def test_the_admin_saves_jobs_through_the_validating_service(client, admin_user):
    client.force_login(admin_user)
    form = {
        "name": "from-admin",
        "schedule": "*/5 * * * *",
        "executor": "shell",
        "executor_config": '{"command": "true"}',
        "tags": "{}",
        "metadata": "{}",
        "processors": "{}",
        "notify": "{}",
        "retries": 0,
        "retry_backoff": 1,
        "concurrency": "allow",
        "misfire_policy": "skip",
        "catchup_window": 3600,
        "jitter": 0,
    }
    client.post("/admin/jobs/job/add/", form)
    assert not Job.objects.filter(name="from-admin").exists()  # 5-field cron refused
    form["schedule"] = "0 */5 * * * *"
    client.post("/admin/jobs/job/add/", form)
    job = Job.objects.get(name="from-admin")
    assert job.next_run is not None
