"""/v1/alerts, the job wire's `sla`, and what /health and /metrics say of open SLA alerts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import Alert, Job
from jobs.services import sla
from jobs.services.runs import run_now
from tests.factories import agent
from tests.web.api.helpers import create, job_body
from tests.web.api.roles import principal

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_check():
    sla.reset()
    yield
    sla.reset()


def late_alerts(*names: str) -> None:
    """An open `late` alert for each job (a run queued and never started)."""
    agent("n1")
    for name in names:
        run_now(job=Job.objects.get(name=name))
    sla.check(now=timezone.now() + timedelta(seconds=10), deliver=lambda *_: None)


def test_a_job_carries_its_sla_rules_and_they_round_trip(api):
    rules = {
        "start_within": "2m",
        "max_duration": "1h",
        "kill_after": "2h",
        "consecutive_failures": 3,
    }
    created = create(api, "nightly", sla=rules)
    assert created["sla"] == rules
    again = api.post("/v1/jobs", created, format="json")  # a GET body sent back as it is
    assert again.status_code == 201, again.content
    assert api.get("/v1/jobs/nightly").json()["sla"] == rules


def test_a_job_without_rules_answers_an_empty_sla_and_a_dkron_body_stays_valid(dkron):
    response = dkron.post("/v1/jobs", job_body("plain"), format="json")
    assert response.status_code == 201
    assert response.json()["sla"] == {}
    assert not Job.objects.get(name="plain").has_sla


def test_a_bad_rule_is_a_400_naming_it_and_nothing_is_stored(api):
    response = api.post("/v1/jobs", job_body("bad", sla={"start_within": "soon"}), format="json")
    assert response.status_code == 400
    body = response.json()
    assert "start_within" in body["details"]["sla"]
    assert "sla" in body["error"]
    assert not Job.objects.filter(name="bad").exists()


def test_an_unknown_rule_is_a_400_naming_it(api):
    response = api.post("/v1/jobs", job_body("bad", sla={"start_wihtin": "1m"}), format="json")
    assert response.status_code == 400
    assert response.json()["details"]["sla"] == {
        "start_wihtin": "unknown rule (use start_within, max_duration, kill_after, "
        "success_within, consecutive_failures)"
    }


def test_an_sla_that_is_not_an_object_is_a_400(api):
    response = api.post("/v1/jobs", job_body("bad", sla="1m"), format="json")
    assert response.status_code == 400
    assert "sla" in response.json()["error"]


def test_alerts_are_listed_newest_first_and_filtered_by_job_and_state(api):
    for name in ("a", "b"):
        create(api, name, schedule="@manually", sla={"start_within": "1s"})
    late_alerts("a", "b")
    Alert.objects.filter(job_name="a").update(state="resolved", resolved_at=timezone.now())

    every = api.get("/v1/alerts")
    assert every.status_code == 200
    assert every["X-Total-Count"] == "2"
    assert [a["job"] for a in every.json()] == ["b", "a"]
    first = every.json()[0]
    assert first["kind"] == "late" and first["state"] == "open"
    assert first["subject"].startswith("run ") and first["opened_at"].endswith("Z")
    assert first["resolved_at"] is None

    assert [a["job"] for a in api.get("/v1/alerts?state=open").json()] == ["b"]
    assert [a["job"] for a in api.get("/v1/alerts?job=a").json()] == ["a"]
    assert api.get("/v1/alerts?job=a&state=open").json() == []
    assert len(api.get("/v1/alerts?kind=late&_start=0&_end=1").json()) == 1


def test_a_bad_filter_is_a_400_naming_it(api):
    response = api.get("/v1/alerts?state=closed")
    assert response.status_code == 400
    assert "state must be open or resolved" in response.json()["error"]
    assert api.get("/v1/alerts?kind=slow").status_code == 400


@pytest.mark.django_db  # not transactional: the role groups come from a migration
def test_readers_may_list_alerts():
    _, client, _ = principal("read-only")
    assert client.get("/v1/alerts").status_code == 200


def test_health_counts_open_alerts_and_stays_healthy(api, anon):
    create(api, "late-job", schedule="@manually", sla={"start_within": "1s"})
    late_alerts("late-job")
    body = anon.get("/health").json()
    assert body["sla"]["open_alerts"] == {"late": 1, "overdue": 0, "no_success": 0, "failing": 0}
    assert any("1 open SLA alert(s): 1 late" in a for a in body["alerts"])
    assert "late-job" not in str(body)  # no job names without credentials


def test_metrics_export_open_alerts_per_job_and_kind_and_a_cluster_wide_total(api):
    create(api, "late-job", schedule="@manually", sla={"start_within": "1s"})
    late_alerts("late-job")
    text = api.get("/metrics").content.decode()
    families = {m.name: m for m in text_string_to_metric_families(text)}
    [open_alert] = families["dkronweb_alerts_open"].samples
    assert open_alert.labels == {"job": "late-job", "kind": "late"}
    assert open_alert.value == 1
    totals = {s.labels["kind"]: s.value for s in families["dkronweb_alerts"].samples}
    assert totals == {"late": 1, "overdue": 0, "no_success": 0, "failing": 0}
    assert 'dkronweb_alerts_total{kind="late"} 1.0' in text
