"""Rows the service and API tests start from: a live agent, a job saved through the service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs.models import Agent, Job
from jobs.services.jobs import job_upsert

FUTURE = datetime.now(UTC) + timedelta(days=3650)  # alive whatever the clock


def agent(name: str, running: int = 0, **tags: str) -> Agent:
    return Agent.objects.create(
        name=name,
        tags={"role": "dkron", "server": "true", **tags},
        last_heartbeat=FUTURE,
        running=running,
        concurrency=4,
    )


def job(name: str, **fields) -> Job:
    data = {
        "name": name,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": "true"},
        **fields,
    }
    return job_upsert(data=data)[0]
