"""Processor configs are validated when a job is saved through /v1/jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.models import Job
from tests.web.api.helpers import job_body

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def allowed(settings, tmp_path: Path) -> Path:
    settings.DKRON = {
        **settings.DKRON,
        "PROCESSOR_LOG_DIRS": [str(tmp_path / "logs")],
        "DISABLED_PROCESSORS": {"syslog"},
    }
    return tmp_path / "logs"


def post(api, **fields):
    return api.post("/v1/jobs", job_body("proc", **fields), format="json")


def test_a_job_with_valid_dkron_style_processors_is_saved(api, allowed):
    processors = {
        "log": {"forward": "true"},
        "files": {"log_dir": str(allowed / "team"), "forward": "false"},
        "fluent": {"host": "127.0.0.1", "port": "24224", "tag": "dkron"},
    }
    response = post(api, processors=processors)

    assert response.status_code == 201, response.content
    assert response.json()["processors"] == processors
    assert Job.objects.get(name="proc").processors == processors


def test_a_log_dir_outside_the_allowed_dirs_is_a_400_naming_the_key(api):
    response = post(api, processors={"files": {"log_dir": "/etc", "forward": "false"}})

    assert response.status_code == 400
    body = response.json()
    assert "not inside an allowed directory" in body["details"]["processors.files.log_dir"]
    assert body["error"].startswith("Job validation failed: ")
    assert not Job.objects.exists()


def test_an_unknown_processor_is_a_400_with_a_suggestion(api):
    response = post(api, processors={"flies": {}})

    assert response.status_code == 400
    assert "did you mean 'files'?" in response.json()["details"]["processors.flies"]
    assert not Job.objects.exists()


def test_a_bad_value_and_an_unknown_key_are_each_named(api):
    response = post(api, processors={"log": {"forward": "yes", "level": "debug"}})

    assert response.status_code == 400
    details = response.json()["details"]
    assert "invalid boolean 'yes'" in details["processors.log.forward"]
    assert details["processors.log.level"] == "unknown key"


def test_a_disabled_processor_is_a_400(api):
    response = post(api, processors={"syslog": {}})

    assert response.status_code == 400
    assert "disabled on this server" in response.json()["details"]["processors.syslog"]


def test_an_update_with_a_bad_processor_keeps_the_stored_job(api):
    assert post(api, processors={"log": {}}).status_code == 201

    response = post(api, processors={"log": {}, "files": {"log_dir": "../../etc"}})

    assert response.status_code == 400
    assert Job.objects.get(name="proc").processors == {"log": {}}
