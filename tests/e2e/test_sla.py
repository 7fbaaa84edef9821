"""End to end: a real scheduler checks a job's SLA; a fire its (stopped) agent does not start in
time sends exactly one `late` webhook, and once the agent resumes and starts the run, exactly
one `recovered`. Webhook deliveries are counted at a real HTTP receiver, not alert rows."""

from __future__ import annotations

import contextlib
import json
import signal
import time

import psutil
import pytest

from jobs.models import Alert, AuditEntry, Execution
from tests.harness import wait_for
from tests.notifications.receivers import WebhookReceiver

pytestmark = pytest.mark.e2e

# The agent is stopped (SIGSTOP) for a few seconds: nobody may judge it dead meanwhile (the
# scheduler's sweep would close its run; this process would place the run on no agent).
PATIENT = {"DKRON_AGENT_DEAD_AFTER": "120"}


def signal_tree(pid: int, sig: int) -> None:
    process = psutil.Process(pid)
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(sig)


def events(receiver: WebhookReceiver) -> list[str]:
    with receiver.lock:
        return [json.loads(r.body)["event"] for r in receiver.requests]


def test_a_late_fire_alerts_once_and_recovers_once_when_the_agent_starts_it(cluster, api, settings):
    settings.DKRON = {**settings.DKRON, "AGENT_DEAD_AFTER": 120.0}
    receiver = WebhookReceiver()
    agent = cluster.agent("agent-a", **PATIENT)
    cluster.scheduler(**PATIENT)
    response = api.post(
        "/v1/jobs",
        {
            "name": "nightly",
            "schedule": "@manually",  # one fire, the run below: no schedule races the test
            "executor": "shell",
            "executor_config": {"command": "echo done", "shell": "true"},
            "sla": {"start_within": "2s"},
            "notify": {"webhooks": [{"url": receiver.url + "/alerts"}]},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    signal_tree(agent.pid, signal.SIGSTOP)
    try:
        assert api.post("/v1/jobs/nightly/run").status_code == 202
        stopped = time.monotonic()
        receiver.wait_for(1, timeout=30)
        print(f"late webhook {time.monotonic() - stopped:.1f}s after the fire")
        assert events(receiver) == ["late"]
        assert Execution.objects.get(job_name="nightly").status == "queued"
    finally:
        signal_tree(agent.pid, signal.SIGCONT)

    receiver.wait_for(2, timeout=30)
    wait_for(
        lambda: Execution.objects.filter(job_name="nightly", status="success").exists(),
        timeout=30,
        what="the run to succeed",
    )
    # A few more checks of the scheduler (one a second) send nothing more.
    checks = time.monotonic()
    wait_for(lambda: time.monotonic() - checks > 3, timeout=10, what="three more checks")
    assert events(receiver) == ["late", "recovered"]
    [alert] = Alert.objects.all()
    assert (alert.kind, alert.state) == ("late", "resolved")
    late, recovered = (json.loads(r.body) for r in receiver.requests)
    assert late["job"]["name"] == recovered["job"]["name"] == "nightly"
    assert recovered["alert"]["detail"]["resolution"] == "the run started (or ended)"
    receiver.stop()


def test_an_overdue_run_alerts_is_killed_after_kill_after_and_recovers(cluster, api):
    receiver = WebhookReceiver()
    cluster.agent("agent-a")
    cluster.scheduler()
    response = api.post(
        "/v1/jobs",
        {
            "name": "stuck",
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": {"command": "sleep 60", "shell": "true"},
            "sla": {"max_duration": "1s", "kill_after": "3s"},
            "notify": {"webhooks": [{"url": receiver.url + "/alerts"}]},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert api.post("/v1/jobs/stuck/run").status_code == 202
    started = time.monotonic()
    receiver.wait_for(2, timeout=45)
    print(f"overdue and recovered {time.monotonic() - started:.1f}s after the run")
    assert events(receiver) == ["overdue", "recovered"]
    execution = Execution.objects.get(job_name="stuck")
    assert execution.status == "killed", (execution.status, execution.reason)
    # Through the kill service, once, as the system (the agent writes its own reason).
    [kill] = AuditEntry.objects.filter(action="kill", target="stuck")
    assert kill.actor == "system" and kill.detail["execution"] == execution.pk
    assert time.monotonic() - started < 45  # killed, not left to sleep its 60 s
    receiver.stop()
