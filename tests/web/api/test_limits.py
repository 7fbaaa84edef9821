"""Limits on what the API takes in and keeps: body size, restore file size, fields, output.

Each refused request is a 4xx in Dkron's error shape and stores nothing. Covered elsewhere and
not repeated here: malformed JSON, wrong types, unknown executors, invalid cron and illegal
names (tests/web/api/test_bad_input.py, with POST), cyclic parents
(tests/web/api/test_parent_and_dependents.py), the 256,000-byte tail of a shell job's output
(tests/executors/test_shell.py) and `output_size_limit` (tests/web/api/test_list_executions.py).
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agent.runner import _final_output, run_execution
from executors.output import OutputSink
from jobs import dispatch
from jobs.models import Execution, Job
from jobs.services.runs import run_now
from tests.factories import agent, job
from tests.web.api.helpers import assert_error, create, job_body
from web.api import ops

pytestmark = pytest.mark.django_db

LIMIT = 4096  # a small DKRON_MAX_BODY_BYTES (DATA_UPLOAD_MAX_MEMORY_SIZE), to keep tests light


@pytest.fixture
def small_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT
    return LIMIT


def send(api, method: str, body, path: str = "/v1/jobs"):
    return getattr(api, method)(path, body, format="json")


@pytest.mark.parametrize(
    ("method", "path"), [("post", "/v1/jobs"), ("patch", "/v1/jobs"), ("put", "/v1/jobs/job1")]
)
def test_a_body_over_the_configured_limit_is_a_413_naming_the_limit(api, small_limit, method, path):
    body = job_body("job1", metadata={"blob": "x" * small_limit})

    error = assert_error(send(api, method, body, path), 413)

    assert f"limit {small_limit} bytes" in error["error"]
    assert error["details"] == {"limit": small_limit}
    assert Job.objects.count() == 0


def test_an_oversized_update_leaves_the_stored_job_unchanged(api, small_limit):
    create(api, "job1", displayname="before")

    body = job_body("job1", displayname="after", metadata={"blob": "x" * small_limit})
    assert_error(send(api, "put", body, "/v1/jobs/job1"), 413)

    assert Job.objects.get(name="job1").displayname == "before"


def test_a_body_under_the_configured_limit_is_accepted(api, small_limit):
    body = job_body("job1", metadata={"blob": "x" * (small_limit // 2)})

    assert send(api, "post", body).status_code == 201


def test_an_oversized_body_on_a_bodiless_endpoint_is_ignored_not_a_crash(api, small_limit):
    create(api, "job1")

    response = api.post("/v1/jobs/job1/toggle", {"blob": "x" * 2 * small_limit}, format="json")

    assert response.status_code in (200, 413)


def restore_file(content: bytes) -> dict:
    return {"file": SimpleUploadedFile("jobs.json", content, content_type="application/json")}


def test_a_restore_file_over_its_limit_is_a_413_and_restores_nothing(api, monkeypatch):
    monkeypatch.setattr(ops, "RESTORE_MAX_BYTES", 1024)
    content = json.dumps([job_body("job1", displayname="d" * 2000)]).encode()

    response = api.post("/v1/restore", restore_file(content), format="multipart")

    error = assert_error(response, 413)
    assert error["details"] == {"limit": 1024}
    assert Job.objects.count() == 0


def test_a_restore_with_too_many_form_fields_is_a_400_and_restores_nothing(api, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    data = {f"f{i}": "x" for i in range(20)}
    data.update(restore_file(json.dumps([job_body("job1")]).encode()))

    response = api.post("/v1/restore", data, format="multipart")

    assert_error(response, 400)
    assert Job.objects.count() == 0


def test_a_restore_with_oversized_form_fields_is_a_413_and_restores_nothing(api, small_limit):
    data = {"note": "x" * 2 * small_limit}
    data.update(restore_file(json.dumps([job_body("job1")]).encode()))

    response = api.post("/v1/restore", data, format="multipart")

    assert_error(response, 413)
    assert Job.objects.count() == 0


@pytest.mark.parametrize("method", ["patch", "put"])
@pytest.mark.parametrize(
    "fields",
    [
        {"retries": "many"},  # wrong type
        {"executor": "telepathy"},  # unknown executor
        {"schedule": "* * * *"},  # invalid cron
        {"name": "Job One"},  # illegal characters
        {"parent_job": "job1"},  # its own parent: a cycle
    ],
)
def test_every_write_method_refuses_bad_input_and_stores_nothing(api, method, fields):
    body = {**job_body("job1"), **fields}
    path = "/v1/jobs/job1" if method == "put" else "/v1/jobs"

    assert_error(send(api, method, body, path), 400)
    assert Job.objects.count() == 0


@pytest.mark.parametrize("method", ["patch", "put"])
def test_malformed_json_on_every_write_method_is_a_400_in_dkrons_error_shape(api, method):
    path = "/v1/jobs/job1" if method == "put" else "/v1/jobs"

    response = api.generic(
        method.upper(), path, '{"name": "job1",', content_type="application/json"
    )

    assert "parse" in assert_error(response, 400)["error"].lower()
    assert Job.objects.count() == 0


# --- Execution output is bounded (DKRON_OUTPUT_LIMIT, default Dkron's 256,000 bytes) ---


def test_the_output_sink_keeps_only_the_last_bytes_of_its_limit():
    sink = OutputSink(10)

    sink.write("0123456789")
    sink.write("abc")

    assert (sink.text(), sink.truncated) == ("3456789abc", True)


def test_the_stored_output_with_its_error_line_stays_within_the_limit():
    sink = OutputSink(100)
    sink.write("y" * 100)

    output, truncated = _final_output("exit status 1", sink, 100)

    assert len(output.encode()) == 100 and truncated
    assert output.endswith("y" * 50)


def test_a_multibyte_character_cut_by_the_limit_is_dropped_not_garbled():
    sink = OutputSink(1000)
    sink.write("é" * 10)  # 20 bytes

    output, truncated = _final_output("", sink, 5)

    assert (output, truncated) == ("éé", True)


def test_a_run_stores_only_the_configured_output_limit_and_says_it_was_cut(
    transactional_db, api, settings, monkeypatch
):
    # The broker is not under test here: the run is executed in-process below, so the Celery
    # message that would carry it to an agent is not sent.
    monkeypatch.setattr(dispatch, "publish_many", lambda executions, **kw: None)
    settings.DKRON = {**settings.DKRON, "OUTPUT_LIMIT": 1000}
    agent("n1")
    command = "head -c 5000 /dev/zero | tr '\\0' x; echo END"
    run_now(job=job("chatty", executor_config={"command": command, "shell": "true"}))
    execution = Execution.objects.get()

    run_execution(execution.pk, node_name="n1")

    execution.refresh_from_db()
    assert execution.status == "success"
    assert len(execution.output.encode()) == 1000 and execution.output.endswith("xxEND\n")
    shown = api.get(f"/v1/jobs/chatty/executions/{execution.pk}").json()
    assert shown["output_truncated"] is True and len(shown["output"]) == 1000


def test_binary_output_with_nul_bytes_is_stored_not_a_crash(transactional_db, monkeypatch):
    # Regression: PostgreSQL refused the NUL bytes and finishing the execution raised
    # DataError, leaving it running. NUL is stored as U+FFFD. (Broker not under test: as above.)
    monkeypatch.setattr(dispatch, "publish_many", lambda executions, **kw: None)
    agent("n1")
    run_now(job=job("binary", executor_config={"command": "head -c 8 /dev/zero"}))
    execution = Execution.objects.get()

    run_execution(execution.pk, node_name="n1")

    execution.refresh_from_db()
    assert (execution.status, execution.output) == ("success", "\ufffd" * 8)
