"""POST /v1/restore: Dkron's multipart `file` of jobs (a GET /v1/jobs export), parents first,
a line per job, failures reported without stopping the others."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import Job
from jobs.services import cluster
from tests.web.api.helpers import assert_error, client_for, create, http_body, job_body, make_user

pytestmark = pytest.mark.django_db

EDITOR = ("add_job", "change_job")


def upload(content: Any, name: str = "jobs.json") -> dict[str, Any]:
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    return {"file": SimpleUploadedFile(name, raw, content_type="application/json")}


def restore(client, content: Any):
    return client.post("/v1/restore", upload(content), format="multipart")


def restored_lines(response) -> list[str]:
    """Dkron answers its lines as one JSON string holding the encoded array: decode twice."""
    assert response.status_code == 200, response.content
    body = response.json()
    assert isinstance(body, str), body
    return json.loads(body)


def test_a_dkron_export_with_children_before_parents_is_restored_parents_first(api):
    create(api, "root")
    create(api, "child", schedule="", parent_job="root")
    create(api, "grandchild", schedule="", parent_job="child")
    create(api, "loner", disabled=True, metadata={"team": "a"})
    exported = api.get("/v1/jobs").json()
    for name in ("grandchild", "child", "root", "loner"):  # children first: parents are PROTECTed
        Job.objects.filter(name=name).delete()
    by_name = {j["name"]: j for j in exported}
    wrong_order = [by_name[n] for n in ("grandchild", "loner", "child", "root")]

    response = restore(api, wrong_order)

    assert response.status_code == 200, response.content
    assert restored_lines(response) == [
        "success create root",
        "success create child",
        "success create grandchild",
        "success create loner",
    ]
    assert Job.objects.get(name="grandchild").parent.name == "child"
    assert Job.objects.get(name="child").parent.name == "root"
    loner = Job.objects.get(name="loner")
    assert loner.disabled is True and loner.metadata == {"team": "a"}
    restored = {j["name"]: j for j in api.get("/v1/jobs").json()}
    for name, job in by_name.items():
        for key in ("schedule", "executor", "executor_config", "parent_job", "dependent_jobs"):
            assert restored[name][key] == job[key], (name, key)


def test_restoring_over_existing_jobs_replaces_them(api):
    create(api, "nightly", owner="old")

    response = restore(api, [job_body("nightly", owner="new")])

    assert restored_lines(response) == ["success create nightly"]
    assert Job.objects.get(name="nightly").owner == "new"


def test_a_cycle_in_the_file_fails_those_jobs_and_the_others_are_restored(api):
    jobs = [
        job_body("a", schedule="", parent_job="b"),
        job_body("b", schedule="", parent_job="a"),
        job_body("under-a", schedule="", parent_job="a"),
        job_body("fine"),
    ]

    lines = restored_lines(restore(api, jobs))

    assert "success create fine" in lines
    failures = {line.split(":")[0]: line for line in lines if line.startswith("fail")}
    assert set(failures) == {"fail create a", "fail create b", "fail create under-a"}
    assert "cycle" in failures["fail create a"] and "a -> b -> a" in failures["fail create a"]
    assert "its parent job 'a' failed" in failures["fail create under-a"]
    assert list(Job.objects.values_list("name", flat=True)) == ["fine"]


def test_a_job_whose_parent_is_neither_in_the_file_nor_stored_fails_alone(api):
    create(api, "stored-parent")
    jobs = [
        job_body("orphan", schedule="", parent_job="nowhere"),
        job_body("adopted", schedule="", parent_job="stored-parent"),
    ]

    lines = restored_lines(restore(api, jobs))

    assert lines[0].startswith("fail create orphan: specified parent job not found")
    assert lines[1] == "success create adopted"


def test_invalid_jobs_are_reported_and_the_others_are_stored(api):
    jobs = [
        job_body("bad-cron", schedule="not a schedule"),
        job_body("Bad Name"),
        job_body("wrong-type", retries="many"),
        {"schedule": "@every 1m"},
        job_body("good"),
        job_body("good"),
    ]

    lines = restored_lines(restore(api, jobs))

    assert "success create good" in lines
    assert any(line.startswith("fail create bad-cron: Job validation failed") for line in lines)
    assert (
        "fail create Bad Name: Job validation failed: name contains illegal character 'B'." in lines
    )
    assert any(line.startswith("fail create wrong-type: Unable to parse payload") for line in lines)
    assert any(line.startswith("fail create #3: name is required") for line in lines)
    assert any("more than once" in line for line in lines)
    assert list(Job.objects.values_list("name", flat=True)) == ["good"]


@pytest.mark.parametrize(
    "content",
    [b'[{"name": "half"', b"not json", b"\xff\xfe\x00", {"name": "job1"}, [1, 2], b""],
)
def test_a_file_that_is_not_a_json_array_of_jobs_is_a_400_and_stores_nothing(api, content):
    response = restore(api, content)

    assert_error(response, 400)
    assert not Job.objects.exists()


def test_a_file_with_a_bad_item_stores_nothing_even_if_others_are_fine(api):
    response = restore(api, [job_body("fine"), "oops"])

    assert "item 1" in assert_error(response, 400)["error"]
    assert not Job.objects.exists()


def test_a_request_without_the_file_field_is_a_400(api):
    response = api.post("/v1/restore", {"other": "x"}, format="multipart")

    assert "'file'" in assert_error(response, 400)["error"]


def test_a_json_body_instead_of_multipart_is_refused(api):
    response = api.post("/v1/restore", [job_body()], format="json")

    assert_error(response, 415)


def test_restore_is_a_503_while_paused(api):
    cluster.cluster_set_paused(paused=True, actor="ops")

    assert_error(restore(api, [job_body("x")]), 503)
    assert not Job.objects.exists()


def test_restoring_a_masked_api_export_keeps_the_stored_secrets(api):
    secret = {
        "url": "nats://127.0.0.1:4222",
        "subject": "a.b",
        "userName": "u",
        "password": "hunter2",
    }
    create(api, "pub", executor="nats", executor_config=secret)
    exported = api.get("/v1/jobs").json()
    assert exported[0]["executor_config"]["password"] == "********"

    assert restored_lines(restore(api, exported)) == ["success create pub"]

    assert Job.objects.get(name="pub").executor_config["password"] == "hunter2"


# --- permissions ---


def test_restore_needs_permission_to_create_and_change_jobs(db):
    adder = client_for(make_user("adder", "add_job"))
    reader = client_for(make_user("reader"))

    assert_error(restore(adder, [job_body()]), 403)
    assert_error(restore(reader, [job_body()]), 403)
    assert not Job.objects.exists()


def test_the_run_code_permission_applies_to_each_restored_job(db):
    editor = client_for(make_user("editor", *EDITOR))

    lines = restored_lines(restore(editor, [job_body("shell-job"), http_body("ping")]))

    assert lines[0].startswith("fail create shell-job: you may not create or change 'shell'")
    assert lines[1] == "success create ping"
    assert list(Job.objects.values_list("name", flat=True)) == ["ping"]


def test_restore_needs_credentials(anon, db):
    assert_error(restore(anon, [job_body()]), 401)


def test_a_duplicate_name_fails_alone_and_the_first_one_keeps_its_children(api):
    jobs = [
        job_body("parent"),
        job_body("parent", owner="second copy"),
        job_body("kid", schedule="", parent_job="parent"),
    ]

    lines = restored_lines(restore(api, jobs))

    assert "success create parent" in lines and "success create kid" in lines
    assert [line for line in lines if line.startswith("fail")] == [
        "fail create parent: the file holds this job more than once"
    ]
    assert Job.objects.get(name="parent").owner == ""
