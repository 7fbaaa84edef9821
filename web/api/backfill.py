"""dkronweb extension to the /v1 API: backfills of a job's past fire times
(`/v1/jobs/{name}/backfill`, `/v1/jobs/{name}/backfills`) and schedule previews
(`/v1/jobs/{name}/next`, `/v1/schedule/preview`). Auth, errors and audit as /v1/jobs; starting
or cancelling a backfill needs the permission to run the job (jobs.operate_job)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.encoding import iri_to_uri
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import preview, timeutil
from jobs import schedule as sched
from jobs.errors import DomainError, NotFound
from jobs.models import Backfill, BackfillItem, Job
from jobs.services import backfill as backfill_services
from jobs.services import jobs as job_services
from jobs.services.calendars import unknown_names
from jobs.wire import DATETIME_FORMATS, SecondsField
from web.api.views import CONFLICT, ERRORS, NOT_FOUND, ApiView, _actor, _query

ITEMS_SHOWN = 1000  # items a backfill's detail lists (the counts cover all of them)


class BackfillInputSerializer(serializers.Serializer):
    # Documentation only: the service checks the body (its 400s name the field).
    from_ = serializers.CharField(help_text="First fire time (RFC 3339; no offset: job's zone)")
    to = serializers.CharField(required=False, help_text="Last fire time, inclusive; default now")
    reprocess = serializers.ChoiceField(
        choices=Backfill.Reprocess.values,
        required=False,
        help_text="missing (default): never-run times; failed: also failed runs; all",
    )
    max_concurrency = serializers.IntegerField(
        min_value=1, required=False, help_text="Its runs active at once (default 1)"
    )
    dry_run = serializers.BooleanField(required=False, help_text="List the times, start nothing")

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class BackfillSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job = serializers.CharField()
    reprocess = serializers.CharField()
    max_concurrency = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Backfill.State.values)
    fire_times = serializers.IntegerField(help_text="Fire times in the range")
    total = serializers.IntegerField(help_text="Fire times it set out to run")
    created = serializers.IntegerField(help_text="Runs started")
    skipped = serializers.IntegerField(help_text="Times found taken when their turn came")
    finished = serializers.IntegerField(help_text="Its runs that finished")
    pending = serializers.IntegerField(help_text="Times still to start")

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField()
        fields["to"] = serializers.DateTimeField()
        return fields


class PlannedSerializer(serializers.Serializer):
    scheduled_at = serializers.DateTimeField(help_text="The fire time (UTC)")
    local = serializers.CharField(help_text="The same on the job zone's wall clock")
    included = serializers.BooleanField()
    reason = serializers.CharField(help_text="Why it is (or is not) included")
    run = serializers.IntegerField(allow_null=True, help_text="The run holding the time now")


class DryRunSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    fire_times = serializers.IntegerField()
    included = serializers.IntegerField()
    times = PlannedSerializer(many=True)


class PreviewInputSerializer(serializers.Serializer):
    schedule = serializers.CharField(max_length=255, help_text="A Dkron schedule")
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    exclude_calendars = serializers.ListField(
        child=serializers.CharField(max_length=255), max_length=100, required=False
    )
    only_calendars = serializers.ListField(
        child=serializers.CharField(max_length=255), max_length=100, required=False
    )
    jitter = SecondsField(required=False, allow_null=True)
    name = serializers.CharField(
        max_length=255, required=False, allow_blank=True, help_text="For `~` and jitter offsets"
    )
    starts_at = serializers.DateTimeField(
        required=False, allow_null=True, input_formats=DATETIME_FORMATS
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, input_formats=DATETIME_FORMATS
    )
    count = serializers.IntegerField(min_value=1, max_value=preview.MAX_COUNT, required=False)


class PreviewFireSerializer(serializers.Serializer):
    utc = serializers.DateTimeField()
    local = serializers.CharField(help_text="On the zone's wall clock, with its offset")
    skipped = serializers.ListField(
        child=serializers.DictField(), help_text="Schedule times skipped since the last fire"
    )
    dst = serializers.CharField(allow_null=True, help_text="starts / ends: a DST change before")
    dst_note = serializers.CharField()
    jitter = serializers.FloatField(required=False, help_text="Seconds after its time it starts")


class PreviewSerializer(serializers.Serializer):
    schedule = serializers.CharField()
    timezone = serializers.CharField()
    description = serializers.CharField()
    count = serializers.IntegerField()
    fires = PreviewFireSerializer(many=True)
    note = serializers.CharField()


def _backfill(job: Job, backfill_id: str) -> Backfill:
    if not backfill_id.isascii() or not backfill_id.isdigit() or len(backfill_id) > 18:
        raise NotFound(f"backfill '{backfill_id[:32]}' not found")
    found = Backfill.objects.filter(job=job, pk=int(backfill_id)).select_related("job").first()
    if found is None:
        raise NotFound(f"backfill {backfill_id} of job '{job.name}' not found")
    return found


def _created(backfill: Backfill) -> Response:
    response = Response(backfill_services.backfill_to_dict(backfill), status=201)
    response["Location"] = iri_to_uri(f"/v1/jobs/{backfill.job.name}/backfills/{backfill.pk}")
    return response


def backfill_detail(backfill: Backfill) -> dict[str, Any]:
    data = backfill_services.backfill_to_dict(backfill)
    items = BackfillItem.objects.filter(backfill=backfill)
    data["items"] = [
        {
            "scheduled_at": backfill_services.iso(i.scheduled_at),
            "state": i.state,
            "run": i.run_id,
            "previous_run": i.previous_run_id,
            "reason": i.reason,
        }
        for i in items[:ITEMS_SHOWN]
    ]
    data["items_shown"] = len(data["items"])
    return data


class JobBackfillView(ApiView):
    write_perm = "jobs.operate_job"

    @extend_schema(
        operation_id="backfillJob",
        summary="Run a job's past fire times over a range, or list them (dry_run)",
        request=BackfillInputSerializer,
        responses={200: DryRunSerializer, 201: BackfillSerializer, **ERRORS, **NOT_FOUND},
        tags=["backfill"],
    )
    def post(self, request: Request, name: str) -> Response:
        job = job_services.job_get(name)
        checked = backfill_services.clean_request(job=job, data=request.data)
        if not checked.dry_run:
            job_backfill = backfill_services.backfill_start(
                job=job, request=checked, actor=_actor(request)
            )
            return _created(job_backfill)
        planned = backfill_services.backfill_plan(job=job, request=checked)
        zone = backfill_services.job_zone(job)
        return Response(
            {
                "dry_run": True,
                "job": job.name,
                "from": backfill_services.iso(checked.range_from),
                "to": backfill_services.iso(checked.range_to),
                "reprocess": checked.reprocess,
                "max_concurrency": checked.max_concurrency,
                "timezone": zone.key,
                "fire_times": len(planned),
                "included": sum(1 for p in planned if p.included),
                "times": [backfill_services.planned_to_dict(p, zone) for p in planned],
            }
        )


class JobBackfillsView(ApiView):
    @extend_schema(
        operation_id="listBackfills",
        summary="A job's backfills, newest first",
        responses={200: BackfillSerializer(many=True), **ERRORS, **NOT_FOUND},
        tags=["backfill"],
    )
    def get(self, request: Request, name: str) -> Response:
        job = job_services.job_get(name)
        rows = Backfill.objects.filter(job=job).select_related("job")[:100]
        data = [backfill_services.backfill_to_dict(b) for b in rows]
        response = Response(data)
        response["X-Total-Count"] = str(len(data))
        return response


class BackfillView(ApiView):
    write_perm = "jobs.operate_job"

    @extend_schema(
        operation_id="showBackfill",
        summary="One backfill: its progress and its fire times (the first 1,000)",
        responses={200: BackfillSerializer, **ERRORS, **NOT_FOUND},
        tags=["backfill"],
    )
    def get(self, request: Request, name: str, backfill_id: str) -> Response:
        return Response(backfill_detail(_backfill(job_services.job_get(name), backfill_id)))

    @extend_schema(
        operation_id="deleteBackfill",
        summary="Cancel a backfill (same as POST .../cancel)",
        responses={200: BackfillSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["backfill"],
    )
    def delete(self, request: Request, name: str, backfill_id: str) -> Response:
        return _cancel(request, name, backfill_id)


def _cancel(request: Request, name: str, backfill_id: str) -> Response:
    found = _backfill(job_services.job_get(name), backfill_id)
    cancelled = backfill_services.backfill_cancel(backfill=found, actor=_actor(request))
    return Response(backfill_services.backfill_to_dict(cancelled))


class BackfillCancelView(ApiView):
    write_perm = "jobs.operate_job"

    @extend_schema(
        operation_id="cancelBackfill",
        summary="Cancel a backfill: no further time starts; started runs finish",
        request=None,
        responses={200: BackfillSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["backfill"],
    )
    def post(self, request: Request, name: str, backfill_id: str) -> Response:
        return _cancel(request, name, backfill_id)


class JobNextView(ApiView):
    @extend_schema(
        operation_id="jobNextFires",
        summary="A job's next fire times, in its zone and in UTC",
        parameters=[_query("count", int, "How many (1-100, default 10)")],
        responses={200: PreviewSerializer, **ERRORS, **NOT_FOUND},
        tags=["schedule"],
    )
    def get(self, request: Request, name: str) -> Response:
        job = job_services.job_get(name)
        count = preview.clean_count(request.query_params.get("count"))
        return Response(preview.fires(job, count=count, now=timeutil.now()))


class SchedulePreviewView(ApiView):
    # Reads only: any signed-in user may preview (no write permission named).

    @extend_schema(
        operation_id="previewSchedule",
        summary="The next fire times of a schedule not yet saved (zone, calendars, jitter)",
        request=PreviewInputSerializer,
        responses={200: PreviewSerializer, **ERRORS},
        tags=["schedule"],
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise DomainError("the preview body must be a JSON object", {})
        if isinstance(request.data.get("count"), bool):
            raise DomainError("count: must be a whole number from 1 to 100", {"count": "1 to 100"})
        serializer = PreviewInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            sched.validate_timezone(data.get("timezone") or "", default_tz=settings.TIME_ZONE)
        except sched.ScheduleError as exc:
            raise DomainError(f"timezone: {exc}", {"timezone": str(exc)}) from None
        job = Job(
            name=data.get("name") or "",
            schedule=data["schedule"],
            timezone=data.get("timezone") or "",
            exclude_calendars=list(dict.fromkeys(data.get("exclude_calendars") or [])),
            only_calendars=list(dict.fromkeys(data.get("only_calendars") or [])),
            jitter=data.get("jitter") or 0.0,
            starts_at=data.get("starts_at"),
            expires_at=data.get("expires_at"),
        )
        for field in ("exclude_calendars", "only_calendars"):
            unknown = unknown_names(getattr(job, field))
            if unknown:
                message = f"{field}: unknown calendar '{unknown[0]}'"
                raise DomainError(message, {field: message})
        count = data.get("count") or preview.DEFAULT_COUNT
        return Response(preview.fires(job, count=count, now=timeutil.now()))
