"""Templates and their context: plain values, the run's group report, the UI link, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.template import TemplateSyntaxError

from jobs.notifications import render

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2026, 1, 2, 3, 4, 9, tzinfo=UTC)


def job(**fields):
    base = dict(
        name="backup-db",
        displayname="Backup",
        owner="ops",
        owner_email="ops@example.com",
        schedule="@daily",
        timezone="",
        executor="shell",
        executor_config={"command": "pg_dump", "env": "PGPASSWORD=hunter2"},
        tags={},
        metadata={"team": "data"},
        status="failed",
        success_count=3,
        error_count=1,
    )
    base.update(fields)
    return SimpleNamespace(**base)


def execution(pk, node, attempt, status, output="", **fields):
    base = dict(
        pk=pk,
        node_name=node,
        attempt=attempt,
        status=status,
        final=True,
        started_at=T0,
        finished_at=T1,
        reason="",
        output=output,
        output_truncated=False,
    )
    base.update(fields)
    return SimpleNamespace(**base)


def context(executions=None, public_url="http://dkron.test:8080/", **job_fields):
    run = SimpleNamespace(pk=42, status="partially_failed", trigger="schedule", scheduled_at=T0)
    executions = executions or [
        execution(2, "node-b", 1, "failed", "boom\n", reason="exit status 3"),
        execution(1, "node-a", 1, "success", "fine\n"),
    ]
    return render.build_context(
        job=job(**job_fields), run=run, executions=executions, public_url=public_url
    )


def test_the_context_holds_the_job_the_run_its_executions_and_the_ui_link():
    ctx = context()

    assert ctx["job"]["name"] == "backup-db"
    assert ctx["run"] == {
        "id": 42,
        "status": "partially_failed",
        "ok": False,
        "trigger": "schedule",
        "scheduled_at": T0.isoformat(),
        "started_at": T0.isoformat(),
        "finished_at": T1.isoformat(),
        "duration": 4.0,
        "nodes": 2,
    }
    assert [(e["node"], e["status"], e["output"]) for e in ctx["executions"]] == [
        ("node-a", "success", "fine\n"),
        ("node-b", "failed", "boom\n"),
    ]
    assert ctx["ui_url"] == "http://dkron.test:8080/ui/jobs/backup-db/"


def test_the_executor_config_never_reaches_a_template():
    ctx = context()

    assert "executor_config" not in ctx["job"]
    assert "hunter2" not in json.dumps(ctx, default=str)


def test_only_the_tail_of_a_long_output_is_kept():
    long = "x" * 5000 + "THE END"
    ctx = context([execution(1, "n", 1, "failed", long)])

    [report] = ctx["executions"]
    assert report["output"].endswith("THE END")
    assert len(report["output"]) == render.OUTPUT_TAIL
    assert report["output_truncated"] is True


def test_the_json_filter_writes_valid_json_and_nothing_is_html_escaped():
    source = '{"job": {{ job.name|json }}, "meta": {{ job.metadata|json }}, "x": "<b>{{ run.id }}"}'
    out = render.render(source, context(metadata={"quote": 'say "hi" & <go>'}))

    assert json.loads(out) == {
        "job": "backup-db",
        "meta": {"quote": 'say "hi" & <go>'},
        "x": "<b>42",
    }


def test_the_default_webhook_body_is_the_whole_payload_as_json():
    ctx = context()
    payload = json.loads(render.render(render.DEFAULT_WEBHOOK_BODY, ctx))

    assert payload["job"]["name"] == "backup-db"
    assert payload["run"]["status"] == "partially_failed"
    assert payload["ui_url"] == "http://dkron.test:8080/ui/jobs/backup-db/"
    assert len(payload["executions"]) == 2


def test_the_default_email_lists_each_node_with_its_output_and_the_link():
    ctx = context()
    subject = render.render(render.DEFAULT_EMAIL_SUBJECT, ctx)
    body = render.render(render.DEFAULT_EMAIL_BODY, ctx)

    assert subject == "[dkronweb] backup-db: partially_failed"
    assert "Job backup-db finished with status partially_failed (run 42, schedule" in body
    assert "- node-b, attempt 1: failed (exit status 3)\nboom\n" in body
    assert "- node-a, attempt 1: success\nfine\n" in body
    assert body.rstrip().endswith("http://dkron.test:8080/ui/jobs/backup-db/")


def test_a_template_syntax_error_is_raised_when_compiling():
    with pytest.raises(TemplateSyntaxError):
        render.compile_template("{% if %}")


@pytest.mark.parametrize(
    "source", ['{% include "/etc/passwd" %}', '{% extends "/etc/passwd" %}', "{% load static %}"]
)
def test_a_template_cannot_include_files_from_the_server(source):
    with pytest.raises(TemplateSyntaxError):
        render.compile_template(source)
