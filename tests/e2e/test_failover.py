"""Scheduler failover: kill -9 the active scheduler; a standby takes over and nothing doubles."""

from __future__ import annotations

import signal
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import Execution, Lease
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def test_a_standby_takes_over_within_seconds_and_no_fire_time_runs_twice(cluster, api, tmp_path):
    cluster.agent("agent-a", concurrency=8)
    out = tmp_path / "fires"
    out.mkdir()
    for i in range(5):
        body = {
            "name": f"fo-{i}",
            "schedule": "* * * * * *",
            "executor": "shell",
            "executor_config": {
                "command": f"echo $DKRON_SCHEDULED_AT >> {out}/fo-{i}",
                "shell": "true",
            },
        }
        assert api.post("/v1/jobs", body, format="json").status_code == 201
    first = cluster.scheduler("scheduler-1")
    wait_for(
        lambda: Lease.objects.filter(holder__contains=f":{first.pid}:").exists(),
        what="scheduler-1 to lead",
    )
    second = cluster.scheduler("scheduler-2")
    wait_for(lambda: "beat: Starting" in second.log(), what="scheduler-2 to start")
    time.sleep(3)
    leader = api.get("/v1/leader").json()
    assert leader["Name"] == "scheduler-1"  # a member, as in Dkron: not the lease holder id
    members = {m["Name"]: m for m in api.get("/v1/members").json()}
    assert {"agent-a", "scheduler-1", "scheduler-2"} <= members.keys()
    assert members["scheduler-2"]["Tags"]["dkronweb_role"] == "scheduler"
    assert "dkronweb_role" not in members["agent-a"]["Tags"]

    killed_at = time.monotonic()
    first.signal(signal.SIGKILL)
    wait_for(
        lambda: Lease.objects.filter(holder__contains=f":{second.pid}:").exists(),
        timeout=15,
        what="scheduler-2 to take over",
    )
    takeover = time.monotonic() - killed_at
    print(f"standby took over {takeover:.2f}s after SIGKILL (lease TTL 3 s in tests)")
    assert takeover < 5.0
    leader = api.get("/v1/leader").json()
    assert leader["Name"] == "scheduler-2"  # the other member now
    assert leader["Name"] in [m["Name"] for m in api.get("/v1/members").json()]
    assert leader["statusText"] == "alive"
    assert leader["leadership_changes"] >= 2
    scraped = {
        m.name: m for m in text_string_to_metric_families(api.get("/metrics").content.decode())
    }
    changes = scraped["dkronweb_scheduler_leadership_changes"].samples[0].value
    assert changes == leader["leadership_changes"]
    [active] = scraped["dkronweb_scheduler_active"].samples
    assert active.value == 1 and f":{second.pid}:" in active.labels["holder"]
    time.sleep(3)
    second.stop()
    wait_for(
        lambda: not Execution.objects.filter(status__in=["queued", "running"]).exists(),
        timeout=20,
        what="runs to drain",
    )

    for path in sorted(out.iterdir()):
        stamps = path.read_text().split()
        assert len(stamps) == len(set(stamps)), f"{path.name} ran a fire time twice"
        seconds = sorted(int(s[17:19]) + 60 * int(s[14:16]) for s in stamps)
        gaps = [b - a for a, b in zip(seconds, seconds[1:], strict=False) if b - a > 1]
        # Fires due during the gap were late by less than the 60 s grace, so none is lost.
        assert gaps == [], f"{path.name} lost fire times: {gaps}"
