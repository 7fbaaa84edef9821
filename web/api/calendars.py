"""dkronweb extension to the /v1 API: calendars (`/v1/calendars`), which jobs name in
`exclude_calendars` and `only_calendars`. Auth, permissions, audit and errors as /v1/jobs."""

from __future__ import annotations

from typing import Any

from django.utils.encoding import iri_to_uri
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import parsers, serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.models import Calendar
from jobs.services import calendars as calendar_services
from jobs.services.audit import Actor
from jobs.services.cluster import ensure_not_paused
from web.api.parsers import JSONParser
from web.api.permissions import can
from web.api.views import CONFLICT, ERRORS, ApiView

NOT_FOUND = {404: OpenApiResponse(description="No such calendar")}


class RangeSerializer(serializers.Serializer):
    start = serializers.CharField(help_text="Local wall time YYYY-MM-DDTHH:MM[:SS] (or a date)")
    end = serializers.CharField(help_text="Exclusive; a bare date includes that whole day")


class WindowSerializer(serializers.Serializer):
    days = serializers.ListField(
        child=serializers.CharField(), help_text="mon..sun, or spans such as 'mon-fri'"
    )
    start = serializers.CharField(help_text="HH:MM local")
    end = serializers.CharField(help_text="HH:MM local, up to 24:00; before start: next day")


class CalendarSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Lowercase letters, digits, _ and -")
    timezone = serializers.CharField(help_text="IANA zone the dates and times are read in")
    description = serializers.CharField(required=False, allow_blank=True)
    dates = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Whole local days YYYY-MM-DD"
    )
    ranges = RangeSerializer(many=True, required=False)
    windows = WindowSerializer(many=True, required=False)
    updated_at = serializers.DateTimeField(read_only=True)


class CalendarInputSerializer(CalendarSerializer):
    name = serializers.CharField(required=False, help_text="Required on POST; the URL's on PUT")
    ics = serializers.CharField(
        required=False, help_text="An iCalendar file (RFC 5545) whose events are added"
    )


class IcsInputSerializer(serializers.Serializer):
    ics = serializers.CharField(help_text="The iCalendar file's text")
    replace = serializers.BooleanField(
        required=False, help_text="Replace the calendar's dates and ranges instead of adding"
    )


class IcsParser(parsers.BaseParser):
    """A raw `text/calendar` body: the file itself."""

    media_type = "text/calendar"

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        return stream.read().decode("utf-8", errors="replace")


def _actor(request: Request) -> Actor:
    return Actor.from_user(request.user)


def _body(request: Request) -> dict[str, Any]:
    data = request.data
    if not isinstance(data, dict):
        raise calendar_services.InvalidCalendar(
            "Calendar validation failed: expected a JSON object.", {}
        )
    return dict(data)


def _answer(calendar: Calendar, status: int = 200) -> Response:
    response = Response(calendar_services.calendar_to_dict(calendar), status=status)
    if status == 201:
        response["Location"] = iri_to_uri(f"/v1/calendars/{calendar.name}")
    return response


class CalendarsView(ApiView):
    write_perm = "jobs.add_calendar"

    @extend_schema(
        operation_id="listCalendars",
        summary="List calendars (dkronweb extension)",
        responses={200: CalendarSerializer(many=True), **ERRORS},
        tags=["calendars"],
    )
    def get(self, request: Request) -> Response:
        data = [calendar_services.calendar_to_dict(c) for c in Calendar.objects.all()]
        response = Response(data)
        response["X-Total-Count"] = str(len(data))
        return response

    @extend_schema(
        operation_id="createCalendar",
        summary="Create a calendar (409 if the name is taken: PUT replaces)",
        request=CalendarInputSerializer,
        responses={201: CalendarSerializer, **ERRORS, **CONFLICT},
        tags=["calendars"],
    )
    def post(self, request: Request) -> Response:
        ensure_not_paused()
        data = _body(request)
        calendar, _ = calendar_services.calendar_upsert(
            name=data.get("name") or "", data=data, actor=_actor(request), create_only=True
        )
        return _answer(calendar, 201)


class CalendarView(ApiView):
    def write_perm(self, request: Request) -> str | tuple[str, ...]:
        if request.method == "DELETE":
            return "jobs.delete_calendar"
        return ("jobs.add_calendar", "jobs.change_calendar")  # PUT: `put` checks which

    @extend_schema(
        operation_id="showCalendar",
        summary="One calendar",
        responses={200: CalendarSerializer, **NOT_FOUND},
        tags=["calendars"],
    )
    def get(self, request: Request, name: str) -> Response:
        return _answer(calendar_services.calendar_get(name))

    @extend_schema(
        operation_id="putCalendar",
        summary="Create or replace a calendar; the jobs naming it are rescheduled",
        request=CalendarInputSerializer,
        responses={200: CalendarSerializer, 201: CalendarSerializer, **ERRORS},
        tags=["calendars"],
    )
    def put(self, request: Request, name: str) -> Response:
        ensure_not_paused()
        data = _body(request)
        if data.get("name") not in (None, "", name):
            raise calendar_services.InvalidCalendar(
                "Calendar validation failed: the body's name differs from the URL's "
                "(calendars are not renamed).",
                {"name": "differs from the URL"},
            )
        exists = Calendar.objects.filter(name=name).exists()
        needed = "jobs.change_calendar" if exists else "jobs.add_calendar"
        if not can(request, needed):
            raise PermissionDenied(
                f"you do not have permission to {'change' if exists else 'create'} calendars"
            )
        calendar, created = calendar_services.calendar_upsert(
            name=name, data=data, actor=_actor(request)
        )
        return _answer(calendar, 201 if created else 200)

    @extend_schema(
        operation_id="deleteCalendar",
        summary="Delete a calendar (409 naming the jobs that still use it)",
        responses={200: CalendarSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["calendars"],
    )
    def delete(self, request: Request, name: str) -> Response:
        ensure_not_paused()
        calendar = calendar_services.calendar_get(name)
        data = calendar_services.calendar_to_dict(calendar)
        calendar_services.calendar_delete(calendar=calendar, actor=_actor(request))
        return Response(data)


class CalendarIcsView(ApiView):
    parser_classes = [JSONParser, IcsParser]
    write_perm = "jobs.change_calendar"

    @extend_schema(
        operation_id="importCalendarIcs",
        summary="Add an iCalendar file's events (body: text/calendar, or JSON {ics, replace})",
        request={"text/calendar": str, "application/json": IcsInputSerializer},
        responses={200: CalendarSerializer, **ERRORS, **NOT_FOUND},
        tags=["calendars"],
    )
    def post(self, request: Request, name: str) -> Response:
        ensure_not_paused()
        calendar = calendar_services.calendar_get(name)
        body: Any = request.data
        replace = str(request.query_params.get("replace", "")).lower() in {"1", "true", "yes"}
        if isinstance(body, dict):
            given = body.get("replace", False)
            if not isinstance(given, bool):
                raise calendar_services.InvalidCalendar(
                    "Calendar validation failed: replace must be true or false.",
                    {"replace": "must be true or false"},
                )
            replace = replace or given
            body = body.get("ics")
        calendar = calendar_services.calendar_import_ics(
            calendar=calendar, ics=body, replace=replace, actor=_actor(request)
        )
        return _answer(calendar)
