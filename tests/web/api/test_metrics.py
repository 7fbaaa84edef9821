"""/metrics: Prometheus text read from the database, behind the API's authentication."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from jobs.models import Lease
from jobs.services.lease import lease_acquire


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {m.name: m for m in text_string_to_metric_families(response.content.decode())}


def test_metrics_need_credentials(anon):
    assert anon.get("/metrics").status_code in (401, 403)


def test_leadership_changes_and_the_active_scheduler_are_exported(api, db):
    lease_acquire(holder="host:1:a", ttl=30)
    Lease.objects.filter(name="scheduler").update(expires_at=None)  # the first one died
    lease_acquire(holder="host:2:b", ttl=30)
    metrics = scrape(api)
    assert metrics["dkronweb_scheduler_leadership_changes"].samples[0].value == 2
    [active] = metrics["dkronweb_scheduler_active"].samples
    assert active.value == 1 and active.labels["holder"] == "host:2:b"


def test_no_scheduler_means_active_zero(api, db):
    metrics = scrape(api)
    assert metrics["dkronweb_scheduler_active"].samples[0].value == 0
    assert metrics["dkronweb_scheduler_leadership_changes"].samples[0].value == 0
