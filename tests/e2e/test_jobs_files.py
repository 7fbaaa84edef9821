"""Jobs kept in files, as a CI pipeline uses them: `manage.py jobs plan` and `apply` as real
processes against the embedded default's database, their exit codes, `--prune --scope`, and
the applied job firing in `manage.py serve` (docs/declarative.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import free_port
from tests.harness import ROOT, wait_for

pytestmark = pytest.mark.e2e

PLAN_NONE, PLAN_PENDING, FAILED = 0, 2, 1


def job_yaml(name: str, command: str, schedule: str = "@every 1s") -> str:
    return (
        f"name: {name}\n"
        f'schedule: "{schedule}"\n'
        "executor: shell\n"
        "executor_config:\n"
        "  shell: true\n"
        f"  command: {command!r}\n"
        "metadata:\n"
        "  repo: ops\n"
    )


def test_plan_apply_prune_from_a_folder_and_the_applied_job_runs(tmp_path: Path) -> None:
    data, folder, effects = tmp_path / "data", tmp_path / "jobs", tmp_path / "effects"
    folder.mkdir()
    effects.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DKRON_")}
    env.update(DJANGO_SETTINGS_MODULE="dkronweb.settings", DKRON_DATA_DIR=str(data))

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert manage("migrate", "--noinput").returncode == 0
    (folder / "ticker.yaml").write_text(job_yaml("ticker", f"echo tick >> {effects}/ticker"))
    (folder / "nightly.json").write_text(
        '{"name": "nightly", "schedule": "0 0 3 * * *", "executor": "shell",'
        ' "executor_config": {"command": "true"}, "metadata": {"repo": "ops"}}'
    )
    scope = ("--scope", "repo=ops")

    planned = manage("jobs", "plan", str(folder), *scope)
    assert planned.returncode == PLAN_PENDING, planned.stdout + planned.stderr
    assert "+ create nightly" in planned.stdout and "+ create ticker" in planned.stdout
    applied = manage("jobs", "apply", str(folder), *scope)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    again = manage("jobs", "plan", str(folder), *scope)
    assert again.returncode == PLAN_NONE, again.stdout + again.stderr

    (folder / "nightly.json").unlink()  # gone from the files: pruned, within the scope only
    pruned = manage("jobs", "apply", str(folder), "--prune", *scope)
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert "- delete nightly" in pruned.stdout
    broken = folder / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    failed = manage("jobs", "plan", str(folder), *scope)
    assert failed.returncode == FAILED
    assert "broken.yaml" in failed.stdout + failed.stderr
    broken.unlink()

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ticks = effects / "ticker"
        wait_for(
            lambda: ticks.exists() and ticks.read_text().count("tick") >= 2,
            timeout=60,
            what="two runs of the applied job",
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert not (effects / "nightly").exists()
