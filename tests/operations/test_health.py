"""/health: database, broker and an active scheduler decide the status code (the scheduler
not with ?scope=process); the cluster's other alert-worthy states (no live agent, jobs whose
tags no agent matches, a backlog) are in the body, as counts only, and never fail the probe."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dkronweb.celery import app
from jobs import timeutil
from jobs.models import Agent, Execution, Lease, Run
from jobs.services.health import health_report
from jobs.services.lease import lease_acquire
from jobs.services.transfer import jobs_restore
from tests.factories import agent, job

pytestmark = pytest.mark.django_db


def queued(name: str, *, waited: float, not_before_in: float | None = None) -> Execution:
    j = job(name)
    run = Run.objects.create(job=j, snapshot={})
    row = Execution.objects.create(run=run, job=j, job_name=j.name, status="queued")
    now = timeutil.now()
    Execution.objects.filter(pk=row.pk).update(
        queued_at=now - timedelta(seconds=waited),
        not_before=None if not_before_in is None else now + timedelta(seconds=not_before_in),
    )
    return row


def test_no_active_scheduler_is_unhealthy_and_says_why(anon):
    response = anon.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["database"] == "ok" and body["broker"] == "ok"
    assert body["scheduler"] == "no active scheduler"
    assert body["agents"] == {"alive": 0}
    assert "no active scheduler: no job is being fired" in body["alerts"]
    assert "no live agent: no execution can run" in body["alerts"]


def test_an_expired_lease_is_no_active_scheduler(anon):
    assert lease_acquire(holder="sched-1", ttl=60)
    Lease.objects.update(expires_at=timeutil.now() - timedelta(seconds=1))

    response = anon.get("/health")

    assert response.status_code == 503
    assert response.json()["scheduler"] == "no active scheduler"


def test_scope_process_leaves_the_scheduler_out_of_the_verdict(anon):
    response = anon.get("/health?scope=process")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["scheduler"] == "no active scheduler"  # still reported
    assert "no active scheduler: no job is being fired" in body["alerts"]


def test_with_the_lease_disabled_no_scheduler_is_needed(anon, settings):
    settings.DKRON = {**settings.DKRON, "LEASE_ENABLED": False}

    response = anon.get("/health")

    assert response.status_code == 200
    assert response.json()["scheduler"] == "lease disabled"


def test_no_agent_alone_keeps_the_probe_healthy(anon):
    assert lease_acquire(holder="sched-1", ttl=60)

    response = anon.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy" and body["scheduler"] == "ok"
    assert "no live agent: no execution can run" in body["alerts"]


def test_an_active_scheduler_and_live_agents_raise_no_alert(anon):
    assert lease_acquire(holder="sched-1", ttl=60)
    agent("n1")
    agent("n2")
    Agent.objects.create(name="gone", tags={}, left=True, last_heartbeat=timeutil.now())
    Agent.objects.create(name="silent", tags={}, last_heartbeat=timeutil.now() - timedelta(hours=1))

    body = anon.get("/health").json()

    assert body["scheduler"] == "ok"
    assert body["agents"] == {"alive": 2}
    assert body["alerts"] == []


def test_jobs_whose_tags_no_live_agent_matches_are_counted_without_names(anon):
    lease_acquire(holder="sched-1", ttl=60)
    agent("web-1", role="web")
    job("runs-on-web", tags={"role": "web"})
    job("untagged")
    job("wants-db", tags={"role": "db"})
    job("wants-gpu", tags={"role": "web", "gpu": "true:1"})
    job("disabled-db", tags={"role": "db"}, disabled=True)

    response = anon.get("/health")

    body = response.json()
    assert body["tags"] == {"unmatched_jobs": 2}
    assert "2 enabled job(s) target tags that no live agent has" in body["alerts"]
    assert b"wants-db" not in response.content and b"wants-gpu" not in response.content
    assert health_report().unmatched_names == ["wants-db", "wants-gpu"]


def test_executions_queued_too_long_are_a_backlog(anon, settings):
    settings.DKRON = {**settings.DKRON, "BACKLOG_ALERT_SECONDS": 60.0}
    lease_acquire(holder="sched-1", ttl=60)
    agent("n1")
    queued("late-1", waited=300)
    queued("late-2", waited=61)
    queued("fresh", waited=5)
    queued("backing-off", waited=300, not_before_in=30)  # a retry waiting out its backoff
    Execution.objects.create(
        run=Run.objects.create(job=job("busy"), snapshot={}),
        job=job("busy"),
        job_name="busy",
        status="running",
    )
    Execution.objects.filter(job_name="busy").update(queued_at=timeutil.now() - timedelta(hours=1))

    body = anon.get("/health").json()

    assert body["backlog"] == {"queued": 2, "older_than_seconds": 60.0}
    assert body["alerts"] == ["2 execution(s) queued for more than 60 s"]
    assert anon.get("/health").status_code == 200


def test_a_broker_failure_still_fails_the_probe_with_the_cluster_state(anon):
    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        response = anon.get("/health")
    finally:
        app.conf.broker_url = original

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["database"] == "ok"
    assert body["scheduler"] == "no active scheduler"
    assert "broker unavailable: runs cannot be published" in body["alerts"]


def test_enabled_jobs_that_cannot_run_are_an_alert(anon, settings):
    lease_acquire(holder="sched-1", ttl=60)
    agent("n1")
    job("fine")
    jobs_restore(
        items=[
            {
                "name": "placeholder",
                "schedule": "@daily",
                "executor": "http",
                "executor_config": {"url": "{{url}}"},
            },
            {"name": "no-executor", "schedule": "@daily", "executor": ""},
            {
                "name": "parked",
                "schedule": "@daily",
                "executor": "http",
                "disabled": True,
                "executor_config": {"url": "TODO"},
            },
        ]
    )
    assert anon.get("/health").json()["jobs"] == {"cannot_run": 2}

    job("legacy-http", executor="http", executor_config={"method": "GET", "url": "https://x.co"})
    settings.DKRON = {**settings.DKRON, "DISABLED_EXECUTORS": {"http"}}

    response = anon.get("/health")

    body = response.json()
    assert body["jobs"] == {"cannot_run": 3}
    assert body["alerts"] == [
        "3 enabled job(s) fail every run before executing: stored with problems by a restore "
        "or import, or their executor is disabled (see the job pages)"
    ]
    assert b"placeholder" not in response.content
