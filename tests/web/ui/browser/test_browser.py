"""The web UI in a real browser (Chromium): the issue's scenarios, against the live server and,
for anything that runs, a real agent subprocess. Every page visited is screenshotted to
tests/web/ui/artifacts/ (see conftest.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from jobs.models import Execution, Job
from tests.harness import wait_for
from tests.web.ui.browser.conftest import UI

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

RUN_TIMEOUT_MS = 30_000  # an agent picks the run up, the fragment refreshes every 2 s


def expect(target: Any, **kw: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(target, **kw)


def make_job(name: str, command: str = "true", **fields: Any) -> Job:
    from jobs.services.jobs import job_upsert

    data = {
        "name": name,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": command},
        **fields,
    }
    return job_upsert(data=data)[0]


def set_status(name: str, status: str) -> None:
    Job.objects.filter(name=name).update(status=status)


def button(ui: UI, text: str, scope: Any = None) -> Any:
    return (scope or ui.page).get_by_role("button", name=text, exact=True)


def submit(ui: UI, control: Any) -> None:
    """Click a control that loads a new page (form post, link) and wait for that page."""
    with ui.page.expect_navigation():
        control.click()


def field(form: Any, name: str) -> Any:
    return form.locator(f'[name="{name}"]')


def choose_executor(ui: UI, executor: str) -> None:
    """Pick the executor; when that swaps the config fields, wait for the new ones."""
    page = ui.page
    select = field(page.locator("#job-form"), "executor")
    if select.input_value() == executor:
        return
    page.locator("#executor-fields *").evaluate_all(
        "els => els.forEach(e => e.setAttribute('data-stale', ''))"
    )
    select.select_option(executor)
    page.locator('#executor-fields [name^="config."]:not([data-stale])').first.wait_for()


def fill_job_form(ui: UI, name: str, schedule: str, command: str) -> None:
    form = ui.page.locator("#job-form")
    field(form, "name").fill(name)
    field(form, "schedule").fill(schedule)
    choose_executor(ui, "shell")
    field(form, "config.command").fill(command)


def job_rows(ui: UI) -> list[str]:
    return ui.page.locator("#jobs-table tbody tr[data-job]").evaluate_all(
        "rows => rows.map(r => r.dataset.job)"
    )


def execution_row(ui: UI, status: str | None = None) -> Any:
    selector = "#executions tr[data-execution]"
    if status:
        selector += f'[data-status="{status}"]'
    return ui.page.locator(selector).first


def test_login_form_redirects_back_and_loads_the_static_files(anon_ui: UI) -> None:
    ui = anon_ui
    page = ui.page
    ui.goto("/ui/jobs/", "anonymous-redirect")
    assert re.search(r"/ui/login/\?next=(/|%2F)ui(/|%2F)jobs", ui.path()), ui.path()

    page.get_by_label("Username").fill("ui-admin")
    page.get_by_label("Password").fill("wrong password")
    submit(ui, page.get_by_role("button", name="Log in"))
    expect(page.get_by_role("alert")).to_be_visible()
    ui.shot("bad-password")

    page.get_by_label("Password").fill("ui-admin-pass")
    submit(ui, page.get_by_role("button", name="Log in"))
    assert ui.path() == "/ui/jobs/"
    ui.shot("signed-in")
    expect(page.locator("header .user")).to_contain_text("ui-admin")
    assert ui.static.get("ui/app.js") == 200 and ui.static.get("ui/app.css") == 200, ui.static
    # The stylesheet applies (not merely fetched): the header is laid out by app.css.
    assert page.evaluate("document.styleSheets[0].cssRules.length") > 0

    submit(ui, button(ui, "Log out"))
    assert ui.path().startswith("/ui/login/")
    ui.shot("signed-out")
    ui.goto("/ui/", "after-logout")
    assert ui.path().startswith("/ui/login/")


def test_create_a_shell_job_with_inline_validation_errors(ui: UI) -> None:
    page = ui.page
    ui.goto("/ui/jobs/new/", "new-job-form")
    for bad in ("61 * * * * *", "not a cron"):
        fill_job_form(ui, "ui-greet", bad, "echo hello-from-ui")
        ui.shot(f"filled-{bad}")
        submit(ui, button(ui, "Save"))
        expect(page.locator("#form-errors")).to_be_visible()
        expect(page.locator("#form-errors")).to_have_attribute("role", "alert")
        expect(page.locator('.field.invalid:has([name="schedule"]) .error')).to_be_visible()
        ui.shot(f"error-{bad}")
        assert not Job.objects.filter(name="ui-greet").exists()
        # The form keeps what was typed.
        form = page.locator("#job-form")
        expect(field(form, "name")).to_have_value("ui-greet")
        expect(field(form, "config.command")).to_have_value("echo hello-from-ui")

    field(page.locator("#job-form"), "schedule").fill("@manually")
    submit(ui, button(ui, "Save"))
    assert ui.path() == "/ui/jobs/ui-greet/"
    ui.shot("created")
    expect(page.locator("#job-summary")).to_contain_text("ui-greet")
    expect(page.locator("#schedule-description")).to_be_visible()
    job = Job.objects.get(name="ui-greet")
    assert (job.schedule, job.executor) == ("@manually", "shell")
    assert job.executor_config["command"] == "echo hello-from-ui"


def test_the_job_form_keeps_tags_and_metadata_rows_across_an_error(ui: UI) -> None:
    page = ui.page
    ui.goto("/ui/jobs/new/", "new-job-form")
    fill_job_form(ui, "ui-kv", "not a cron", "true")
    form = page.locator("#job-form")
    field(form, "tags_key").first.fill("team")
    field(form, "tags_value").first.fill("ops")
    field(form, "metadata_key").first.fill("env")
    field(form, "metadata_value").first.fill("prod")
    button(ui, "Add metadata").click()  # app.js copies the row <template>
    expect(field(form, "metadata_key")).to_have_count(2)
    field(form, "metadata_key").last.fill("tier")
    field(form, "metadata_value").last.fill("gold")
    ui.shot("filled")
    submit(ui, button(ui, "Save"))
    ui.shot("error")
    expect(page.locator("#form-errors")).to_be_visible()
    submit(ui, button(ui, "Save"))  # still wrong: saved again as it stands
    ui.shot("error-again")
    expect(page.locator("#form-errors")).to_be_visible()

    def values(name: str) -> list[str]:
        return field(page.locator("#job-form"), name).evaluate_all("els => els.map(e => e.value)")

    # What was typed comes back, plus one blank row to add another (not one per failed save).
    problems = []
    if values("tags_key") != ["team", ""] or values("tags_value") != ["ops", ""]:
        problems.append(f"tag rows after an error: {values('tags_key')} {values('tags_value')}")
    if values("metadata_key") != ["env", "tier", ""]:
        problems.append(f"metadata rows after an error: {values('metadata_key')}")
    # The form's hidden default-submit button must not show as an empty box.
    if page.locator("#job-form button[hidden]").evaluate_all(
        "els => els.filter(e => e.getClientRects().length).length"
    ):
        problems.append("the hidden default-submit button of #job-form is displayed")

    field(page.locator("#job-form"), "schedule").fill("@manually")
    submit(ui, button(ui, "Save"))
    ui.shot("saved")
    assert ui.path() == "/ui/jobs/ui-kv/"
    job = Job.objects.get(name="ui-kv")
    assert job.tags == {"team": "ops"}
    assert job.metadata == {"env": "prod", "tier": "gold"}
    assert not problems, problems


def test_run_now_shows_the_output_then_toggle_and_delete(cluster, ui: UI) -> None:
    cluster.agent("ui-agent")
    page = ui.page
    ui.goto("/ui/jobs/new/", "new-job-form")
    fill_job_form(ui, "ui-hello", "@manually", "echo hello-from-ui")
    submit(ui, button(ui, "Save"))
    assert ui.path() == "/ui/jobs/ui-hello/"
    ui.shot("created")

    submit(ui, button(ui, "Run now"))
    ui.shot("after-run-now")
    # The executions fragment refreshes by itself: no reload from here on.
    expect(execution_row(ui)).to_have_attribute("data-status", "success", timeout=RUN_TIMEOUT_MS)
    row = execution_row(ui, "success")
    pk = row.get_attribute("data-execution")
    expect(page.locator(f"#pre-{pk}")).to_contain_text("hello-from-ui")
    page.locator(f"#out-{pk} summary").click()
    expect(page.locator(f"#pre-{pk}")).to_be_visible()
    ui.shot("run-finished")
    assert Execution.objects.get(pk=pk).output == "hello-from-ui\n"

    submit(ui, button(ui, "Disable"))
    expect(button(ui, "Enable")).to_be_visible()
    ui.shot("disabled")
    assert Job.objects.get(name="ui-hello").disabled is True
    submit(ui, button(ui, "Enable"))
    expect(button(ui, "Disable")).to_be_visible()
    ui.shot("enabled")
    assert Job.objects.get(name="ui-hello").disabled is False

    submit(ui, button(ui, "Delete"))
    ui.shot("delete-clicked")
    if "/delete/" in ui.path():  # a confirmation page: confirm there
        confirm = page.locator("main").get_by_role(
            "button", name=re.compile(r"^(delete|confirm|yes)", re.I)
        )
        submit(ui, confirm.last)
    assert re.fullmatch(r"/ui/jobs/(\?.*)?", ui.path()), ui.path()
    ui.shot("deleted")
    assert not Job.objects.filter(name="ui-hello").exists()
    expect(page.locator("#jobs-table tr[data-job='ui-hello']")).to_have_count(0)


def test_members_busy_and_kill_a_running_job(cluster, ui: UI) -> None:
    cluster.agent("ui-agent")
    page = ui.page
    make_job(
        "ui-sleeper",
        executor_config={"command": "sleep 1; echo live-line; sleep 60", "shell": "true"},
    )

    ui.goto("/ui/members/", "members")
    agent_row = page.locator('#members-table tr[data-agent="ui-agent"]')
    expect(agent_row).to_be_visible()
    expect(agent_row).to_have_attribute("data-state", "alive")

    ui.goto("/ui/jobs/ui-sleeper/", "job")
    submit(ui, button(ui, "Run now"))
    expect(execution_row(ui)).to_have_attribute("data-status", "running", timeout=RUN_TIMEOUT_MS)
    ui.shot("running")

    ui.goto("/ui/busy/", "busy")
    expect(page.locator("#busy tr[data-execution]")).to_have_count(1)
    url = page.url
    # Live output: the fragment refreshes until the line printed after a second shows up.
    expect(page.locator("#busy")).to_contain_text("live-line", timeout=RUN_TIMEOUT_MS)
    assert page.url == url
    ui.shot("busy-live-output")

    ui.goto("/ui/", "dashboard-running")
    expect(page.locator("#running")).to_contain_text("ui-sleeper")
    expect(page.locator("#agents")).to_contain_text("ui-agent")

    ui.goto("/ui/jobs/ui-sleeper/", "job-running")
    running = execution_row(ui, "running")
    pk = running.get_attribute("data-execution")
    submit(ui, button(ui, "Kill", running))
    assert ui.dialogs, "Kill asks for confirmation first"
    row = page.locator(f'#executions tr[data-execution="{pk}"]')
    expect(row).to_have_attribute("data-status", "killed", timeout=RUN_TIMEOUT_MS)
    ui.shot("killed")
    wait_for(
        lambda: Execution.objects.get(pk=pk).status == "killed", what="the kill in the database"
    )


def test_filters_search_and_sort_narrow_the_jobs_list(ui: UI) -> None:
    page = ui.page
    make_job("alpha-backup", tags={"team": "ops"}, metadata={"env": "prod"})
    make_job("alpha-report", disabled=True, metadata={"env": "dev"})
    make_job("beta-cleanup", tags={"team": "data"})
    make_job(
        "gamma-ping",
        executor="http",
        executor_config={"method": "GET", "url": "http://127.0.0.1:9/"},
    )
    set_status("alpha-backup", "success")
    set_status("alpha-report", "failed")
    set_status("beta-cleanup", "failed")
    everything = ["alpha-backup", "alpha-report", "beta-cleanup", "gamma-ping"]

    ui.goto("/ui/jobs/", "all")
    assert job_rows(ui) == everything

    def filtered(step: str, **values: str) -> list[str]:
        ui.goto("/ui/jobs/", f"{step}-before")
        form = page.locator("#job-filters")
        for name, value in values.items():
            control = field(form, name).first
            if control.evaluate("e => e.tagName") == "SELECT":
                control.select_option(value)
            else:
                control.fill(value)
        submit(ui, button(ui, "Filter", form))
        ui.shot(step)
        for name, value in values.items():
            assert re.search(rf"[?&]{name}=", page.url), page.url
            expect(field(page.locator("#job-filters"), name).first).to_have_value(value)
        return job_rows(ui)

    assert filtered("search", q="alpha") == ["alpha-backup", "alpha-report"]
    assert filtered("status", status="failed") == ["alpha-report", "beta-cleanup"]
    assert filtered("disabled", disabled="true") == ["alpha-report"]
    assert filtered("enabled", disabled="false") == ["alpha-backup", "beta-cleanup", "gamma-ping"]
    assert filtered("executor", executor="http") == ["gamma-ping"]
    assert filtered("tag", tag="team=ops") == ["alpha-backup"]
    assert filtered("metadata", metadata="env=prod") == ["alpha-backup"]
    assert filtered("combined", q="alpha", status="failed") == ["alpha-report"]
    assert filtered("nothing", q="no-such-job") == []
    expect(page.locator("#jobs-table")).to_contain_text("No job matches")

    # Sorting by a column header keeps the filters and flips on the second click.
    filtered("search-again", q="a")
    submit(ui, page.locator("#jobs-table thead").get_by_role("link", name=re.compile("^Name")))
    ui.shot("sorted")
    rows = job_rows(ui)
    assert rows in (everything, everything[::-1])
    submit(ui, page.locator("#jobs-table thead").get_by_role("link", name=re.compile("^Name")))
    ui.shot("sorted-again")
    assert job_rows(ui) == rows[::-1]
    assert "q=a" in page.url


def test_dashboard_counts_match_the_api(ui: UI) -> None:
    page = ui.page
    statuses = {
        "ok-1": "success",
        "ok-2": "success",
        "bad-1": "failed",
        "half-1": "partially_failed",
        "busy-1": "running",
        "new-1": "",
        "new-2": "",
    }
    for name, status in statuses.items():
        make_job(name, disabled=name == "new-2")
        set_status(name, status)
    expected = {
        "total": 7,
        "success": 2,
        "failed": 1,
        "partially_failed": 1,
        "running": 1,
        "untriggered": 2,
        "disabled": 1,
    }

    ui.goto("/ui/", "dashboard")
    for section in ("running", "recent-failures", "agents", "scheduler", "skew"):
        expect(page.locator(f"#{section}")).to_be_visible()
    for key, n in expected.items():
        stat = page.locator(f'a.stat[data-testid="count-{key}"]')
        shown = int(stat.locator(".n").inner_text().strip())
        query = {"total": "", "disabled": "?disabled=true"}.get(key, f"?status={key}")
        # The same session as the page: the API accepts the UI's session cookie.
        response = page.request.get(ui.url(f"/v1/jobs{query}"))
        assert response.ok, response.text()
        api_total = int(response.headers["x-total-count"])
        assert (key, shown) == (key, api_total) == (key, n)
        assert stat.get_attribute("href") == f"/ui/jobs/{query}"

    submit(ui, page.locator('a.stat[data-testid="count-failed"]'))
    assert ui.path() == "/ui/jobs/?status=failed"
    ui.shot("failed-jobs")
    assert job_rows(ui) == ["bad-1"]


def test_a_read_only_user_sees_no_action_buttons(viewer_ui: UI) -> None:
    ui = viewer_ui
    page = ui.page
    make_job("nightly", schedule="0 0 3 * * *", timezone="Europe/Berlin")

    ui.goto("/ui/", "dashboard")
    ui.goto("/ui/jobs/", "jobs")
    assert job_rows(ui) == ["nightly"]
    expect(page.locator('#jobs-table input[name="names"]')).to_have_count(0)
    expect(page.get_by_role("link", name="New job")).to_have_count(0)

    ui.goto("/ui/jobs/nightly/", "job")
    expect(page.locator("#job-summary")).to_contain_text("nightly")
    expect(page.locator("#schedule-description")).to_contain_text("03:00")
    expect(page.locator("#next-fires li")).to_have_count(5)
    for text in ("Run now", "Edit", "Clone", "Delete", "Disable", "Enable", "Kill"):
        expect(page.get_by_role("button", name=text, exact=True)).to_have_count(0)
        expect(page.get_by_role("link", name=text, exact=True)).to_have_count(0)

    # Posting anyway (with a valid CSRF token) is refused with the 403 page.
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        ui.url("/ui/jobs/nightly/run/"),
        headers={"X-CSRFToken": token, "Referer": ui.url("/ui/jobs/nightly/")},
    )
    assert response.status == 403
    assert not Execution.objects.filter(job_name="nightly").exists()
