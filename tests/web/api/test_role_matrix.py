"""Every API endpoint against every role: allowed or refused, and a refusal changes nothing.

The table lists who may call each endpoint; everybody else gets a 403 (a 401 without
credentials). "Allowed" means neither 401 nor 403 (a 404 for no leader, say, is allowed).
A refused call must leave no trace: every state change writes an audit entry, so the audit
log not growing proves nothing happened.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from jobs.models import AuditEntry, Backfill
from jobs.services.backfill import backfill_start, clean_request
from jobs.services.calendars import calendar_upsert
from jobs.services.jobs import job_upsert
from tests.web.api.helpers import JSON_ERRORS, add_execution, http_body, job_body
from tests.web.api.roles import PRINCIPALS, principal

pytestmark = pytest.mark.django_db

EVERYONE = set(PRINCIPALS)
OPERATORS = EVERYONE - {"read-only", "superuser token as read-only"}
EDITORS = OPERATORS - {"operator"}
CODERS = {"editor+run_code_jobs", "code-editor", "superuser"}
SUPERUSER = {"superuser"}
PUBLIC = EVERYONE | {"anonymous"}

ICS = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//EN\nBEGIN:VEVENT\nUID:1\nDTSTAMP:20260101T000000Z\nDTSTART;VALUE=DATE:20261225\nEND:VEVENT\nEND:VCALENDAR\n"  # noqa: E501

BACKFILL_FROM = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()

# (method, path, body, who may). {id}: a queued execution of job1; {token}: the caller's own
# token. job1 is a shell job, web an http job.
TABLE: list[tuple[str, str, Any, set[str]]] = [
    ("get", "/v1", None, EVERYONE),
    ("get", "/v1/", None, EVERYONE),
    ("get", "/v1/members", None, EVERYONE),
    ("get", "/v1/leader", None, EVERYONE),
    ("get", "/v1/isleader", None, EVERYONE),
    ("get", "/v1/busy", None, EVERYONE),
    ("get", "/v1/openapi.json", None, EVERYONE),
    ("get", "/v1/jobs", None, EVERYONE),
    ("get", "/v1/jobs/job1", None, EVERYONE),
    ("get", "/v1/jobs/job1/executions", None, EVERYONE),
    ("get", "/v1/jobs/job1/executions/{id}", None, EVERYONE),
    ("get", "/v1/pause", None, EVERYONE),
    ("get", "/v1/tokens", None, EVERYONE),
    ("get", "/metrics", None, EVERYONE),
    ("get", "/health", None, PUBLIC),
    ("get", "/v1/audit", None, SUPERUSER),
    # Operating: run, toggle, kill.
    ("post", "/v1/jobs/job1", None, OPERATORS),
    ("post", "/v1/jobs/job1/run", None, OPERATORS),
    ("post", "/v1/jobs/job1/toggle", None, OPERATORS),
    ("post", "/v1/jobs/job1/executions/{id}/kill", None, OPERATORS),
    # Editing jobs that run no code.
    ("post", "/v1/jobs", http_body("new"), EDITORS),
    ("patch", "/v1/jobs", http_body("new"), EDITORS),
    ("put", "/v1/jobs/web", http_body("web", owner="me"), EDITORS),
    ("delete", "/v1/jobs/web", None, EDITORS),
    ("delete", "/v1/jobs/job1/executions", None, EDITORS),
    ("post", "/v1/restore", [http_body("restored")], EDITORS),
    ("post", "/v1/apply", [http_body("applied")], EDITORS),
    ("post", "/v1/pause", None, EDITORS),
    ("post", "/v1/unpause", None, EDITORS),
    # Jobs that run code need the run-code permission as well.
    ("post", "/v1/jobs", job_body("new"), CODERS),
    ("put", "/v1/jobs/job1", job_body("job1", owner="me"), CODERS),
    ("put", "/v1/jobs/web", job_body("web"), CODERS),
    ("post", "/v1/apply", [job_body("applied")], CODERS),
    # Cluster membership: change_agent, in no role.
    ("post", "/v1/leave", None, SUPERUSER),
    # Tokens: anyone signed in, for their own tokens (no wider than the calling token).
    ("post", "/v1/tokens", {"name": "ci", "role": "read-only"}, EVERYONE),
    # A role label must be true: a read-only user may not label a token `operator`.
    (
        "post",
        "/v1/tokens",
        {"name": "ci", "role": "operator"},
        EVERYONE - {"superuser token as read-only", "read-only"},
    ),
    ("post", "/v1/tokens", {"name": "ci"}, EVERYONE - {p for p in PRINCIPALS if "token" in p}),
    ("delete", "/v1/tokens/{token}", None, EVERYONE),
    # Calendars: read by all, edited by editors (as jobs that run no code).
    ("get", "/v1/calendars", None, EVERYONE),
    ("get", "/v1/calendars/days", None, EVERYONE),
    ("post", "/v1/calendars", {"name": "new-cal", "timezone": "UTC"}, EDITORS),
    ("put", "/v1/calendars/days", {"timezone": "UTC", "dates": ["2026-12-25"]}, EDITORS),
    ("post", "/v1/calendars/days/ics", {"ics": ICS}, EDITORS),
    ("delete", "/v1/calendars/days", None, EDITORS),
    ("get", "/v1/concurrency", None, EVERYONE),
    ("get", "/v1/alerts", None, EVERYONE),
    # Job history: read by all; a restore is an upsert (and job1 runs code).
    ("get", "/v1/jobs/web/revisions", None, EVERYONE),
    ("get", "/v1/jobs/web/revisions/1", None, EVERYONE),
    ("get", "/v1/jobs/web/revisions/2/diff", None, EVERYONE),
    ("post", "/v1/jobs/web/revisions/1/restore", None, EDITORS),
    ("post", "/v1/jobs/job1/revisions/1/restore", None, CODERS),
    # Schedule previews: reads, for anyone signed in (the preview is a POST that changes
    # nothing). Backfills: started and cancelled by whoever may run the job.
    ("get", "/v1/jobs/minutely/next", None, EVERYONE),
    ("post", "/v1/schedule/preview", {"schedule": "@hourly"}, EVERYONE),
    ("get", "/v1/jobs/minutely/backfills", None, EVERYONE),
    ("get", "/v1/jobs/minutely/backfills/{backfill}", None, EVERYONE),
    ("post", "/v1/jobs/minutely/backfill", {"from": BACKFILL_FROM}, OPERATORS),
    ("post", "/v1/jobs/minutely/backfills/{backfill}/cancel", None, OPERATORS),
    ("delete", "/v1/jobs/minutely/backfills/{backfill}", None, OPERATORS),
]
READS = {"/v1/leave", "/v1/schedule/preview"}  # allowed calls that leave no audit entry
WHO = ["anonymous", *PRINCIPALS]


def case_id(row: tuple[str, str, Any, set[str]]) -> str:
    method, path, body, _ = row
    label = f"{method.upper()} {path}"
    if isinstance(body, dict) and "executor" in body:
        label += f" [{body['executor']}]"
    if isinstance(body, dict) and "executor" not in body and "calendars" not in path:
        label += f" [role={body.get('role')}]"
    if isinstance(body, list):
        label += f" [{body[0]['executor']}]"
    return label


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    job_upsert(data=job_body("job1"))
    calendar_upsert(name="days", data={"timezone": "UTC"})
    job_upsert(data={k: v for k, v in http_body("web").items()})
    # A second revision of each, so that restoring revision 1 changes the job.
    job_upsert(data=job_body("job1", displayname="v2"))
    job_upsert(data=http_body("web", displayname="v2"))
    execution = add_execution("job1", status="queued")
    job = job_upsert(data=http_body("minutely", schedule="0 * * * * *"))[0]
    backfill_start(job=job, request=clean_request(job=job, data={"from": BACKFILL_FROM}))
    return execution


def call(client: APIClient, method: str, path: str, body: Any) -> Any:
    if path == "/v1/restore":
        raw = json.dumps(body).encode()
        upload = SimpleUploadedFile("jobs.json", raw, content_type="application/json")
        return client.post(path, {"file": upload}, format="multipart")
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("row", TABLE, ids=[case_id(r) for r in TABLE])
def test_each_role_is_allowed_or_refused_each_endpoint(world, row, who):
    method, path, body, allowed = row
    if who == "anonymous":
        client, token_id = APIClient(HTTP_ACCEPT=JSON_ERRORS), 1
    else:
        _, client, token_id = principal(who)
    path = path.replace("{id}", str(world.pk)).replace("{token}", str(token_id))
    path = path.replace("{backfill}", str(Backfill.objects.get().pk))
    entries = AuditEntry.objects.count()

    response = call(client, method, path, body)

    if who in allowed:
        assert response.status_code not in (401, 403), (who, response.status_code, response.content)
        if method != "get" and path not in READS:
            assert AuditEntry.objects.count() > entries, "a change leaves an audit entry"
    else:
        expected = 401 if who == "anonymous" else 403
        assert response.status_code == expected, (who, response.status_code, response.content)
        assert AuditEntry.objects.count() == entries, "a refused call changes nothing"


def _views(resolver: Any, prefix: str = "") -> dict[str, Any]:
    """Route -> view function of every URL pattern under `resolver`."""
    found: dict[str, Any] = {}
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            found.update(_views(entry, prefix + str(entry.pattern)))
        elif isinstance(entry, URLPattern):
            found[prefix + str(entry.pattern)] = entry.callback
    return found


def test_the_table_covers_every_api_route():
    """A new /v1 route without a row here fails this test (so it cannot skip the table)."""
    resolver = get_resolver()
    covered = {
        resolver.resolve(
            path.replace("{id}", "1").replace("{token}", "1").replace("{backfill}", "1")
        ).func
        for _, path, _, _ in TABLE
    }
    routes = _views(resolver)
    api = {
        r: view for r, view in routes.items() if r.startswith("v1") or r in {"metrics", "health"}
    }
    assert len(api) >= 20
    missing = sorted(r for r, view in api.items() if view not in covered)
    assert not missing, missing


def test_a_restore_by_an_editor_without_the_run_code_permission_skips_the_shell_jobs(world):
    _, client, _ = principal("editor")

    response = call(client, "post", "/v1/restore", [http_body("a"), job_body("b")])

    assert response.status_code == 200
    first, second = json.loads(response.json())  # Dkron's answer: a JSON string of the lines
    assert first == "success create a"
    assert second.startswith("fail create b:") and "run_code_jobs" in second


def test_the_migration_creates_the_roles_each_holding_the_one_before():
    from django.contrib.auth.models import Group

    def perms(name: str) -> set[str]:
        return set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))

    assert {"view_job", "view_execution", "view_agent"} <= perms("read-only")
    assert not {p for p in perms("read-only") if not p.startswith("view_")}
    assert perms("operator") - perms("read-only") == {"operate_job"}
    assert perms("editor") - perms("operator") == {
        "add_job",
        "change_job",
        "delete_job",
        "add_calendar",
        "change_calendar",
        "delete_calendar",
    }
    assert "view_calendar" in perms("read-only")
    assert perms("code-editor") - perms("editor") == {"run_code_jobs"}


def test_the_files_processor_writes_on_hosts_so_it_needs_the_run_code_permission(db):
    body = http_body("ping", processors={"files": {"forward": "true"}})
    _, editor, _ = principal("editor")
    _, coder, _ = principal("code-editor")

    refused = editor.post("/v1/jobs", body, format="json")

    assert refused.status_code == 403 and "'files' processor" in refused.json()["error"]
    assert coder.post("/v1/jobs", body, format="json").status_code not in (401, 403)
