"""The job and execution shapes are declared once (jobs.wire): the answer has every declared
field, of the declared type, and the fast rendering equals DRF's own."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from jobs.models import Execution, Job
from jobs.wire import ExecutionSerializer, JobSerializer
from tests.web.api.helpers import add_execution, create

pytestmark = pytest.mark.django_db

TYPES = {
    serializers.CharField: str,
    serializers.ChoiceField: str,
    serializers.DateTimeField: str,
    serializers.IntegerField: int,
    serializers.FloatField: float,
    serializers.BooleanField: bool,
    serializers.DictField: dict,
    serializers.ListField: list,
}


def _assert_declared(serializer: serializers.Serializer, answer: dict) -> None:
    assert list(answer) == list(serializer.fields)
    for name, field in serializer.fields.items():
        value = answer[name]
        if value is None:
            assert field.allow_null, name
            continue
        expected = next(t for cls, t in TYPES.items() if isinstance(field, cls))
        assert isinstance(value, expected), (name, value)


def test_a_job_answer_has_every_declared_field_with_its_type(api):
    create(api, "parent", tags={"role": "web"}, metadata={"team": "ops"})
    create(api, "child", schedule="", parent_job="parent")

    for name in ("parent", "child"):
        _assert_declared(JobSerializer(), api.get(f"/v1/jobs/{name}").json())


def test_an_execution_answer_has_every_declared_field_with_its_type(api):
    create(api, "job1")
    add_execution("job1", status="success", output="hello")
    add_execution("job1", status="queued")

    for answer in api.get("/v1/jobs/job1/executions").json():
        _assert_declared(ExecutionSerializer(), answer)


def test_the_fast_rendering_equals_drf_own(api):
    create(api, "parent", tags={"role": "web"})
    create(api, "child", schedule="", parent_job="parent", disabled=True)
    add_execution("parent", status="success", output="0123456789")
    add_execution("parent", status="running")

    for job in Job.objects.all():
        drf = serializers.Serializer.to_representation(JobSerializer(), job)
        assert JobSerializer(job).data == drf
    for limit in (None, 0, 4):
        for execution in Execution.objects.all():
            context = {"output_limit": limit}
            drf = serializers.Serializer.to_representation(
                ExecutionSerializer(context=context), execution
            )
            assert ExecutionSerializer(execution, context=context).data == drf
