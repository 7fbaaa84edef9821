"""End to end: a real scheduler and agent backfill the fire times an outage lost, exactly once
each (counted by what the shell command writes), twice in a row; a cancel stops the rest."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.models import Backfill, Job, Run
from tests.e2e.helpers import create
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def appended(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def ranged(path: Path, times: list[str]) -> Counter[str]:
    """The lines for the backfilled range (an on-time fire at the next hour may add its own)."""
    return Counter({t: n for t, n in appended(path).items() if t in set(times)})


def test_a_backfill_runs_exactly_the_missing_times_once_twice_in_a_row(cluster, api, tmp_path):
    out = tmp_path / "fires.txt"
    # Each run appends the fire time it was started for (the shell executor's env).
    create(api, "hourly", f'echo "$DKRON_SCHEDULED_AT" >> {out}', schedule="0 0 * * * *")
    job = Job.objects.get(name="hourly")
    start = (datetime.now(UTC) - timedelta(hours=6)).isoformat()
    body = {"from": start, "max_concurrency": 2}
    plan = api.post("/v1/jobs/hourly/backfill", {**body, "dry_run": True}, format="json").json()
    times = [t["scheduled_at"] for t in plan["times"]]
    body["to"] = plan["to"]  # the same range however long the test takes (an hour may turn)
    assert len(times) >= 5
    # The outage: the scheduler ran the first and the third time, then nothing.
    for ran in (times[0], times[2]):
        Run.objects.create(
            job=job, scheduled_at=ran, trigger="schedule", finished=True, status="success"
        )
    missing = [t for i, t in enumerate(times) if i not in (0, 2)]
    cluster.agent("agent-a")
    cluster.scheduler()

    first = api.post("/v1/jobs/hourly/backfill", body, format="json")
    assert first.status_code == 201, first.content
    location = first["Location"]
    assert first.json()["total"] == len(missing)

    def done() -> dict | None:
        state = api.get(location).json()
        return state if state["state"] == "done" else None

    state = wait_for(done, timeout=60, what="the backfill to finish", procs=cluster.procs)
    assert (state["created"], state["finished"]) == (len(missing), len(missing))
    wait_for(lambda: sum(ranged(out, times).values()) >= len(missing), timeout=20, what="output")
    assert ranged(out, times) == Counter(missing)  # each missing time once, the others never

    again = api.post("/v1/jobs/hourly/backfill", body, format="json").json()
    assert (again["state"], again["total"]) == ("done", 0)
    assert Run.objects.filter(job=job, trigger="backfill").count() == len(missing)
    assert ranged(out, times) == Counter(missing)


def test_cancel_stops_a_backfill_s_further_runs(cluster, api, tmp_path):
    out = tmp_path / "slow.txt"
    gate = tmp_path / "gate"
    # The first run waits for the gate, so the cancel comes while it is running.
    command = f'echo "$DKRON_SCHEDULED_AT" >> {out}; while [ ! -e {gate} ]; do sleep 0.05; done'
    # Disabled: the scheduler fires neither on time, and a backfill still runs them.
    create(api, "minutely", command, schedule="0 * * * * *", disabled=True)
    create(api, "witness", "true", schedule="0 * * * * *", disabled=True)
    cluster.agent("agent-a")
    cluster.scheduler()
    start = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    started = api.post("/v1/jobs/minutely/backfill", {"from": start}, format="json").json()
    location = f"/v1/jobs/minutely/backfills/{started['id']}"
    wait_for(lambda: out.exists(), timeout=30, what="the first run", procs=cluster.procs)

    cancelled = api.post(f"{location}/cancel").json()
    assert cancelled["state"] == "cancelled" and cancelled["created"] == 1
    gate.touch()
    # A backfill created after the cancel and done proves the leader has ticked since.
    witness = api.post(
        "/v1/jobs/witness/backfill", {"from": start, "max_concurrency": 30}, format="json"
    ).json()
    wait_for(
        lambda: Backfill.objects.get(pk=witness["id"]).state == "done",
        timeout=60,
        what="the witness backfill",
        procs=cluster.procs,
    )
    assert Run.objects.filter(job__name="minutely", trigger="backfill").count() == 1
    assert sum(appended(out).values()) == 1
    assert api.get(location).json()["state"] == "cancelled"
