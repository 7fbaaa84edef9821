"""Run parameters travel with a job: export then import, and POST /v1/restore, carry `params`; a
Dkron backup without them restores as before; a bad declaration is stored as a problem by a
restore, as dkronweb's other own findings are (issue 16, part 5)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from jobs.models import Job
from jobs.services.jobs import job_upsert
from tests.operations.test_restore import restore, restored_lines
from tests.web.api.helpers import job_body

pytestmark = pytest.mark.django_db

PARAMS = [
    {"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "eu"},
    {"name": "ticket", "type": "string", "required": True, "description": "Change ticket"},
]
CONFIG = {"command": "deploy {{ params.region }}"}


def test_export_then_import_keeps_the_declaration(tmp_path: Path):
    job_upsert(data=job_body("deploy", params=PARAMS, executor_config=CONFIG))
    out = tmp_path / "jobs.json"
    call_command("export_jobs", "--output", str(out), stderr=io.StringIO())
    assert json.loads(out.read_text())[0]["params"] == PARAMS
    Job.objects.all().delete()

    call_command("import_jobs", str(out), stdout=io.StringIO())

    job = Job.objects.get(name="deploy")
    assert job.params == PARAMS and job.executor_config == CONFIG and job.problems == {}


def test_restore_carries_params_and_a_dkron_backup_without_them_restores_as_before(api):
    backup = [
        job_body("deploy", params=PARAMS, executor_config=CONFIG),
        job_body("plain"),  # Dkron's own jobs know nothing of params
    ]

    lines = restored_lines(restore(api, backup))

    assert len(lines) == 2, lines
    assert Job.objects.get(name="deploy").params == PARAMS
    assert Job.objects.get(name="plain").params == []
    assert api.get("/v1/jobs/deploy").json()["params"] == PARAMS


def test_restore_stores_a_bad_declaration_as_a_problem_that_fails_its_runs(api):
    bad = [{"name": "region", "type": "choice"}]

    restored_lines(restore(api, [job_body("odd", params=bad)]))

    job = Job.objects.get(name="odd")
    assert "non-empty list of choices" in job.problems["params"]["region.choices"]


def test_a_job_restored_with_a_declaration_of_the_wrong_shape_still_reads_back(
    api, client, admin_user
):
    restored_lines(restore(api, [job_body("odd", params=["region", 3])]))
    client.force_login(admin_user)

    assert api.get("/v1/jobs/odd").json()["params"] == ["region", 3]
    assert api.get("/v1/jobs/odd").json()["problems"]["params"]
    page = client.get("/ui/jobs/odd/")
    assert page.status_code == 200 and ">Run now</button>" in page.content.decode()
