"""End to end through /v1 with real agents (Celery workers) and a real scheduler."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from jobs.models import Execution, Job
from tests.e2e.helpers import create, executions, finished
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def test_run_now_toggle_delete_and_execution_history(cluster, api):
    cluster.agent("agent-a")
    create(api, "greet", "echo hello from $DKRON_JOB_NAME attempt $DKRON_ATTEMPT")
    response = api.post("/v1/jobs/greet/run")
    assert response.status_code == 202
    [execution] = wait_for(finished("greet"), what="the manual run")
    assert execution.status == "success"
    assert execution.output == "hello from greet attempt 1\n"

    listed = api.get("/v1/jobs/greet/executions").json()
    assert [e["id"] for e in listed] == [str(execution.pk)]
    assert listed[0]["output"] == "hello from greet attempt 1\n"
    assert api.get("/v1/jobs/greet").json()["status"] == "success"

    assert api.post("/v1/jobs/greet/toggle").json()["disabled"] is True
    assert api.post("/v1/jobs/greet").status_code == 202  # a disabled job still runs by hand
    wait_for(finished("greet", 2), what="the second run")

    cleared = api.delete("/v1/jobs/greet/executions").json()
    assert cleared["success_count"] == 0
    assert api.get("/v1/jobs/greet/executions").json() == []

    assert api.delete("/v1/jobs/greet").status_code == 200
    assert api.get("/v1/jobs/greet").status_code == 404


def test_running_output_is_visible_through_busy_while_the_job_runs(cluster, api):
    cluster.agent("agent-a")
    create(api, "slow-print", "echo first line; sleep 30; echo never")
    api.post("/v1/jobs/slow-print/run")

    def busy_output():
        busy = api.get("/v1/busy").json()
        return busy if busy and busy[0].get("output") == "first line\n" else None

    busy = wait_for(busy_output, timeout=20, what="live output in /v1/busy")
    assert busy[0]["finished_at"] == "0001-01-01T00:00:00Z"
    api.post(f"/v1/jobs/slow-print/executions/{busy[0]['id']}/kill")
    wait_for(finished("slow-print"), what="the kill")


def test_kill_through_the_api_stops_a_running_shell_job_on_a_prefork_agent(
    cluster, api, tmp_path: Path
):
    cluster.agent("agent-p", pool="prefork", concurrency=2)
    pidfile = tmp_path / "pid"
    create(api, "sleeper", f"echo $$ > {pidfile}; sleep 300")
    api.post("/v1/jobs/sleeper/run")
    wait_for(pidfile.exists, what="the job to start")
    wait_for(lambda: pidfile.read_text().strip(), what="the pid")
    pid = int(pidfile.read_text())
    [running] = executions("sleeper")
    started = time.monotonic()
    response = api.post(f"/v1/jobs/sleeper/executions/{running.pk}/kill")
    assert response.status_code == 202
    [execution] = wait_for(finished("sleeper"), timeout=15, what="the kill to land")
    print(f"kill took {time.monotonic() - started:.2f}s")
    assert execution.status == "killed"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_timeout_kills_the_job_with_its_children_and_grandchildren(cluster, api, tmp_path):
    cluster.agent("agent-a")
    script = (
        f"sh -c 'echo $$ > {tmp_path}/child; "
        f'sh -c "echo \\$\\$ > {tmp_path}/grandchild; sleep 300" & sleep 300\' & '
        f"echo $$ > {tmp_path}/parent; sleep 300"
    )
    create(api, "overrun", script, config={"timeout": "2s"})
    api.post("/v1/jobs/overrun/run")
    [execution] = wait_for(finished("overrun"), timeout=20, what="the timeout")
    assert execution.status == "timeout"
    assert "timeout" in execution.output
    for name in ("parent", "child", "grandchild"):
        pid = int((tmp_path / name).read_text())
        wait_for(
            lambda pid=pid: (
                not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            ),
            timeout=5,
            what=f"{name} ({pid}) to be gone",
        )


def test_retries_make_attempts_in_one_group_and_the_job_ends_success(cluster, api, tmp_path):
    cluster.agent("agent-a")
    counter = tmp_path / "count"
    command = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        "echo attempt $DKRON_ATTEMPT; [ $n -ge 3 ]"
    )
    create(api, "flaky", command, retries=3, retry_backoff=0.2)
    api.post("/v1/jobs/flaky/run")
    done = wait_for(finished("flaky", 3), timeout=30, what="three attempts")
    assert [e.attempt for e in done] == [1, 2, 3]
    assert [e.status for e in done] == ["failed", "failed", "success"]
    assert len({e.run_id for e in done}) == 1
    assert done[2].output == "attempt 3\n"
    time.sleep(1)
    assert len(executions("flaky")) == 3  # no fourth attempt after the success
    job = Job.objects.get(name="flaky")
    assert job.status == "success"
    assert (job.success_count, job.error_count) == (1, 2)


def test_forbid_skips_scheduled_runs_while_one_is_still_going(cluster, api):
    cluster.agent("agent-a")
    cluster.scheduler()
    create(api, "exclusive", "sleep 3", schedule="* * * * * *", concurrency="forbid")
    wait_for(
        lambda: Execution.objects.filter(job_name="exclusive", status="skipped").count() >= 2,
        timeout=20,
        what="skipped fires",
    )
    running = Execution.objects.filter(job_name="exclusive", status__in=["queued", "running"])
    assert running.count() <= 1
    skipped = Execution.objects.filter(job_name="exclusive", status="skipped").first()
    assert skipped is not None and "forbid" in skipped.output
    assert api.post("/v1/jobs/exclusive/run").status_code == 409


def test_replace_kills_the_running_execution_and_starts_the_new_one(cluster, api):
    cluster.agent("agent-a")
    create(api, "newest", "sleep 300", concurrency="replace")
    api.post("/v1/jobs/newest/run")
    wait_for(
        lambda: Execution.objects.filter(job_name="newest", status="running").exists(),
        what="the first run to start",
    )
    api.post("/v1/jobs/newest/run")
    wait_for(
        lambda: (
            Execution.objects.filter(job_name="newest", status="killed").count() == 1
            and Execution.objects.filter(job_name="newest", status="running").count() == 1
        ),
        timeout=20,
        what="the first run to be replaced",
    )


def test_tags_choose_agents_and_untagged_jobs_run_on_every_agent(cluster, api):
    cluster.agent("agent-web", "role=web")
    cluster.agent("agent-db", "role=db", "zone=eu")
    create(api, "web-only", "echo $DKRON_JOB_NAME", tags={"role": "web"})
    create(api, "just-one", "echo one", tags={"server": "true:1"})
    create(api, "everywhere", "echo all")
    create(api, "nowhere", "echo none", tags={"role": "gpu"})
    for name in ("web-only", "just-one", "everywhere", "nowhere"):
        assert api.post(f"/v1/jobs/{name}/run").status_code == 202
    assert [e.node_name for e in wait_for(finished("web-only"))] == ["agent-web"]
    assert len(wait_for(finished("just-one"))) == 1
    nodes = sorted(e.node_name for e in wait_for(finished("everywhere", 2)))
    assert nodes == ["agent-db", "agent-web"]
    [failed] = wait_for(finished("nowhere"))
    assert failed.status == "failed" and "no target nodes" in failed.output
    time.sleep(0.5)
    assert len(executions("just-one")) == 1


def test_a_dependent_job_fires_once_after_its_parent_succeeds_on_two_nodes(cluster, api):
    cluster.agent("agent-1")
    cluster.agent("agent-2")
    create(api, "parent", "echo parent")
    body = {
        "name": "child",
        "parent_job": "parent",
        "executor": "shell",
        "executor_config": {"command": "echo child"},
        "tags": {"server": "true:1"},
    }
    assert api.post("/v1/jobs", body, format="json").status_code == 201
    assert api.get("/v1/jobs/parent").json()["dependent_jobs"] == ["child"]
    api.post("/v1/jobs/parent/run")
    wait_for(finished("parent", 2), what="the parent on both agents")
    wait_for(finished("child"), what="the child run")
    time.sleep(1)
    assert len(executions("child")) == 1


def test_an_agent_killed_mid_run_is_failed_in_members_and_its_run_is_closed(cluster, api):
    victim = cluster.agent("agent-victim")
    create(api, "orphan", "sleep 300", retries=0)
    api.post("/v1/jobs/orphan/run")
    wait_for(
        lambda: Execution.objects.filter(job_name="orphan", status="running").exists(),
        what="the run to start",
    )
    cluster.scheduler()
    started = time.monotonic()
    victim.kill_group()
    [execution] = wait_for(finished("orphan"), timeout=30, what="the sweep to close the run")
    print(f"closed {time.monotonic() - started:.1f}s after the kill")
    assert execution.status == "failed"
    # Closed by the agent's reaper (agent/reaper.py) at once, or by the sweep without it.
    assert "died while running this execution" in execution.output

    # The agent's own heartbeat may be a moment younger than its run's: it turns failed once
    # that one is older than AGENT_DEAD_AFTER too.
    def victim_state() -> str:
        members = {m["Name"]: m for m in api.get("/v1/members").json()}
        return str(members["agent-victim"]["statusText"])

    wait_for(lambda: victim_state() == "failed", timeout=10, what="the victim shown failed")


def test_two_schedulers_at_once_never_fire_a_time_twice(cluster, api, tmp_path):
    cluster.agent("agent-a", concurrency=8)
    out = tmp_path / "fires"
    out.mkdir()
    for i in range(10):
        create(
            api,
            f"dup-{i}",
            f"echo $DKRON_SCHEDULED_AT >> {out}/$DKRON_JOB_NAME",
            schedule="* * * * * *",
        )
    # Both schedulers fire (no lease): only the unique fire key stands between them.
    cluster.scheduler("scheduler-1", DKRON_SCHEDULER_LEASE="false")
    cluster.scheduler("scheduler-2", DKRON_SCHEDULER_LEASE="false")
    time.sleep(8)
    for proc in list(cluster.procs):
        if proc.name.startswith("scheduler"):
            proc.stop()
    wait_for(
        lambda: not Execution.objects.filter(status__in=["queued", "running"]).exists(),
        timeout=20,
        what="the queued runs to drain",
    )
    total = 0
    for path in out.iterdir():
        lines = path.read_text().split()
        assert len(lines) == len(set(lines)), f"{path.name} ran a fire time twice"
        total += len(lines)
    print(f"{total} fires, no duplicates")
    assert total >= 10 * 5
    logs = cluster.log_dir
    assert any("fired" in p.read_text() for p in logs.glob("scheduler-*.log"))
    assert os.path.exists(out)
