"""The admin carries SLA rules through the service, and lists the alerts read-only."""

from __future__ import annotations

import json

from django.utils import timezone

from jobs.models import Alert, Job
from tests.web.admin.test_admin import make_job
from tests.web.admin.test_admin_params import _posted

RULES = {"start_within": "5m", "consecutive_failures": 2}


def test_saving_the_change_page_keeps_the_rules(client, admin_user):
    job = make_job("nightly", sla=RULES)
    client.force_login(admin_user)
    url = f"/admin/jobs/job/{job.pk}/change/"
    response = client.post(url, _posted(client, url))
    assert response.status_code == 302, response.content.decode()[:2000]
    saved = Job.objects.get(name="nightly")
    assert saved.sla == RULES and saved.has_sla


def test_an_edited_rule_is_validated_by_the_service(client, admin_user):
    job = make_job("nightly", sla=RULES)
    client.force_login(admin_user)
    url = f"/admin/jobs/job/{job.pk}/change/"
    data = _posted(client, url)
    data["sla"] = json.dumps({"start_within": "soon"})
    response = client.post(url, data, follow=True)
    assert "start_within" in response.content.decode()
    assert Job.objects.get(name="nightly").sla == RULES


def test_alerts_are_listed_and_cannot_be_changed(client, admin_user):
    job = make_job("nightly", sla=RULES)
    Alert.objects.create(job=job, job_name=job.name, kind="late", opened_at=timezone.now())
    client.force_login(admin_user)
    page = client.get("/admin/jobs/alert/")
    assert page.status_code == 200 and "nightly" in page.content.decode()
    assert client.get("/admin/jobs/alert/add/").status_code == 403
