"""Jobs as files (jobs.services.declarative): plan shows what apply does, apply does it all or
nothing, prune deletes only within its scope, and secrets never show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from confidential import MASK
from jobs.models import AuditEntry, Calendar, Job
from jobs.secrets import decrypt_config
from jobs.services import declarative
from jobs.services.audit import Actor
from jobs.services.declarative import Document, InvalidApply, Scope, parse_scope
from tests import factories

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "declarative"
ACTOR = Actor(via=AuditEntry.Via.APPLY)
TEAM_A = Scope("team", "a")


def shell(name: str, **fields) -> dict:
    return {
        "name": name,
        "schedule": "@every 1m",
        "executor": "shell",
        "executor_config": {"command": "true"},
        **fields,
    }


def doc(*jobs: dict, source: str = "jobs.yaml") -> Document:
    return Document(source, list(jobs))


def plan(*docs: Document, **kw) -> declarative.Plan:
    return declarative.plan(docs, actor=kw.pop("actor", ACTOR), **kw)


def apply(*docs: Document, **kw) -> declarative.Plan:
    return declarative.apply(docs, actor=kw.pop("actor", ACTOR), **kw)


def test_it_plans_a_create_and_changes_nothing():
    result = plan(doc(shell("job-a")))
    assert [(i.name, i.action) for i in result.items] == [("job-a", "create")]
    assert result.lines() == [
        "+ create job-a",
        "Plan: 1 to create, 0 to update, 0 to delete, 0 unchanged.",
    ]
    assert not Job.objects.exists()
    assert not AuditEntry.objects.exists()


def test_it_applies_a_create_and_a_second_plan_shows_no_changes():
    created = apply(doc(shell("job-a")))
    assert created.applied and [i.action for i in created.items] == ["create"]
    assert Job.objects.get(name="job-a").schedule == "@every 1m"

    again = plan(doc(shell("job-a")))
    assert again.items == [] and again.unchanged == 1 and not again.errors
    assert again.summary() == "No changes: 1 unchanged."


def test_a_job_exported_from_the_api_with_server_fields_shows_no_changes():
    from jobs.wire import job_to_dict

    factories.job("job-a", metadata={"team": "a"}, tags={"role": "x:1"})
    Job.objects.filter(name="job-a").update(success_count=7)
    exported = job_to_dict(Job.objects.get(name="job-a"))  # next, status, counts...
    assert plan(doc(exported)).items == []


def test_an_update_lists_each_changed_field_with_before_and_after():
    apply(doc(shell("job-b", metadata={"team": "a", "tier": "1"})))
    result = plan(
        doc(shell("job-b", schedule="@every 5m", retries=3, metadata={"team": "a", "tier": "2"}))
    )
    (item,) = result.items
    assert item.action == "update"
    assert [c.as_dict() for c in item.changes] == [
        {"path": "schedule", "before": "@every 1m", "after": "@every 5m"},
        {"path": "metadata.tier", "before": "1", "after": "2"},
        {"path": "retries", "before": 0, "after": 3},
    ]
    assert item.lines()[0] == "~ update job-b"
    assert '    schedule "@every 1m" -> "@every 5m"' in item.lines()
    single = plan(doc(shell("job-b", schedule="@every 5m", metadata={"team": "a", "tier": "1"})))
    assert single.items[0].lines() == ['~ update job-b: schedule "@every 1m" -> "@every 5m"']


def test_an_unchanged_job_is_not_written_nor_audited_on_apply():
    apply(doc(shell("job-a"), shell("job-b")))
    before = Job.objects.get(name="job-a").updated_at
    entries = AuditEntry.objects.count()
    result = apply(doc(shell("job-a"), shell("job-b", retries=1)))
    assert [i.name for i in result.items] == ["job-b"] and result.unchanged == 1
    assert Job.objects.get(name="job-a").updated_at == before
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "target", "via"))
    assert actions[entries:] == [("update", "job-b", "apply"), ("apply", "", "apply")]
    entries = AuditEntry.objects.count()
    assert apply(doc(shell("job-a"), shell("job-b", retries=1))).applied
    assert AuditEntry.objects.count() == entries  # nothing changed, nothing recorded


SECRET_ENV = "DB_PASSWORD=hunter2-db"


def test_a_secret_change_is_shown_without_its_values():
    apply(doc(shell("job-s", executor_config={"command": "env", "env": SECRET_ENV})))
    result = plan(
        doc(shell("job-s", executor_config={"command": "env", "env": "DB_PASSWORD=other-pass"}))
    )
    (change,) = result.items[0].changes
    assert change.as_dict() == {"path": "executor_config.env", "secret": True}
    text = "\n".join(result.lines()) + json.dumps(result.as_dict())
    assert "(secret changed)" in text
    assert "hunter2" not in text and "other-pass" not in text


def test_a_masked_secret_in_a_file_keeps_the_stored_one():
    apply(doc(shell("job-s", executor_config={"command": "env", "env": SECRET_ENV})))
    masked = {"command": "env", "env": f"DB_PASSWORD={MASK}"}
    assert plan(doc(shell("job-s", executor_config=masked))).items == []
    result = apply(doc(shell("job-s", executor_config=masked, retries=2)))
    assert [c.path for c in result.items[0].changes] == ["retries"]
    job = Job.objects.get(name="job-s")
    assert decrypt_config("shell", job.executor_config)["env"] == SECRET_ENV


def test_a_masked_secret_whose_destination_changed_must_be_resent():
    apply(doc(shell("job-s", executor_config={"command": "env", "env": SECRET_ENV})))
    masked = {"command": "env -0", "env": f"DB_PASSWORD={MASK}"}
    result = plan(doc(shell("job-s", executor_config=masked)))
    assert "resend env DB_PASSWORD" in result.errors[0].error


def test_a_secret_in_a_created_job_is_never_printed():
    result = plan(doc(shell("job-s", executor_config={"command": "env", "env": SECRET_ENV})))
    assert "hunter2" not in json.dumps(result.as_dict()) + "\n".join(result.lines())


def test_an_invalid_job_rolls_back_the_whole_apply():
    apply(doc(shell("job-a")))
    result = apply(
        doc(shell("job-a", retries=5), shell("job-new")),
        doc(shell("job-bad", schedule="every now and then"), source="bad.yaml"),
    )
    assert not result.applied
    (problem,) = result.errors
    assert (problem.source, problem.job) == ("bad.yaml", "job-bad")
    assert "schedule" in problem.error
    assert Job.objects.get(name="job-a").retries == 0
    assert not Job.objects.filter(name="job-new").exists()
    assert result.summary() == "Error: 1 problem(s); nothing was changed."


def test_a_duplicate_name_across_files_is_an_error_naming_both():
    result = plan(doc(shell("job-a"), source="one.yaml"), doc(shell("job-a"), source="two.json"))
    (problem,) = result.errors
    assert problem.error == "duplicate job name 'job-a': in one.yaml and two.json"


def test_prune_needs_a_scope():
    with pytest.raises(InvalidApply, match="prune needs a scope"):
        plan(doc(shell("job-a")), prune=True)


def test_a_scope_is_key_equals_value():
    assert parse_scope("team=a") == TEAM_A
    assert parse_scope(None) is None
    with pytest.raises(InvalidApply, match="key=value"):
        parse_scope("team")


def test_prune_deletes_only_jobs_carrying_the_scope_label_children_first():
    factories.job("parent-a", metadata={"team": "a"})
    factories.job("child-a", parent_job="parent-a", schedule="", metadata={"team": "a"})
    factories.job("kept-a", metadata={"team": "a"})
    factories.job("other-team", metadata={"team": "b"})
    factories.job("unlabelled")
    files = doc(shell("kept-a", schedule="@manually", metadata={"team": "a"}))
    result = apply(files, prune=True, scope=TEAM_A)
    assert [(i.name, i.action) for i in result.items] == [
        ("child-a", "delete"),
        ("parent-a", "delete"),
    ]
    assert set(Job.objects.values_list("name", flat=True)) == {"kept-a", "other-team", "unlabelled"}


def test_two_scopes_side_by_side_manage_their_own_jobs():
    repo_a = doc(shell("a-1", metadata={"team": "a"}), shell("a-2", metadata={"team": "a"}))
    repo_b = doc(shell("b-1", metadata={"team": "b"}))
    assert apply(repo_a, prune=True, scope=TEAM_A).applied
    assert apply(repo_b, prune=True, scope=Scope("team", "b")).applied
    assert Job.objects.count() == 3  # b's prune left a's jobs alone

    result = apply(doc(shell("a-1", metadata={"team": "a"})), prune=True, scope=TEAM_A)
    assert [(i.name, i.action) for i in result.items] == [("a-2", "delete")]
    assert set(Job.objects.values_list("name", flat=True)) == {"a-1", "b-1"}


def test_with_a_scope_a_job_lacking_the_label_is_an_error():
    result = plan(doc(shell("job-a")), scope=TEAM_A)
    (problem,) = result.errors
    assert "must carry the scope label" in problem.error and "team" in problem.error


def test_with_a_scope_a_job_of_another_scope_is_not_taken_over():
    factories.job("shared", metadata={"team": "b"})
    result = apply(doc(shell("shared", metadata={"team": "a"})), scope=TEAM_A)
    assert not result.applied
    assert "belongs to scope team=b" in result.errors[0].error
    assert Job.objects.get(name="shared").metadata == {"team": "b"}


def test_an_actor_without_the_run_code_permission_cannot_apply_a_shell_job():
    editor = Actor(can_run_code=False, name="ed", via=AuditEntry.Via.APPLY)
    result = apply(doc(shell("job-a")), actor=editor)
    assert not result.applied and "run code jobs" in result.errors[0].error
    assert not Job.objects.exists()


def test_a_refused_delete_is_an_error_and_nothing_is_deleted():
    factories.job("parent-a", metadata={"team": "a"})
    factories.job("child-b", parent_job="parent-a", schedule="", metadata={"team": "b"})
    result = apply(doc(shell("x", metadata={"team": "a"})), prune=True, scope=TEAM_A)
    assert not result.applied and "dependent" in result.errors[0].error
    assert not Job.objects.filter(name="x").exists()
    assert Job.objects.filter(name="parent-a").exists()


def test_parents_in_later_files_are_created_first():
    child = shell("child", schedule="", parent_job="parent")
    result = apply(doc(child, source="a.yaml"), doc(shell("parent"), source="b.yaml"))
    assert [i.name for i in result.items] == ["parent", "child"]
    assert Job.objects.get(name="child").parent.name == "parent"


def test_calendars_travel_with_the_jobs_and_are_planned():
    definition = {"timezone": "UTC", "dates": ["2030-12-25"]}
    job = shell(
        "job-c", exclude_calendars=["holidays"], calendar_definitions={"holidays": definition}
    )
    result = plan(doc(job))
    assert [(i.kind, i.name, i.action) for i in result.items] == [
        ("calendar", "holidays", "create"),
        ("job", "job-c", "create"),
    ]
    assert result.items[0].lines() == ["+ create calendar holidays"]
    assert not Calendar.objects.exists()
    apply(doc(job))
    assert plan(doc(job)).items == []


def test_a_folder_of_yaml_and_json_files_plans_and_applies():
    documents = declarative.read_paths([FIXTURES / "team-a"])
    assert [Path(d.source).name for d in documents] == [
        "backup.yaml",
        "cleanup.json",
        "reports.yml",
    ]
    first = declarative.plan(documents, actor=ACTOR, prune=True, scope=TEAM_A)
    assert not first.errors, first.errors
    assert sorted(i.name for i in first.creates) == [
        "nightly-backup",
        "report-upload",
        "tmp-cleanup",
        "weekly-report",
    ]
    assert "s3cr3t" not in json.dumps(first.as_dict())
    factories.job("retired", metadata={"team": "a"})
    applied = declarative.apply(documents, actor=ACTOR, prune=True, scope=TEAM_A)
    assert applied.applied and [i.name for i in applied.deletes] == ["retired"]
    assert Job.objects.get(name="report-upload").parent.name == "nightly-backup"
    again = declarative.plan(
        declarative.read_paths([FIXTURES]), actor=ACTOR, prune=True, scope=TEAM_A
    )
    assert again.items == [] and again.unchanged == 4


def test_an_unreadable_file_is_an_error(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    (tmp_path / "scalar.json").write_text("42")
    result = declarative.plan(declarative.read_paths([tmp_path]), actor=ACTOR)
    assert [Path(p.source).name for p in result.errors] == ["bad.yaml", "scalar.json"]
    assert "cannot parse" in result.errors[0].error
    assert "expected a job object" in result.errors[1].error


def test_yaml_dates_are_read_as_rfc3339_strings(tmp_path):
    (tmp_path / "job.yaml").write_text(
        "name: dated\nschedule: '@every 1m'\nexecutor: shell\n"
        "executor_config: {command: 'true'}\nstarts_at: 2030-01-02T03:04:05Z\n"
    )
    (document,) = declarative.read_paths([tmp_path])
    assert document.jobs[0]["starts_at"] == "2030-01-02T03:04:05Z"
    assert apply(document).applied


def test_a_file_named_and_inside_a_named_folder_is_read_once():
    folder = FIXTURES / "team-a"
    documents = declarative.read_paths([folder, folder / "backup.yaml"])
    assert len(documents) == 3
    assert not plan(*documents).errors


def test_a_missing_path_is_an_error():
    (document,) = declarative.read_paths([FIXTURES / "nowhere"])
    result = plan(document)
    assert result.errors[0].error == "no such file or folder"


def test_with_encryption_at_rest_an_unchanged_secret_shows_no_changes(monkeypatch):
    from cryptography.fernet import Fernet
    from django.conf import settings

    monkeypatch.setitem(settings.DKRON, "ENCRYPTION_KEYS", [Fernet.generate_key().decode()])
    job = shell("job-s", executor_config={"command": "env", "env": SECRET_ENV})
    apply(doc(job))
    assert "hunter2" not in json.dumps(Job.objects.get(name="job-s").executor_config)
    assert plan(doc(job)).items == []  # a new ciphertext, the same secret
    changed = shell("job-s", executor_config={"command": "env", "env": "DB_PASSWORD=x"})
    assert plan(doc(changed)).items[0].changes[0].secret


def test_a_webhook_header_change_is_a_secret_change():
    hook = {"url": "https://hooks.example.com/x", "headers": {"Authorization": "Bearer one-1"}}
    apply(doc(shell("job-n", notify={"on": "always", "webhooks": [hook]})))
    hook2 = {**hook, "headers": {"Authorization": "Bearer two-2"}}
    result = plan(doc(shell("job-n", notify={"on": "always", "webhooks": [hook2]})))
    assert [c.as_dict() for c in result.items[0].changes] == [
        {"path": "notify.webhooks", "secret": True}
    ]
    assert "one-1" not in "\n".join(result.lines()) and "two-2" not in json.dumps(result.as_dict())


def test_an_apply_records_revisions_with_source_apply_and_a_plan_records_none():
    from jobs.models import JobRevision

    plan(doc(shell("job-r")))
    assert not JobRevision.objects.filter(job_name="job-r").exists()  # rolled back with it
    apply(doc(shell("job-r")))
    apply(doc(shell("job-r", retries=3)))
    apply(doc(shell("job-r", retries=3)))  # unchanged: no revision
    rows = JobRevision.objects.filter(job_name="job-r").order_by("number")
    assert [(r.number, r.source, r.change) for r in rows] == [
        (1, "apply", "create"),
        (2, "apply", "update"),
    ]


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path):
    """Found by an outside tester: 8 levels of 9 aliases planned for a minute of CPU."""
    import time

    lines = ['a0: &a0 "lol"']
    for level in range(1, 9):
        refs = ", ".join(f"*a{level - 1}" for _ in range(9))
        lines.append(f"a{level}: &a{level} [{refs}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nname: bomb\n")
    started = time.monotonic()
    document = declarative.read_file(bomb)
    assert time.monotonic() - started < 10
    assert document.error and "values" in document.error
