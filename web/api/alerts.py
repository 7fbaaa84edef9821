"""dkronweb extension to the /v1 API: the SLA alerts (jobs.services.sla), read-only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import selectors
from jobs.models import Alert, AlertKind, AlertState
from jobs.timeutil import rfc3339
from web.api.views import ERRORS, ApiView, _query
from web.filters import JobPageFilter, _choice, _Filter, _text

ALERTS_PAGE_MAX = 1000  # alerts per answer; page with _start/_end (X-Total-Count has all)


class AlertListFilter(_Filter[dict[str, str]]):
    """GET /v1/alerts: job, state (open or resolved), kind."""

    job = _text()
    state = _choice(AlertState.values, "state must be open or resolved")
    kind = _choice(AlertKind.values, f"kind must be one of {', '.join(AlertKind.values)}")

    def typed(self, values: dict[str, Any], params: Mapping[str, Any]) -> dict[str, str]:
        return {"job": values["job"], "state": values["state"], "kind": values["kind"]}


class Time(serializers.DateTimeField):
    def to_representation(self, value: Any) -> Any:
        return rfc3339(value)


class AlertSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job = serializers.CharField(source="job_name", help_text="The job's name")
    kind = serializers.ChoiceField(
        choices=AlertKind.values,
        help_text="The rule breached: late (start_within), overdue (max_duration), "
        "no_success (success_within), failing (consecutive_failures)",
    )
    state = serializers.ChoiceField(choices=AlertState.values)
    subject = serializers.CharField(
        help_text="What breached: 'run <id>' (late), 'execution <id>' (overdue); empty for "
        "no_success and failing"
    )
    detail = serializers.DictField(help_text="What the check saw, and why it resolved")
    opened_at = Time()
    resolved_at = Time(allow_null=True)


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    return dict(AlertSerializer(alert).data)


class AlertsView(ApiView):
    @extend_schema(
        operation_id="listAlerts",
        summary="SLA alerts, newest first (dkronweb extension; docs/jobs.md, SLA and alerts)",
        parameters=[
            _query("job", str, "Only this job's alerts"),
            _query("state", str, "open or resolved", enum=list(AlertState.values)),
            _query("kind", str, "Only this kind", enum=list(AlertKind.values)),
            _query("_start", int, "First index of the page"),
            _query("_end", int, f"Index after the last of the page (at most {ALERTS_PAGE_MAX})"),
        ],
        responses={200: AlertSerializer(many=True), **ERRORS},
        tags=["alerts"],
    )
    def get(self, request: Request) -> Response:
        filters = AlertListFilter.parse(request.query_params)
        qs = selectors.alert_list(**filters)
        total = qs.count()
        start, end = selectors.page_bounds(JobPageFilter.parse(request.query_params), total)
        end = min(end, start + ALERTS_PAGE_MAX)
        response = Response(AlertSerializer(qs[start:end], many=True).data)
        response["X-Total-Count"] = str(total)
        return response
