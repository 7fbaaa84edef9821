"""The heartbeat's metrics snapshot reads the children's value files itself, with the very sums
prometheus_client's own multi-process merge gives (which cost seconds per snapshot once an
agent had seen thousands of jobs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, sys
    from datetime import UTC, datetime, timedelta
    from prometheus_client.multiprocess import MultiProcessCollector
    from jobs import telemetry

    path = telemetry.setup("snap", base=sys.argv[1])

    def child(k):
        now = datetime.now(UTC)
        for i in range(k, 60, 3):
            telemetry.observe_execution(
                job=f"j{i % 7}", status="success" if i % 3 else "failed",
                started_at=now - timedelta(seconds=i % 11 * 0.7), finished_at=now,
                scheduled_at=now - timedelta(seconds=i % 5 * 0.02), scheduled=i % 2 == 0,
            )
        telemetry.count_notification_failure("email" if k else "webhook")

    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=child, args=(k,)) for k in range(3)]
    for c in children:
        c.start()
    for c in children:
        c.join()
    merged = MultiProcessCollector(None, path=str(path)).collect()
    reference = {"v": 1, "f": telemetry._metrics_families(merged)}
    print(json.dumps({"reference": reference, "snapshots": [telemetry.snapshot() for _ in (1, 2)]}))
    """
)


def test_the_snapshot_equals_prometheus_clients_merge_of_the_childrens_files(tmp_path: Path):
    script = tmp_path / "snap.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    reference = result["reference"]
    assert set(reference["f"]) == {
        "dkronweb_executions",
        "dkronweb_execution_duration_seconds",
        "dkronweb_fire_skew_seconds",
        "dkronweb_notification_failures",
    }
    assert sum(row[-1] for row in reference["f"]["dkronweb_executions"]) == 60
    for snapshot in result["snapshots"]:  # the second one from the parsed keys
        assert snapshot == reference
