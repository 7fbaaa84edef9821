"""Run parameters over the API (issue 16, part 5): a job declares `params`, a run now may send
`{"params": {...}}`, and the executions say what they ran with. Dkron clients that send no body
(or an empty one, with any Content-Type) run as before."""

from __future__ import annotations

import pytest

from jobs.models import Job, Run
from jobs.services.runs import fire_due_jobs
from tests.web.api.helpers import (
    add_agent,
    assert_error,
    client_for,
    create,
    job_body,
    make_user,
)

pytestmark = pytest.mark.django_db

PARAMS = [
    {"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "eu"},
    {"name": "count", "type": "int", "default": 1},
    {"name": "dry_run", "type": "bool", "default": False},
    {"name": "ticket", "required": True, "description": "Change ticket"},
]
COMMAND = "deploy {{ params.region }} x{{ params.count }}"


def create_deploy(api, **fields):
    body = {"params": PARAMS, "executor_config": {"command": COMMAND}, **fields}
    return create(api, "deploy", **body)


def test_a_job_declares_params_and_reads_them_back(api):
    answer = create_deploy(api)

    assert answer["params"][0] == PARAMS[0]
    assert answer["params"][3] == {**PARAMS[3], "type": "string"}
    assert api.get("/v1/jobs/deploy").json()["params"] == answer["params"]
    assert api.get("/v1/jobs").json()[0]["params"] == answer["params"]


def test_a_job_without_params_answers_an_empty_list(api):
    assert create(api, "plain")["params"] == []


def test_a_bad_declaration_is_a_400_naming_the_parameter_and_the_field(api):
    bad = [{"name": "region", "type": "choice", "choices": []}]

    body = assert_error(api.post("/v1/jobs", job_body(params=bad), format="json"), 400)

    assert "params" in body["error"]
    assert "non-empty list of choices" in body["details"]["params"]["region.choices"]
    assert not Job.objects.exists()


def test_a_declaration_that_is_not_a_list_is_a_400(api):
    body = assert_error(api.post("/v1/jobs", job_body(params={"x": 1}), format="json"), 400)

    assert "must be a list" in body["details"]["params"]["params"]


def test_a_placeholder_of_an_undeclared_parameter_is_a_400_on_its_config_key(api):
    config = {"command": "echo {{ params.nope }}"}

    body = assert_error(api.post("/v1/jobs", job_body(executor_config=config), format="json"), 400)

    assert "names no declared parameter" in body["details"]["executor_config"]["command"]


def test_an_upsert_without_params_replaces_the_declaration_as_for_every_optional_field(api):
    # Dkron's upsert replaces the whole job: an omitted field takes its default (notify,
    # misfire_policy, history_limit... alike), so a Dkron client's PUT clears `params`.
    create(
        api, "plain", params=PARAMS[:1], notify={"on": "on_failure", "email": ["ops@example.com"]}
    )

    answer = create(api, "plain")

    assert answer["params"] == [] and answer["notify"] == {}


@pytest.mark.parametrize(
    "request_kw",
    [
        {},
        {"data": b"", "content_type": "application/json"},
        {"data": b"", "content_type": "text/plain"},
        {"data": b"   ", "content_type": "application/x-www-form-urlencoded"},
        {"data": b"{}", "content_type": "application/json"},
        {"data": b"null", "content_type": "application/json"},
        # Dkron ignores a run's body: a form or text body runs as before too.
        {"data": b"a=b", "content_type": "application/x-www-form-urlencoded"},
        {"data": b"{}", "content_type": "text/plain"},
        {"data": b"--x--\r\n", "content_type": "multipart/form-data; boundary=x"},
    ],
)
def test_a_run_with_no_body_or_an_empty_one_runs_as_before(api, request_kw):
    create(api, "plain")

    response = api.post("/v1/jobs/plain/run", **request_kw)

    assert response.status_code == 202, response.content
    run = Run.objects.get(job__name="plain")
    assert "params" not in run.snapshot


def test_a_run_gives_values_and_the_rest_take_their_defaults(api):
    create_deploy(api)

    response = api.post(
        "/v1/jobs/deploy/run", {"params": {"region": "us", "ticket": "T-7"}}, format="json"
    )

    assert response.status_code == 202, response.content
    run = Run.objects.get(job__name="deploy")
    assert run.snapshot["params"] == {"region": "us", "count": 1, "dry_run": False, "ticket": "T-7"}
    assert run.snapshot["executor_config"]["command"] == COMMAND  # placeholders kept as stored


def test_the_short_run_path_takes_the_body_too(api):
    create_deploy(api)

    response = api.post("/v1/jobs/deploy", {"params": {"ticket": "T-8"}}, format="json")

    assert response.status_code == 202
    assert Run.objects.get(job__name="deploy").snapshot["params"]["ticket"] == "T-8"


@pytest.mark.parametrize(
    ("given", "name", "words"),
    [
        ({"ticket": "T", "colour": "red"}, "colour", "unknown parameter"),
        ({"ticket": "T", "count": "2"}, "count", "must be an integer"),
        ({"ticket": "T", "dry_run": "no"}, "dry_run", "true or false"),
        ({"ticket": "T", "region": "asia"}, "region", "is not one of eu, us"),
        ({}, "ticket", "required parameter is missing"),
    ],
)
def test_a_bad_value_is_a_400_naming_the_parameter(api, given, name, words):
    create_deploy(api)

    response = api.post("/v1/jobs/deploy/run", {"params": given}, format="json")

    body = assert_error(response, 400)
    assert body["error"].startswith(f"invalid run parameters: {name}: ")
    assert words in body["details"]["params"][name]
    assert not Run.objects.exists()


def test_a_required_parameter_without_a_value_refuses_a_bodiless_run(api):
    create_deploy(api)

    body = assert_error(api.post("/v1/jobs/deploy/run"), 400)

    assert body["details"]["params"] == {"ticket": "required parameter is missing"}


def test_params_sent_to_a_job_that_declares_none_are_refused(api):
    create(api, "plain")

    body = assert_error(api.post("/v1/jobs/plain/run", {"params": {"x": 1}}, format="json"), 400)

    assert "unknown parameter (declared: none)" in body["details"]["params"]["x"]


def test_a_body_that_is_not_an_object_or_not_json_is_a_400(api):
    create(api, "plain")

    assert_error(api.post("/v1/jobs/plain/run", b"[1]", content_type="application/json"), 400)
    assert_error(api.post("/v1/jobs/plain/run", b"{nope", content_type="application/json"), 400)


def test_the_executions_show_the_params_they_ran_with(api):
    create_deploy(api)
    create(api, "plain")
    api.post("/v1/jobs/deploy/run", {"params": {"ticket": "T-9", "count": 4}}, format="json")
    api.post("/v1/jobs/plain/run")

    listed = api.get("/v1/jobs/deploy/executions").json()
    one = api.get(f"/v1/jobs/deploy/executions/{listed[0]['id']}").json()

    expected = {"region": "eu", "count": 4, "dry_run": False, "ticket": "T-9"}
    assert listed[0]["params"] == expected and one["params"] == expected
    assert api.get("/v1/jobs/plain/executions").json()[0]["params"] is None


def test_a_scheduled_run_takes_the_defaults(api):
    add_agent("n1")
    params = [PARAMS[0], PARAMS[1]]
    create(api, "tick", schedule="@every 1s", params=params)
    Job.objects.filter(name="tick").update(next_run=Job.objects.get(name="tick").created_at)

    fire_due_jobs()

    run = Run.objects.get(job__name="tick")
    assert run.trigger == Run.Trigger.SCHEDULE
    assert run.snapshot["params"] == {"region": "eu", "count": 1}
    assert run.snapshot["problems"] == {}


def test_a_scheduled_run_of_a_required_parameter_without_default_fails_saying_why(api):
    create(api, "tick", schedule="@every 1s", params=[PARAMS[3]])
    Job.objects.filter(name="tick").update(next_run=Job.objects.get(name="tick").created_at)

    fire_due_jobs()

    run = Run.objects.get(job__name="tick")
    assert run.snapshot["problems"] == {"params": {"ticket": "required parameter is missing"}}


def test_setting_a_string_placed_into_a_code_job_needs_the_run_code_permission(api):
    # Whoever may only run a shell job must not choose the code it runs through a string.
    create_deploy(api, executor_config={"command": "echo {{ params.ticket }} {{ params.region }}"})
    operator = client_for(make_user("op", "operate_job", "view_job"))

    typed = operator.post("/v1/jobs/deploy/run", {"params": {"region": "us"}}, format="json")
    text = operator.post("/v1/jobs/deploy/run", {"params": {"ticket": "; id"}}, format="json")

    assert typed.status_code == 400  # a choice is safe; the missing ticket is what is refused
    assert assert_error(typed, 400)["details"]["params"] == {
        "ticket": "required parameter is missing"
    }
    assert assert_error(text, 403)["details"]["params"] == {"ticket": "permission required"}
    assert (
        api.post("/v1/jobs/deploy/run", {"params": {"ticket": "T-1"}}, format="json").status_code
        == 202
    )


def test_the_openapi_document_describes_the_field_and_the_run_body(api):
    doc = api.get("/v1/openapi.json").json()

    schemas = doc["components"]["schemas"]
    assert "params" in schemas["Job"]["properties"]
    assert "params" in schemas["Execution"]["properties"]
    body = doc["paths"]["/v1/jobs/{name}/run"]["post"]["requestBody"]
    assert not body.get("required")  # no body runs as in Dkron
    assert "params" in schemas["RunBody"]["properties"]


def test_runoncreate_saves_the_job_and_runs_it_with_the_defaults(api):
    body = job_body("deploy", params=PARAMS, executor_config={"command": COMMAND})

    response = api.post("/v1/jobs?runoncreate=true", body, format="json")

    assert response.status_code == 201, response.content
    snapshot = Run.objects.get(job__name="deploy").snapshot
    assert snapshot["params"] == {}  # the ticket has no default: the run fails saying so
    assert snapshot["problems"] == {"params": {"ticket": "required parameter is missing"}}
