"""Run parameters in a real browser (Chromium): the Run now button of a job that declares
parameters opens a form with one typed input per parameter, and the run it starts records and
shows them (issue 16, part 5). No agent is needed: the run's execution row says what it ran with
whether or not a node took it."""

from __future__ import annotations

import pytest

from jobs.models import Run
from tests.web.ui.browser.conftest import UI
from tests.web.ui.browser.test_browser import button, expect, make_job, submit

pytestmark = [pytest.mark.browser]

PARAMS = [
    {"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "eu"},
    {"name": "count", "type": "int", "default": 2},
    {"name": "ticket", "required": True, "description": "Change ticket"},
]


def test_the_run_button_asks_for_the_parameters_and_the_run_shows_them(ui: UI) -> None:
    make_job("deploy", command="echo {{ params.region }}", params=PARAMS)
    page = ui.page
    ui.goto("/ui/jobs/deploy/", "job")
    form = page.get_by_role("form", name="Run parameters")
    expect(form).to_be_hidden()

    page.get_by_test_id("run-now").click()
    expect(form).to_be_visible()
    ui.shot("run-form")
    region = form.get_by_label("region")
    count = form.get_by_label("count")
    expect(region).to_have_value("eu")
    expect(count).to_have_attribute("type", "number")
    expect(count).to_have_value("2")
    region.select_option("us")
    count.fill("7")
    form.get_by_label("ticket *").fill("T-42")
    submit(ui, button(ui, "Run with these parameters", form))

    ui.shot("after-run")
    expect(page.get_by_text("Run started")).to_be_visible()
    expect(page.get_by_test_id("run-params").first).to_have_text("region=us, count=7, ticket=T-42")
    assert Run.objects.get(job__name="deploy").snapshot["params"] == {
        "region": "us",
        "count": 7,
        "ticket": "T-42",
    }


def test_a_missing_required_parameter_is_refused_with_its_name(ui: UI) -> None:
    make_job("deploy", params=PARAMS)
    page = ui.page
    ui.goto("/ui/jobs/deploy/", "job")

    page.get_by_test_id("run-now").click()
    form = page.get_by_role("form", name="Run parameters")
    submit(ui, button(ui, "Run with these parameters", form))

    ui.shot("refused")
    expect(
        page.get_by_text("invalid run parameters: ticket: required parameter is missing")
    ).to_be_visible()
    assert not Run.objects.exists()
