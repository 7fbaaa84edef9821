"""Celery's own tools on a real agent: `celery events --dump`, `celery inspect active`, Flower.

Operators run these beside dkronweb (docs/celery-tools.md). Every test here starts the real
CLI (or a real Flower process) as a subprocess against the agent's broker, with no flags that
turn task events on: agents send them by default (DKRON_TASK_EVENTS).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from jobs.dispatch import task_labels
from jobs.models import Execution
from tests.e2e.helpers import create, finished
from tests.harness import ROOT, Cluster, Proc, wait_for

pytestmark = pytest.mark.e2e

CELERY = [sys.executable, "-m", "celery", "-A", "dkronweb"]


def celery_cli(cluster: Cluster, *args: str, timeout: float = 60.0) -> str:
    done = subprocess.run(
        [*CELERY, *args],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    return done.stdout + done.stderr


def shadow_of(execution: Execution) -> str:
    """The name the tools must show: `run <job> #<attempt> @ <time>` (+ the trigger)."""
    execution = Execution.objects.select_related("run").get(pk=execution.pk)
    shadow = str(task_labels(execution)["shadow"])
    assert shadow.startswith(f"run {execution.job_name} #{execution.attempt} @ 20"), shadow
    return shadow


def test_task_events_are_on_by_default_and_a_setting_turns_them_off(cluster, api):
    """`celery events --dump` sees a run's task events with no -E on the agent."""
    dump = Proc("events-dump", [*CELERY, "events", "--dump"], cluster.env(), cluster.log_dir)
    cluster.procs.append(dump)
    cluster.agent("agent-ev")
    wait_for(
        lambda: "worker-heartbeat" in dump.log() or "heartbeat" in dump.log(),
        timeout=30,
        what="the dumper to hear the agent",
    )
    create(api, "ev-ok", "echo fine")
    create(api, "ev-bad", "echo broken; exit 3")
    api.post("/v1/jobs/ev-ok/run")
    api.post("/v1/jobs/ev-bad/run")
    [ok] = wait_for(finished("ev-ok"), what="ev-ok")
    [bad] = wait_for(finished("ev-bad"), what="ev-bad")
    assert (ok.status, bad.status) == ("success", "failed")

    def seen() -> bool:
        log = dump.log()
        return "task succeeded" in log and "task failed" in log

    wait_for(seen, timeout=20, what="task events in `celery events --dump`")
    log = dump.log()
    # The readable name and arguments, not run_execution(execution_id).
    assert f"task received: {shadow_of(ok)}" in log, log[-3000:]
    assert f"task received: {shadow_of(bad)}" in log
    assert "'job': 'ev-bad'" in log and "'attempt': 1" in log
    # Publishers' task-sent events are opt-in (DKRON_TASK_SENT_EVENTS): they cost fire rate.
    assert "task sent" not in log

    # The settings: DKRON_TASK_EVENTS turns agents' events off, DKRON_TASK_SENT_EVENTS turns
    # the publishers' on.
    code = (
        "from django.conf import settings as s; from dkronweb.celery import app; "
        "print(s.CELERY_WORKER_SEND_TASK_EVENTS, app.conf.worker_send_task_events, "
        "app.conf.task_send_sent_event)"
    )
    cases = (
        ({"DKRON_TASK_EVENTS": "false"}, "False False False"),
        ({}, "True True False"),
        ({"DKRON_TASK_SENT_EVENTS": "true"}, "True True True"),
    )
    for values, expected in cases:
        env = cluster.env(**values)
        for name in ("DKRON_TASK_EVENTS", "DKRON_TASK_SENT_EVENTS"):
            if name not in values:
                env.pop(name, None)
        out = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.stdout.strip().splitlines()[-1] == expected, out.stderr


def test_inspect_active_shows_the_job_scheduled_time_and_attempt(cluster, api, tmp_path):
    cluster.agent("agent-in")
    started = tmp_path / "started"
    create(api, "inspected", f"touch {started}; sleep 20")
    api.post("/v1/jobs/inspected/run")
    wait_for(started.exists, what="the job to start")
    [execution] = Execution.objects.filter(job_name="inspected")

    out = celery_cli(cluster, "inspect", "active", "--json", "-t", "5")
    line = next(x for x in out.splitlines() if x.startswith("{"))
    active = json.loads(line)
    tasks = [t for ts in active.values() for t in ts]
    assert len(tasks) == 1, out
    [task] = tasks
    assert task["type"] == "dkronweb.run_execution"  # the real task type, unchanged
    assert task["name"] == shadow_of(execution)
    assert task["name"].endswith(" (manual)")
    # `inspect active` lists the message's own arguments (unchanged for older agents); the
    # name carries the job, the time and the attempt. Events carry the readable kwargs.
    assert task["kwargs"] == {"execution_id": execution.pk, "v": 1}
    api.post(f"/v1/jobs/inspected/executions/{execution.pk}/kill")
    wait_for(finished("inspected"), what="the kill")


def _flower(cluster: Cluster) -> tuple[Proc, str]:
    from tests.faults.services import free_port

    port = free_port()
    # --enable_events=False: Flower must not be what turns task events on.
    args = [*CELERY, "flower", f"--port={port}", "--address=127.0.0.1", "--enable_events=False"]
    proc = Proc("flower", args, cluster.env(FLOWER_UNAUTHENTICATED_API="true"), cluster.log_dir)
    cluster.procs.append(proc)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not proc.alive():
            raise AssertionError(f"flower exited:\n{proc.log()[-3000:]}")
        try:
            return httpx.get(f"{base}/healthcheck", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=40, interval=0.5, what="flower to answer")
    return proc, base


def test_flower_lists_the_agent_and_shows_readable_tasks_with_failure_state(cluster, api):
    _, base = _flower(cluster)
    cluster.agent("agent-fl")
    time.sleep(1)  # Flower's event receiver is connected before the tasks start
    create(api, "fl-ok", "echo fine")
    create(api, "fl-bad", "exit 4")
    create(api, "fl-retry", "exit 5", retries=1, retry_backoff=0.2)
    for name in ("fl-ok", "fl-bad", "fl-retry"):
        api.post(f"/v1/jobs/{name}/run")
    [ok] = wait_for(finished("fl-ok"), what="fl-ok")
    [bad] = wait_for(finished("fl-bad"), what="fl-bad")
    first, second = wait_for(finished("fl-retry", 2), timeout=30, what="fl-retry twice")

    def tasks() -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{base}/api/tasks", timeout=5).json()
        return data

    def by_name() -> dict[str, dict[str, Any]] | None:
        found = {t.get("name"): t for t in tasks().values()}
        want = [shadow_of(e) for e in (ok, bad, second)]
        if all(found.get(n, {}).get("state") in ("SUCCESS", "FAILURE") for n in want):
            return found
        return None

    try:
        found = wait_for(by_name, timeout=30, interval=0.5, what="flower to see the tasks")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; flower has {tasks()}") from None
    assert found[shadow_of(ok)]["state"] == "SUCCESS"
    assert found[shadow_of(bad)]["state"] == "FAILURE"
    assert "ended failed" in found[shadow_of(bad)]["exception"]
    assert "'job': 'fl-bad'" in found[shadow_of(bad)]["kwargs"]
    # A Celery retry keeps the task id: Flower shows the task under its last attempt's name,
    # retried once, and FAILURE since that attempt failed too.
    assert first.attempt == 1 and second.attempt == 2
    retried = found[shadow_of(second)]
    assert retried["state"] == "FAILURE" and retried["retries"] == 1, retried
    assert "'attempt': 2" in retried["kwargs"]

    workers = httpx.get(f"{base}/api/workers", params={"refresh": "1"}, timeout=15).json()
    assert any(name.startswith("agent-fl@") for name in workers), workers
