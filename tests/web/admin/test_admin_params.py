"""The admin carries run parameters: the change page shows the declaration, saving it keeps it,
and an edited declaration goes through the same validation as the API's upsert."""

from __future__ import annotations

import json

from jobs.models import Job
from tests.web.admin.test_admin import make_job

PARAMS = [{"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "eu"}]


def _posted(client, url):  # type: ignore[no-untyped-def]
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    return {name: "" if value is None else value for name, value in data.items()}


def test_saving_the_change_page_keeps_the_declaration(client, admin_user):
    job = make_job("deploy", params=PARAMS)
    client.force_login(admin_user)
    url = f"/admin/jobs/job/{job.pk}/change/"

    response = client.post(url, _posted(client, url))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Job.objects.get(name="deploy").params == PARAMS


def test_an_edited_declaration_is_validated_by_the_service(client, admin_user):
    job = make_job("deploy", params=PARAMS)
    client.force_login(admin_user)
    url = f"/admin/jobs/job/{job.pk}/change/"
    data = _posted(client, url)
    data["params"] = json.dumps([{"name": "region", "type": "choice"}])

    response = client.post(url, data, follow=True)

    assert "non-empty list of choices" in response.content.decode()
    assert Job.objects.get(name="deploy").params == PARAMS
