"""`manage.py jobs plan|apply`: terraform-like output and exit codes CI can branch on
(plan: 0 no changes, 2 pending, 1 error; apply: 0 applied, 1 error)."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs.models import Job
from tests import factories

pytestmark = pytest.mark.django_db

FOLDER = Path(__file__).parent / "fixtures" / "declarative" / "team-a"


def run(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("jobs", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def test_plan_exits_2_with_changes_pending_and_changes_nothing():
    code, out = run("plan", str(FOLDER), "--scope", "team=a")
    assert code == 2
    assert "+ create nightly-backup" in out.splitlines()
    assert out.splitlines()[-1] == "Plan: 4 to create, 0 to update, 0 to delete, 0 unchanged."
    assert not Job.objects.exists()


def test_apply_exits_0_and_a_plan_after_it_exits_0_with_no_changes():
    code, out = run("apply", str(FOLDER), "--scope", "team=a", "--prune")
    assert code == 0, out
    assert out.splitlines()[-1] == "Applied: 4 create, 0 update, 0 delete, 0 unchanged."
    assert Job.objects.count() == 4
    code, out = run("plan", str(FOLDER), "--scope", "team=a", "--prune")
    assert (code, out.splitlines()[-1]) == (0, "No changes: 4 unchanged.")


def test_an_update_and_a_prune_are_printed_field_by_field(tmp_path):
    factories.job("job-b", schedule="@every 1m", metadata={"team": "a"})
    factories.job("job-c", metadata={"team": "a"})
    (tmp_path / "b.yaml").write_text(
        "name: job-b\nschedule: '@every 5m'\nexecutor: shell\n"
        "executor_config: {command: 'true'}\nmetadata: {team: a}\n"
    )
    code, out = run("plan", str(tmp_path), "--scope", "team=a", "--prune")
    assert code == 2
    assert out.splitlines() == [
        '~ update job-b: schedule "@every 1m" -> "@every 5m"',
        "- delete job-c",
        "Plan: 0 to create, 1 to update, 1 to delete, 0 unchanged.",
    ]


def test_an_error_exits_1_and_applies_nothing(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"name": "job-a", "schedule": "@every 1m"}))
    (tmp_path / "b.json").write_text(json.dumps([{"name": "Bad Name"}]))
    for action in ("plan", "apply"):
        code, out = run(action, str(tmp_path))
        assert code == 1
        assert "! error" in out and "Bad Name" in out
    assert not Job.objects.exists()


def test_prune_without_a_scope_is_refused():
    with pytest.raises(CommandError, match="prune needs a scope"):
        call_command("jobs", "plan", str(FOLDER), "--prune", stdout=StringIO())


def test_json_output_is_the_plan():
    code, out = run("plan", str(FOLDER), "--json")
    assert code == 2
    plan = json.loads(out)
    assert sorted(i["name"] for i in plan["create"]) == [
        "nightly-backup",
        "report-upload",
        "tmp-cleanup",
        "weekly-report",
    ]
    assert "s3cr3t" not in out
