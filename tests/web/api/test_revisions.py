"""GET /v1/jobs/{name}/revisions[/{n}[/diff]] and POST .../revisions/{n}/restore: a job's
history, newest first and paged; one revision; the diff of two; the rollback, which needs the
permission to change the job; clear 404s and 400s; no secret anywhere."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.web.api.helpers import (
    assert_error,
    client_for,
    create,
    job_body,
    make_user,
)

pytestmark = pytest.mark.django_db

SECRET = "hunter2-db"
CONFIG = {"command": "env", "env": f"DB_PASSWORD={SECRET}"}


def three_revisions(api) -> None:
    create(api, "job1", displayname="One")
    create(api, "job1", displayname="Two")
    create(api, "job1", displayname="Three")


def test_the_list_is_newest_first_with_who_when_and_the_job_as_it_was(api):
    three_revisions(api)

    response = api.get("/v1/jobs/job1/revisions")

    assert response.status_code == 200
    assert response["X-Total-Count"] == "3"
    revisions = response.json()
    assert [r["number"] for r in revisions] == [3, 2, 1]
    assert [r["change"] for r in revisions] == ["update", "update", "create"]
    assert revisions[0]["actor"] == "root" and revisions[0]["source"] == "api"
    assert revisions[0]["created_at"].endswith("Z")
    assert revisions[2]["job"]["displayname"] == "One"
    current = api.get("/v1/jobs/job1").json()
    assert revisions[0]["job"] == {
        k: v for k, v in current.items() if k in revisions[0]["job"]
    }  # what GET shows, less the server's counters


def test_the_list_pages_like_other_lists(api):
    three_revisions(api)

    response = api.get("/v1/jobs/job1/revisions?_start=1&_end=2")

    assert [r["number"] for r in response.json()] == [2]
    assert response["X-Total-Count"] == "3"


def test_one_revision_by_number(api):
    three_revisions(api)

    revision = api.get("/v1/jobs/job1/revisions/2").json()

    assert revision["number"] == 2 and revision["job"]["displayname"] == "Two"


def test_the_diff_against_the_one_before_and_against_any_other(api):
    three_revisions(api)

    default = api.get("/v1/jobs/job1/revisions/3/diff").json()
    other = api.get("/v1/jobs/job1/revisions/3/diff?against=1").json()

    assert default == {
        "job_name": "job1",
        "revision": 3,
        "against": 2,
        "changes": [{"path": "displayname", "before": "Two", "after": "Three"}],
    }
    assert other["changes"] == [{"path": "displayname", "before": "One", "after": "Three"}]


def test_restore_is_a_new_revision_and_answers_the_job(api):
    three_revisions(api)

    response = api.post("/v1/jobs/job1/revisions/1/restore")

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["job"]["displayname"] == "One"
    assert answer["revision"]["number"] == 4
    assert answer["revision"]["change"] == "restore" and answer["revision"]["restored_from"] == 1
    assert api.get("/v1/jobs/job1").json()["displayname"] == "One"


def test_secrets_are_masked_in_revisions_and_diffs(api):
    create(api, "job1", executor_config=CONFIG)
    create(api, "job1", executor_config={**CONFIG, "env": "DB_PASSWORD=other-pass"})

    texts = [
        api.get("/v1/jobs/job1/revisions").content.decode(),
        api.get("/v1/jobs/job1/revisions/2/diff").content.decode(),
        api.post("/v1/jobs/job1/revisions/1/restore").content.decode(),
    ]

    for text in texts:
        assert SECRET not in text and "other-pass" not in text
    diff = api.get("/v1/jobs/job1/revisions/2/diff").json()["changes"]
    assert diff == [
        {
            "path": "executor_config.env.DB_PASSWORD",
            "before": "********",
            "after": "********",
            "secret": "changed",
        }
    ]
    assert Job.objects.get(name="job1").executor_config["env"] == "DB_PASSWORD=other-pass"


def test_unknown_jobs_and_revisions_are_404s_naming_what_is_missing(api):
    create(api, "job1")

    assert (
        "job 'ghost' not found" in assert_error(api.get("/v1/jobs/ghost/revisions"), 404)["error"]
    )
    body = assert_error(api.get("/v1/jobs/job1/revisions/7"), 404)
    assert body["error"] == "revision 7 of job 'job1' not found"
    assert_error(api.get("/v1/jobs/job1/revisions/7/diff"), 404)
    assert_error(api.get("/v1/jobs/job1/revisions/1/diff?against=7"), 404)
    assert_error(api.post("/v1/jobs/job1/revisions/7/restore"), 404)


def test_numbers_that_are_not_revision_numbers_are_400s(api):
    create(api, "job1")

    assert assert_error(api.get("/v1/jobs/job1/revisions/x"), 400)["details"] == {
        "revision": "not a revision number"
    }
    assert (
        "against"
        in assert_error(api.get("/v1/jobs/job1/revisions/1/diff?against=-1"), 400)["details"]
    )
    assert (
        "_start and _end" in assert_error(api.get("/v1/jobs/job1/revisions?_start=x"), 400)["error"]
    )


def test_a_restore_that_would_send_a_secret_elsewhere_is_a_400_naming_it(api):
    create(api, "job1", executor_config=CONFIG)
    create(api, "job1", executor_config={**CONFIG, "command": "env | sort"})

    body = assert_error(api.post("/v1/jobs/job1/revisions/1/restore"), 400)

    assert "resend env DB_PASSWORD" in body["error"]
    assert api.get("/v1/jobs/job1").json()["executor_config"]["command"] == "env | sort"


def test_the_history_of_a_deleted_job_stays_and_a_restore_brings_it_back(api):
    create(api, "job1", displayname="Kept")
    api.delete("/v1/jobs/job1")

    revisions = api.get("/v1/jobs/job1/revisions").json()
    response = api.post("/v1/jobs/job1/revisions/1/restore")

    assert [r["change"] for r in revisions] == ["delete", "create"]
    assert response.status_code == 200
    assert api.get("/v1/jobs/job1").json()["displayname"] == "Kept"


def test_readers_may_read_the_history_but_not_restore(api):
    three_revisions(api)
    reader = client_for(make_user("reader"))

    assert reader.get("/v1/jobs/job1/revisions").status_code == 200
    assert reader.get("/v1/jobs/job1/revisions/1/diff").status_code == 200
    assert_error(reader.post("/v1/jobs/job1/revisions/1/restore"), 403)
    assert api.get("/v1/jobs/job1").json()["displayname"] == "Three"


def test_restoring_needs_change_and_bringing_a_deleted_job_back_needs_add(api):
    three_revisions(api)
    changer = client_for(make_user("changer", "change_job", "run_code_jobs"))
    assert changer.post("/v1/jobs/job1/revisions/1/restore").status_code == 200

    api.delete("/v1/jobs/job1")
    assert_error(changer.post("/v1/jobs/job1/revisions/1/restore"), 403)
    adder = client_for(make_user("adder", "add_job", "run_code_jobs"))
    assert adder.post("/v1/jobs/job1/revisions/1/restore").status_code == 200


def test_restoring_a_code_job_needs_the_run_code_permission(api):
    three_revisions(api)
    changer = client_for(make_user("changer", "change_job"))

    assert_error(changer.post("/v1/jobs/job1/revisions/1/restore"), 403)


def test_a_restore_is_refused_while_the_cluster_is_paused(api):
    three_revisions(api)
    assert api.post("/v1/pause").status_code == 200

    response = api.post("/v1/jobs/job1/revisions/1/restore")

    assert response.status_code == 503
    assert api.get("/v1/jobs/job1").json()["displayname"] == "Three"


def test_executions_say_which_revision_they_ran_and_dkron_clients_may_ignore_it(api):
    create(api, "job1")
    create(api, "job1", displayname="Two")
    api.post("/v1/jobs/job1/run")

    executions = api.get("/v1/jobs/job1/executions").json()
    one = api.get(f"/v1/jobs/job1/executions/{executions[0]['id']}").json()

    assert executions and all(e["revision"] == 2 for e in executions)
    assert one["revision"] == 2
    # A Dkron client posts the job back with whatever it read: the extra field is ignored.
    assert (
        api.post("/v1/jobs", {**job_body("job1"), "revision": 99}, format="json").status_code == 201
    )


def test_a_name_that_can_be_no_job_is_a_404_not_a_server_error(api):
    assert_error(api.get("/v1/jobs/a%00b/revisions"), 404)
    assert_error(api.get("/v1/jobs/a%00b/revisions/1/diff"), 404)
    assert_error(api.post(f"/v1/jobs/{'x' * 300}/revisions/1/restore"), 404)
