"""What the end-to-end tests share: a job created through the API, a wait for its runs, a port."""

from __future__ import annotations

from bench.procs import free_port as free_port  # re-exported: the tests' one free_port
from jobs.models import Execution


def create(api, name: str, command: str, **fields) -> dict:
    body = {
        "name": name,
        "schedule": fields.pop("schedule", "@manually"),
        "executor": "shell",
        "executor_config": {"command": command, "shell": "true", **fields.pop("config", {})},
        **fields,
    }
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def executions(job: str) -> list[Execution]:
    return list(Execution.objects.filter(job_name=job).order_by("id"))


def finished(job: str, n: int = 1):
    def check():
        done = [e for e in executions(job) if e.status not in ("queued", "running")]
        return done if len(done) >= n else None

    return check
