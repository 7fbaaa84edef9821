"""A restore cannot hold a web worker's memory or the database's write lock for long.

The attacks of issue 12, finding 8: a file of hundreds of thousands of `{}`, jobs with huge
names echoed in the answer, and a restore long enough to lock other writers out on SQLite.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from jobs.models import AuditEntry, Job
from jobs.services import transfer
from tests.operations.test_restore import restore, restored_lines
from tests.web.api.helpers import http_body


@pytest.mark.django_db
def test_a_file_of_a_million_empty_objects_is_a_413_saying_to_split_it(api):
    content = b"[" + b",".join([b"{}"] * 1_000_000) + b"]"

    response = restore(api, content)

    assert response.status_code == 413
    body = response.json()
    assert "split" in body["error"] and "1000" in body["error"]
    assert len(response.content) < 1000
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_the_job_limit_is_a_setting(api, settings):
    settings.DKRON = {**settings.DKRON, "RESTORE_MAX_JOBS": 3}

    assert restore(api, [http_body(f"j{i}") for i in range(4)]).status_code == 413
    assert restored_lines(restore(api, [http_body(f"j{i}") for i in range(3)])) == [
        "success create j0",
        "success create j1",
        "success create j2",
    ]


@pytest.mark.django_db
def test_huge_names_and_reasons_are_cut_in_the_answer(api):
    jobs = [{"name": f"{i}-" + "n" * 50_000, "schedule": "x" * 50_000} for i in range(200)]

    response = restore(api, jobs)

    lines = restored_lines(response)
    assert len(lines) == 200 and all(line.startswith("fail create ") for line in lines)
    assert max(len(line) for line in lines) < 700
    assert len(response.content) < 200 * 800  # the file was 20 MB


@pytest.mark.django_db(transaction=True)
def test_a_crash_half_way_keeps_the_batches_committed_before_it(settings, monkeypatch):
    settings.DKRON = {**settings.DKRON, "RESTORE_BATCH": 50}
    real = transfer._restore_one
    calls = []

    def crash_at_job_120(name, item, actor):  # type: ignore[no-untyped-def]
        calls.append(name)
        if len(calls) == 120:
            raise RuntimeError("the process died here")
        return real(name, item, actor)

    monkeypatch.setattr(transfer, "_restore_one", crash_at_job_120)

    with pytest.raises(RuntimeError):
        transfer.jobs_restore(items=[http_body(f"j{i:03}") for i in range(200)])

    assert Job.objects.count() == 100


@pytest.mark.django_db(transaction=True)
def test_other_writers_get_in_while_a_long_restore_runs(settings):
    """On SQLite (one write lock) a single transaction locked every writer out for seconds."""
    settings.DKRON = {**settings.DKRON, "RESTORE_BATCH": 20}
    items = [http_body(f"j{i:03}") for i in range(400)]
    span: dict[str, float] = {}

    def run() -> None:
        try:
            span["start"] = time.monotonic()
            transfer.jobs_restore(items=items)
            span["end"] = time.monotonic()
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    while "start" not in span or Job.objects.count() == 0 and worker.is_alive():
        time.sleep(0.005)  # the restore has begun writing
    commits = []
    while worker.is_alive():
        with transaction.atomic():
            AuditEntry.objects.create(actor="probe", via="system", action="pause")
        commits.append(time.monotonic())
    worker.join()

    assert Job.objects.count() == 400
    assert any(span["start"] < at < span["end"] for at in commits), "locked out all along"
