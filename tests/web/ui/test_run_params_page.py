"""Run parameters in the UI: the job form edits the declaration (a JSON list, with clear errors),
the Run now button of a job that declares any asks for them with typed inputs, and the
executions table shows what each run ran with (issue 16, part 5)."""

from __future__ import annotations

import html

import pytest

from jobs.models import Job, Run
from tests.web.ui.test_job_form import form_data, inline_error
from tests.web.ui.test_job_page import flashed, make_job

pytestmark = pytest.mark.django_db

PARAMS = [
    {"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "eu"},
    {"name": "count", "type": "int", "default": 2},
    {"name": "dry_run", "type": "bool", "default": False},
    {"name": "ticket", "required": True, "description": "Change ticket"},
]


def test_the_job_form_saves_a_declaration_and_shows_it_again(client, admin_user):
    client.force_login(admin_user)
    declaration = '[{"name": "region", "type": "choice", "choices": ["eu", "us"]}]'

    response = client.post("/ui/jobs/new/", form_data(params_json=declaration))

    assert response.status_code == 302, inline_error(response.content.decode(), "params_json")
    assert Job.objects.get(name="greet").params == [
        {"name": "region", "type": "choice", "choices": ["eu", "us"]}
    ]
    edit = html.unescape(client.get("/ui/jobs/greet/edit/").content.decode())
    assert '"choices": [' in edit and '"region"' in edit


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[{nope", "not valid JSON"),
        ('{"name": "x"}', "must be a JSON list"),
        ('[{"name": "x", "type": "choice"}]', "x.choices: a choice parameter needs"),
    ],
)
def test_a_bad_declaration_is_an_inline_error_and_nothing_is_stored(
    client, admin_user, text, words
):
    client.force_login(admin_user)

    response = client.post("/ui/jobs/new/", form_data(params_json=text))

    assert response.status_code == 400
    assert words in html.unescape(inline_error(response.content.decode(), "params_json"))
    assert not Job.objects.exists()


def test_a_job_without_params_keeps_the_plain_run_button(client, admin_user):
    make_job("plain")
    client.force_login(admin_user)

    page = client.get("/ui/jobs/plain/").content.decode()

    assert ">Run now</button>" in page and 'id="run-params"' not in page


def test_the_run_button_of_a_job_with_params_asks_for_them_with_typed_inputs(client, admin_user):
    make_job("deploy", params=PARAMS)
    client.force_login(admin_user)

    page = client.get("/ui/jobs/deploy/").content.decode()

    assert 'id="run-params"' in page
    assert '<select name="param-region"' in page and '<option value="eu" selected>' in page
    assert 'type="number" name="param-count" value="2"' in page
    assert '<select name="param-dry_run"' in page
    assert 'name="param-ticket"' in page and "Change ticket" in page


def test_running_with_the_form_gives_the_typed_values_to_the_run(client, admin_user):
    make_job("deploy", params=PARAMS)
    client.force_login(admin_user)
    posted = {"param-region": "us", "param-count": "5", "param-dry_run": "true"}

    response = client.post("/ui/jobs/deploy/run/", {**posted, "param-ticket": "T-1"})

    assert any(m.startswith("Run started") for m in flashed(response))
    snapshot = Run.objects.get(job__name="deploy").snapshot
    assert snapshot["params"] == {"region": "us", "count": 5, "dry_run": True, "ticket": "T-1"}
    fragment = client.get("/ui/jobs/deploy/executions/").content.decode()
    assert "region=us, count=5, dry_run=true, ticket=T-1" in fragment


def test_a_refused_value_is_a_message_naming_the_parameter(client, admin_user):
    make_job("deploy", params=PARAMS)
    client.force_login(admin_user)

    missing = client.post("/ui/jobs/deploy/run/", {"param-region": "us"})
    assert flashed(missing) == ["invalid run parameters: ticket: required parameter is missing"]
    not_a_number = client.post("/ui/jobs/deploy/run/", {"param-count": "lots"})
    assert flashed(not_a_number)[-1] == "invalid run parameters: count: Enter a whole number."
    assert not Run.objects.exists()
