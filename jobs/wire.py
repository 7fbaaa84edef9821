"""The wire format: Dkron-shaped job and execution JSON, input validation (types only; rules
live in services) and output.

In the core, not the web layer, because the same shape is the API's answer, its OpenAPI
document, and the export/import and restore format (jobs.services.transfer).
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from executors.registry import mask_secrets
from executors.values import parse_go_duration
from jobs.models import Concurrency, ExecutionStatus, Job, JobStatus, MisfirePolicy
from jobs.notifications import schema as notify_schema
from jobs.selectors import DEPENDENT_NAMES, PARENT_NAME, RUN_PARAMS, RUN_REVISION
from jobs.timeutil import ZERO_TIME, rfc3339
from jobs.timing import job_next_fire

DATETIME_FORMATS = ["iso-8601", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]


# Dkron's Job struct (dkron/job.go) as Go's encoding/json binds a body into it: a value of
# another JSON type is refused before any rule runs, and Dkron answers 400 `Unable to parse
# payload: json: cannot unmarshal ...`. Null is Go's no-op (the field keeps its zero value) and
# unknown keys are ignored. Read-only fields are bound (so checked) too, then ignored here.
# The last block is dkronweb's own fields, bound the same strict way.
GO_JOB_FIELDS: dict[str, str] = {
    "id": "string",
    "name": "string",
    "displayname": "string",
    "timezone": "string",
    "schedule": "string",
    "owner": "string",
    "owner_email": "string",
    "success_count": "int",
    "error_count": "int",
    "last_success": "ntime.NullableTime",
    "last_error": "ntime.NullableTime",
    "disabled": "bool",
    "tags": "map[string]string",
    "metadata": "map[string]string",
    "retries": "uint",
    "dependent_jobs": "[]string",
    "parent_job": "string",
    "processors": "map[string]plugin.Config",
    "concurrency": "string",
    "executor": "string",
    "executor_config": "plugin.ExecutorPluginConfig",
    "status": "string",
    "next": "time.Time",
    "ephemeral": "bool",
    "starts_at": "ntime.NullableTime",
    "expires_at": "ntime.NullableTime",
    "misfire_policy": "string",
    "catchup_window": "duration",
    "jitter": "duration",
    "retry_backoff": "duration",
    "history_limit": "int",
    "notify": "object",
    "exclude_calendars": "[]string",
    "only_calendars": "[]string",
    "concurrency_key": "string",
    "concurrency_limit": "uint",
    "rate_limit": "string",
    "sla": "object",
}
_GO_INT_RANGE = {"int": (-(2**63), 2**63 - 1), "uint": (0, 2**64 - 1)}
_TIME_TYPES = {"ntime.NullableTime", "time.Time"}


def _json_kind(value: Any) -> str:
    """How Go's error names a JSON value: numbers with their literal, as Go writes them."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {json.dumps(value)}"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _binds(value: Any, go_type: str) -> tuple[bool, str]:
    """Whether Go binds `value` into `go_type`; else the type Go names in its error."""
    if value is None:
        return True, go_type
    if go_type == "string" or go_type in _TIME_TYPES:
        return isinstance(value, str), go_type
    if go_type == "bool":
        return isinstance(value, bool), go_type
    if go_type in _GO_INT_RANGE:
        low, high = _GO_INT_RANGE[go_type]
        whole = isinstance(value, int) and not isinstance(value, bool)
        return whole and low <= value <= high, go_type
    if go_type == "duration":  # dkronweb's: seconds or a Go duration string
        return isinstance(value, (int, float, str)) and not isinstance(value, bool), go_type
    if go_type == "[]string":
        if not isinstance(value, list):
            return False, go_type
        return all(v is None or isinstance(v, str) for v in value), "string"
    if not isinstance(value, dict):
        return False, go_type
    if go_type == "map[string]string":
        return all(v is None or isinstance(v, str) for v in value.values()), "string"
    if go_type == "map[string]plugin.Config":
        # Each processor's config must be an object; its values are the processor's to check
        # (beyond Dkron's map[string]string, as for executor_config).
        return all(v is None or isinstance(v, dict) for v in value.values()), "plugin.Config"
    # executor_config (map[string]string in Dkron) takes any JSON values: each executor's
    # schema checks and coerces its own keys, Dkron's strings included. notify: an object.
    return True, go_type


UNBINDABLE = "unbindable"  # the error code of a value Go's encoding/json would not bind


def go_bind(data: dict[str, Any]) -> None:
    """Refuse a body Go's encoding/json would not bind into Dkron's Job: a ValidationError
    whose messages (Go's, one per field) carry the code UNBINDABLE. A code, not an exception
    subclass: DRF re-raises a serializer's errors as a plain ValidationError."""
    errors: dict[str, ErrorDetail] = {}
    for field, value in data.items():
        go_type = GO_JOB_FIELDS.get(field)
        if go_type is None:
            continue
        ok, named = _binds(value, go_type)
        if not ok:
            bad = value
            if named != go_type:  # an element of a list or map: Go names the element
                items = value if isinstance(value, list) else list(value.values())
                bad = next(v for v in items if v is not None and not _binds(v, named)[0])
            errors[field] = ErrorDetail(
                f"json: cannot unmarshal {_json_kind(bad)} into Go struct field "
                f"Job.{field} of type {named}",
                code=UNBINDABLE,
            )
    if errors:
        raise serializers.ValidationError(errors)


def _none_as_empty(values: Any) -> Any:
    """Null map values as Go binds them: the zero value, an empty string."""
    if not isinstance(values, dict):
        return values
    return {k: "" if v is None else v for k, v in values.items()}


def validation_message(exc: serializers.ValidationError) -> str:
    """Dkron's text for a refused body: `Unable to parse payload: ...` when it does not bind,
    `Job validation failed: ...` when a rule refuses it (both end with a period, as Dkron's)."""
    first = _first_detail(exc.detail)
    if getattr(first, "code", None) == UNBINDABLE:
        return f"Unable to parse payload: {first}."
    return f"Job validation failed: {first_message(exc.detail).rstrip('.')}."


def _first_detail(detail: Any) -> Any:
    if isinstance(detail, dict):
        return _first_detail(next(iter(detail.values()), ""))
    if isinstance(detail, list):
        return _first_detail(detail[0]) if detail else ""
    return detail


def first_message(detail: Any) -> str:
    """The first message of a DRF error detail, prefixed by its field path."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            return f"{key}: {first_message(value)}"
    if isinstance(detail, list) and detail:
        return first_message(detail[0])
    return str(detail)


MAX_SECONDS = 10 * 366 * 24 * 3600.0  # ten years: far beyond any sane backoff or window


class SecondsField(serializers.Field):
    """Seconds as a number, or a Go duration string ("1h", "30s")."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            raise serializers.ValidationError("must be seconds or a duration such as '1h'")
        if isinstance(data, (int, float)):
            value = float(data)
        else:
            text = str(data).strip()
            try:
                value = float(text)
            except ValueError:
                try:
                    value = parse_go_duration(text).total_seconds()
                except ValueError as exc:
                    raise serializers.ValidationError(str(exc)) from None
        if not math.isfinite(value):  # float() reads "nan" and "inf": neither is a duration
            raise serializers.ValidationError("must be seconds or a duration such as '1h'")
        if value < 0:
            raise serializers.ValidationError("must not be negative")
        if value > MAX_SECONDS:
            raise serializers.ValidationError(f"must be at most {MAX_SECONDS:.0f} seconds")
        return value

    def to_representation(self, value: Any) -> Any:
        return value


def _text(**kw: Any) -> serializers.CharField:
    return serializers.CharField(required=False, allow_blank=True, allow_null=True, **kw)


class JobInputSerializer(serializers.Serializer):
    # Not trimmed: " job1" has an illegal character and is refused, as in Dkron. Neither
    # required nor length-checked here: the service answers Dkron's `name cannot be empty`.
    name = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    displayname = _text(max_length=255)
    schedule = _text(max_length=255)
    timezone = _text(max_length=64)
    owner = _text(max_length=255)
    owner_email = _text(max_length=255)
    disabled = serializers.BooleanField(required=False, allow_null=True)
    tags = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        allow_null=True,
    )
    metadata = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        allow_null=True,
    )
    retries = serializers.IntegerField(min_value=0, max_value=1000, required=False, allow_null=True)
    retry_backoff = SecondsField(required=False, allow_null=True)
    concurrency = _text(max_length=16)
    executor = _text(max_length=64)
    executor_config = serializers.DictField(required=False, allow_null=True)
    processors = serializers.DictField(
        child=serializers.DictField(), required=False, allow_null=True
    )
    parent_job = _text(max_length=255)
    ephemeral = serializers.BooleanField(required=False, allow_null=True)
    starts_at = serializers.DateTimeField(
        required=False, allow_null=True, input_formats=DATETIME_FORMATS
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, input_formats=DATETIME_FORMATS
    )
    misfire_policy = _text(max_length=16)
    catchup_window = SecondsField(required=False, allow_null=True)
    jitter = SecondsField(required=False, allow_null=True)
    history_limit = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    notify = serializers.DictField(required=False, allow_null=True)
    exclude_calendars = serializers.ListField(
        child=serializers.CharField(max_length=255), max_length=100, required=False, allow_null=True
    )
    only_calendars = serializers.ListField(
        child=serializers.CharField(max_length=255), max_length=100, required=False, allow_null=True
    )
    concurrency_key = _text(max_length=255)
    # No minimum here: the service's rule (at least 1) makes a restore store a backup's 0 as
    # the job's problem, as it does other bad values, instead of refusing the job.
    concurrency_limit = serializers.IntegerField(
        min_value=0, max_value=1_000_000, required=False, allow_null=True
    )
    rate_limit = _text(max_length=32)
    # SLA rules (jobs.sla): any JSON object here, checked by the service so that its 400
    # names the rule (`sla: {"start_within": ...}`).
    sla = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="SLA rules: start_within, max_duration, kill_after, success_within (Go "
        "durations or seconds), consecutive_failures (a count); {} for none",
    )
    # Run parameters (jobs.params): any JSON here, checked by the service so that its 400
    # names the parameter and the field (`params: {"region.choices": ...}`).
    params = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="Declared run parameters: [{name, type (string, int, bool, choice), default, "
        "required, description, choices}]",
    )

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        # Neither the database nor JSON can hold these; refuse them before any field sees them.
        bad = {k: [reason] for k, v in data.items() if (reason := _unstorable(v))}
        if bad:
            raise serializers.ValidationError(bad)
        go_bind(data)
        data = {**data, **{k: _none_as_empty(data[k]) for k in ("tags", "metadata") if k in data}}
        for key in ("starts_at", "expires_at"):
            if data.get(key) == ZERO_TIME:
                data[key] = None  # Dkron's zero time means "not set"
        return super().to_internal_value(data)


def _unstorable(value: Any) -> str:
    """Why a parsed JSON value cannot be stored ("" if it can): a NUL character in a string or
    key (PostgreSQL refuses it), or a float overflowing to infinity (JSON cannot encode it)."""
    stack = [value]
    while stack:  # iterative: the parser accepts nesting deeper than a recursive walk would
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "must not contain NUL characters"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "numbers must be finite"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return ""


# --- The answers: the job and execution shapes, each declared once ---------------------------
# The views answer with these serializers and drf-spectacular documents them, so the answer
# and the OpenAPI document cannot disagree. A field that is not one model attribute as it is
# stored says how it is read (`read=`, a function of the object).


class _Read:
    """Mixin for the fields below: `read(instance)` gives the value when one attribute does not."""

    def __init__(self, *args: Any, read: Callable[[Any], Any] | None = None, **kwargs: Any):
        self.read = read
        if read is not None:
            kwargs["source"] = "*"
        super().__init__(*args, **kwargs)

    def reader(self) -> Callable[[Any], Any]:
        """The function that reads this field's value from an object (once the field is bound)."""
        if self.read is not None:
            return self.read
        return _reader(self)  # type: ignore[arg-type]

    def get_attribute(self, instance: Any) -> Any:
        return self.reader()(instance)


class Time(_Read, serializers.DateTimeField):
    """A time as Dkron writes it: RFC 3339 with Z; null when unset, or with `zero` Go's zero
    time (0001-01-01T00:00:00Z), which Dkron writes for a time.Time that is not a pointer."""

    def __init__(self, *, zero: bool = False, **kwargs: Any) -> None:
        self.zero = zero
        super().__init__(**kwargs)

    def reader(self) -> Callable[[Any], Any]:
        read = super().reader()
        if not self.zero:
            return read
        # Here, not in to_representation: DRF answers null for None without asking the field.
        return lambda instance: ZERO_TIME if (value := read(instance)) is None else value

    def to_representation(self, value: Any) -> Any:
        return value if isinstance(value, str) else rfc3339(value)


class Text(_Read, serializers.CharField):
    pass


class Names(_Read, serializers.ListField):
    pass


class Map(_Read, serializers.DictField):
    pass


class Number(_Read, serializers.IntegerField):
    pass


def _dependent_names(job: Job) -> list[str] | None:
    names = getattr(job, DEPENDENT_NAMES, None)  # a page of jobs (selectors.job_page)
    if names is None:
        # The names only: whole job rows (three JSON columns and the config) cost a GET ~5 ms.
        names = list(job.dependents.values_list("name", flat=True))
    return names or None  # Go's nil slice when none


def _parent_name(job: Job) -> str:
    if not job.parent_id:
        return ""
    name = getattr(job, PARENT_NAME, None)  # a page of jobs (selectors.job_page)
    if name is not None:
        return str(name)
    return job.parent.name if job.parent else ""


def _map(help_text: str, attribute: str) -> Map:
    # Go's nil map (null) when empty, as Dkron answers for tags and metadata.
    return Map(
        child=serializers.CharField(),
        allow_null=True,
        help_text=help_text,
        read=lambda job: getattr(job, attribute) or None,
    )


class WireSerializer(serializers.Serializer):
    """A serializer for answers, rendered by a tight loop over its declared fields.

    DRF's own `Serializer.to_representation` spends more on finding each value (a generic
    attribute walk per field and object) than on the value: a 500-job page took a fifth longer.
    This loop reads each field the same way, once per field set (`operator.attrgetter` for a
    plain attribute, the field's own `get_attribute` for the others), answers None as null,
    and converts the rest with the field's `to_representation`, as DRF does;
    tests/web/api/test_wire_format.py holds the two equal.
    """

    def to_representation(self, instance: Any) -> dict[str, Any]:
        plan = self.__dict__.get("_plan")
        if plan is None:
            plan = self.__dict__["_plan"] = self._wire_plan()
        answer = {}
        for name, read, convert in plan:
            value = read(instance)
            answer[name] = None if value is None else convert(value)
        return answer

    def _wire_plan(self) -> list[tuple[str, Callable[[Any], Any], Callable[[Any], Any]]]:
        """(name, read, convert) for each field answered, in order."""
        return [
            (
                name,
                field.reader() if isinstance(field, _Read) else _reader(field),
                field.to_representation,
            )
            for name, field in self.fields.items()
            if not field.write_only
        ]


def _reader(field: serializers.Field) -> Callable[[Any], Any]:
    """How WireSerializer reads a field: as DRF's `Field.get_attribute` does, minus its
    generic walk (a Mapping check and a callable check per attribute)."""
    if isinstance(field, _Read) and field.read is not None:
        return field.read
    if not isinstance(field, _Read) and type(field).get_attribute is not _DRF_GET_ATTRIBUTE:
        return field.get_attribute  # a field of its own reading (Output...)
    if field.source == "*":
        return lambda instance: instance
    return operator.attrgetter(".".join(field.source_attrs))


_DRF_GET_ATTRIBUTE = serializers.Field.get_attribute


class JobSerializer(WireSerializer):
    """A job as the API returns it (Dkron's fields, then dkronweb's optional ones)."""

    id = serializers.CharField(source="name", help_text="Always equal to name")
    name = serializers.CharField(help_text="Lowercase letters, digits, _ and -; at most 255")
    displayname = serializers.CharField()
    timezone = serializers.CharField(help_text="IANA zone; empty means the server's zone")
    schedule = serializers.CharField(help_text="6-field cron (seconds first) or a descriptor")
    owner = serializers.CharField()
    owner_email = serializers.CharField()
    success_count = serializers.IntegerField()
    error_count = serializers.IntegerField()
    last_success = Time(allow_null=True)
    last_error = Time(allow_null=True)
    disabled = serializers.BooleanField()
    tags = _map("Node targeting: tag -> value[:count]", "tags")
    metadata = _map("Free labels, filterable with metadata[key]=value", "metadata")
    retries = serializers.IntegerField()
    dependent_jobs = Names(
        child=serializers.CharField(),
        allow_null=True,
        help_text="Children (server-maintained)",
        read=_dependent_names,
    )
    parent_job = Text(read=_parent_name)
    processors = Map(child=serializers.DictField(), read=lambda job: job.processors or {})
    concurrency = serializers.ChoiceField(choices=Concurrency.values)
    executor = serializers.CharField()
    executor_config = Map(
        help_text="Executor keys; secrets are masked",
        read=lambda job: mask_secrets(job.executor, job.executor_config or {}),
    )
    status = serializers.ChoiceField(choices=JobStatus.values)
    next = Time(
        zero=True,
        help_text="Next fire time; 0001-01-01T00:00:00Z if none",
        read=job_next_fire,
    )
    ephemeral = serializers.BooleanField()
    starts_at = Time(allow_null=True)
    expires_at = Time(allow_null=True)
    misfire_policy = serializers.ChoiceField(choices=MisfirePolicy.values)
    catchup_window = serializers.FloatField(help_text="Seconds")
    jitter = serializers.FloatField(
        help_text="Seconds: each fire starts at a stable offset within this window after its "
        "scheduled time (`next`)"
    )
    retry_backoff = serializers.FloatField(help_text="Seconds, doubled per attempt")
    history_limit = serializers.IntegerField(allow_null=True)
    notify = Map(read=lambda job: notify_schema.mask_secrets(job.notify or {}))
    missed_count = serializers.IntegerField()
    exclude_calendars = Names(
        child=serializers.CharField(),
        help_text="Calendars the job never fires inside (GET /v1/calendars)",
        read=lambda job: job.exclude_calendars or [],
    )
    only_calendars = Names(
        child=serializers.CharField(),
        help_text="Calendars the job fires only inside; empty: no such limit",
        read=lambda job: job.only_calendars or [],
    )
    concurrency_key = serializers.CharField(
        help_text="Executions holding the same key (rendered from {metadata.x}) share its "
        "concurrency_limit and rate_limit across all jobs and agents; empty: none"
    )
    concurrency_limit = serializers.IntegerField(
        allow_null=True, help_text="At most this many of the key's executions run at once"
    )
    rate_limit = serializers.CharField(
        help_text="At most N starts of the key's executions per window: N/s, N/m or N/h"
    )
    problems = Map(
        help_text="What dkronweb's validation found wrong when a restore stored the job anyway "
        "(key -> message); its runs fail with it until an upsert that validates clears it",
        read=lambda job: job.problems or {},
    )
    params = Names(
        # Any JSON items, not objects only: a restore stores a wrong-shaped declaration with
        # its problems, and it reads back as it was sent.
        child=serializers.JSONField(),
        help_text="Declared run parameters (jobs.params): a list of {name, type, default, "
        "required, description, choices}; [] when none",
        read=lambda job: job.params if isinstance(job.params, list) else [],
    )

    sla = Map(
        help_text="SLA rules (docs/jobs.md, SLA and alerts): start_within, max_duration, "
        "kill_after, success_within, consecutive_failures; {} when none",
        read=lambda job: job.sla if isinstance(job.sla, dict) else {},
    )

    def _wire_plan(self) -> list[tuple[str, Callable[[Any], Any], Callable[[Any], Any]]]:
        # No job field reads the context, so one plan serves every JobSerializer: its fields
        # are bound once, to a serializer holding no data, not copied again for each answer.
        if type(self) is not JobSerializer:
            return super()._wire_plan()
        if not _JOB_PLAN:
            _JOB_PLAN[:] = WireSerializer._wire_plan(JobSerializer())
        return _JOB_PLAN


_JOB_PLAN: list[tuple[str, Callable[[Any], Any], Callable[[Any], Any]]] = []


def job_to_dict(job: Job) -> dict[str, Any]:
    """One job as the API answers it (`JobSerializer`)."""
    return JobSerializer(job).data


def _tail(text: str, limit: int | None) -> tuple[str, bool]:
    if limit is None:
        return text, False
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text, False
    # Not data[-limit:]: with a limit of 0 that is the whole output, where Dkron answers "".
    return data[len(data) - limit :].decode("utf-8", "ignore"), True


class Output(serializers.CharField):
    """The output, or its last `output_limit` bytes (the serializer's context) when asked."""

    def get_attribute(self, instance: Any) -> Any:
        return _tail(instance.output, self.context.get("output_limit"))[0]


class OutputTruncated(serializers.BooleanField):
    """Whether the agent cut the output when storing it, or `output_limit` cuts it now."""

    def get_attribute(self, instance: Any) -> Any:
        cut = _tail(instance.output, self.context.get("output_limit"))[1]
        return cut or instance.output_truncated


def execution_params(execution: Any) -> dict[str, Any] | None:
    """The run's parameters: annotated by the list selectors (`selectors.RUN_PARAMS`, one
    JSON key instead of the whole snapshot), else read from the run."""
    values = getattr(execution, RUN_PARAMS, _UNREAD)
    if values is _UNREAD:
        values = (execution.run.snapshot or {}).get("params")
    return values if isinstance(values, dict) else None


_UNREAD = object()


def execution_revision(execution: Any) -> int | None:
    """The job revision the run ran (jobs.services.revisions): annotated by the list
    selectors (`selectors.RUN_REVISION`), else read from the run; None for a run from before
    revisions were recorded."""
    number: Any = getattr(execution, RUN_REVISION, _UNREAD)
    if number is _UNREAD:
        number = execution.run.revision
    return number or None


class ExecutionSerializer(WireSerializer):
    """An execution as the API returns it (string id, zero finished_at while running)."""

    # Every key is always there, `output` too: Dkron omits an empty output (`omitempty`), and a
    # client that reads `output` from a queued execution crashed on the missing key. The
    # context's `output_limit` keeps the last that many bytes of each output (marked truncated).

    id = serializers.CharField(source="pk", help_text="Execution id, as a string")
    job_name = serializers.CharField()
    started_at = Time(zero=True, help_text="Zero time while queued")
    finished_at = Time(zero=True, help_text="Zero time while queued or running")
    success = serializers.BooleanField()
    node_name = serializers.CharField()
    group = serializers.IntegerField(
        source="run_id", help_text="The run (fire) this execution belongs to"
    )
    attempt = serializers.IntegerField()
    output_truncated = OutputTruncated()
    status = serializers.ChoiceField(choices=ExecutionStatus.values)
    scheduled_at = Time(allow_null=True)
    reason = serializers.CharField()
    waiting = serializers.CharField(
        help_text="Why a queued execution is held back: 'key' (its concurrency key is at its "
        "limit or rate), 'slot' (every matching agent is full); empty otherwise"
    )
    output = Output(help_text="Empty while queued or when nothing was written")
    params = Map(
        allow_null=True,
        help_text="The parameters the run ran with; null when its job declares none",
        read=execution_params,
    )
    revision = Number(
        allow_null=True,
        help_text="The job revision the run ran (GET /v1/jobs/{name}/revisions/{n}); null for "
        "runs from before revisions were recorded",
        read=execution_revision,
    )


class RunBodySerializer(serializers.Serializer):
    """The optional body of a run now (for the OpenAPI document; the service checks it)."""

    params = serializers.DictField(
        required=False,
        help_text="name: value for the job's declared parameters (jobs.params); the rest "
        "take their defaults",
    )


class MemberSerializer(serializers.Serializer):
    Name = serializers.CharField()
    Addr = serializers.CharField()
    Port = serializers.IntegerField()
    Tags = serializers.DictField(child=serializers.CharField())
    Status = serializers.IntegerField(help_text="Serf status: 1 alive, 3 left, 4 failed")
    statusText = serializers.ChoiceField(choices=["alive", "leaving", "failed", "left"])
    slots = serializers.IntegerField(
        help_text="Executions it runs at once (--slots, default its pool concurrency)"
    )
    slots_used = serializers.IntegerField(help_text="Of those, running now")


class StatusSerializer(serializers.Serializer):
    agent = serializers.DictField(child=serializers.CharField())
    serf = serializers.DictField(child=serializers.CharField())
    tags = serializers.DictField(child=serializers.CharField())


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    details = serializers.DictField()
