"""Jobs and schedulers the scheduler's unit tests build."""

from __future__ import annotations

import dkronweb
from jobs.models import Job
from jobs.services.jobs import job_upsert
from scheduler.beat import JobScheduler


def make_job(name: str, **fields) -> Job:
    data = {"name": name, "executor": "shell", "executor_config": {"command": "true"}, **fields}
    return job_upsert(data=data)[0]


def new_scheduler() -> JobScheduler:
    return JobScheduler(app=dkronweb.celery_app, lazy=True)
