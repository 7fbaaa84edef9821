"""Dkron-shaped JSON: input validation (types only; rules live in services) and output."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from rest_framework import serializers

from executors.registry import mask_secrets
from executors.values import parse_go_duration
from jobs.models import Execution, Job
from jobs.notifications import schema as notify_schema
from jobs.timeutil import ZERO_TIME, rfc3339

DATETIME_FORMATS = ["iso-8601", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]


class StringValueField(serializers.Field):
    """A Dkron map value: strings, and (beyond Dkron) numbers and booleans kept as strings."""

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool):
            return "true" if data else "false"
        if isinstance(data, (str, int, float)):
            return str(data)
        raise serializers.ValidationError("must be a string, number or boolean")

    def to_representation(self, value: Any) -> Any:
        return value


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
    # Not trimmed: " job1" has an illegal character and is refused, as in Dkron.
    name = serializers.CharField(max_length=255, allow_blank=True, trim_whitespace=False)
    displayname = _text(max_length=255)
    schedule = _text(max_length=255)
    timezone = _text(max_length=64)
    owner = _text(max_length=255)
    owner_email = _text(max_length=255)
    disabled = serializers.BooleanField(required=False, allow_null=True)
    tags = serializers.DictField(child=StringValueField(), required=False, allow_null=True)
    metadata = serializers.DictField(child=StringValueField(), required=False, allow_null=True)
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
    history_limit = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    notify = serializers.DictField(required=False, allow_null=True)

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        # Neither the database nor JSON can hold these; refuse them before any field sees them.
        bad = {k: [reason] for k, v in data.items() if (reason := _unstorable(v))}
        if bad:
            raise serializers.ValidationError(bad)
        data = {**data}
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


def job_to_dict(job: Job, *, dependents: list[str] | None = None) -> dict[str, Any]:
    """The job as Dkron returns it, plus dkronweb's optional fields."""
    if dependents is None:
        dependents = [d.name for d in job.dependents.all()]
    parent_name = job.parent.name if job.parent_id and job.parent else ""
    return {
        "id": job.name,
        "name": job.name,
        "displayname": job.displayname,
        "timezone": job.timezone,
        "schedule": job.schedule,
        "owner": job.owner,
        "owner_email": job.owner_email,
        "success_count": job.success_count,
        "error_count": job.error_count,
        "last_success": rfc3339(job.last_success),
        "last_error": rfc3339(job.last_error),
        "disabled": job.disabled,
        "tags": job.tags or None,
        "metadata": job.metadata or None,
        "retries": job.retries,
        "dependent_jobs": dependents or None,
        "parent_job": parent_name,
        "processors": job.processors or {},
        "concurrency": job.concurrency,
        "executor": job.executor,
        "executor_config": mask_secrets(job.executor, job.executor_config or {}),
        "status": job.status,
        "next": rfc3339(job.next_run, zero=True),
        "ephemeral": job.ephemeral,
        "starts_at": rfc3339(job.starts_at),
        "expires_at": rfc3339(job.expires_at),
        "misfire_policy": job.misfire_policy,
        "catchup_window": job.catchup_window,
        "retry_backoff": job.retry_backoff,
        "history_limit": job.history_limit,
        "notify": notify_schema.mask_headers(job.notify or {}),
        "missed_count": job.missed_count,
    }


def _tail(text: str, limit: int | None) -> tuple[str, bool]:
    if limit is None:
        return text, False
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text, False
    # Not data[-limit:]: with a limit of 0 that is the whole output, where Dkron answers "".
    return data[len(data) - limit :].decode("utf-8", "ignore"), True


def execution_to_dict(execution: Execution, *, output_limit: int | None = None) -> dict[str, Any]:
    """An execution as Dkron returns it (string id, zero finished_at while running).

    Every key is always there, `output` too: Dkron omits an empty output (`omitempty`), and a
    client that reads `output` from a queued execution crashed on the missing key."""
    output, cut = _tail(execution.output, output_limit)
    started: datetime | None = execution.started_at
    return {
        "id": str(execution.pk),
        "job_name": execution.job_name,
        "started_at": rfc3339(started, zero=True),
        "finished_at": rfc3339(execution.finished_at, zero=True),
        "success": execution.success,
        "node_name": execution.node_name,
        "group": execution.run_id,
        "attempt": execution.attempt,
        "output_truncated": cut or execution.output_truncated,
        "status": execution.status,
        "scheduled_at": rfc3339(execution.scheduled_at),
        "reason": execution.reason,
        "output": output,
    }


# --- Response shapes, for the OpenAPI document (the views render with the functions above) ---


def _map(help_text: str) -> serializers.DictField:
    return serializers.DictField(
        child=serializers.CharField(), allow_null=True, help_text=help_text
    )


class JobSerializer(serializers.Serializer):
    """A job as the API returns it (Dkron's fields, then dkronweb's optional ones)."""

    id = serializers.CharField(help_text="Always equal to name")
    name = serializers.CharField(help_text="Lowercase letters, digits, _ and -; at most 255")
    displayname = serializers.CharField()
    timezone = serializers.CharField(help_text="IANA zone; empty means the server's zone")
    schedule = serializers.CharField(help_text="6-field cron (seconds first) or a descriptor")
    owner = serializers.CharField()
    owner_email = serializers.CharField()
    success_count = serializers.IntegerField()
    error_count = serializers.IntegerField()
    last_success = serializers.DateTimeField(allow_null=True)
    last_error = serializers.DateTimeField(allow_null=True)
    disabled = serializers.BooleanField()
    tags = _map("Node targeting: tag -> value[:count]")
    metadata = _map("Free labels, filterable with metadata[key]=value")
    retries = serializers.IntegerField()
    dependent_jobs = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="Children (server-maintained)"
    )
    parent_job = serializers.CharField()
    processors = serializers.DictField(child=serializers.DictField())
    concurrency = serializers.ChoiceField(choices=["allow", "forbid", "replace"])
    executor = serializers.CharField()
    executor_config = serializers.DictField(help_text="Executor keys; secrets are masked")
    status = serializers.ChoiceField(
        choices=["", "success", "failed", "partially_failed", "running"]
    )
    next = serializers.DateTimeField(help_text="Next fire time; 0001-01-01T00:00:00Z if none")
    ephemeral = serializers.BooleanField()
    starts_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    misfire_policy = serializers.ChoiceField(choices=["skip", "run_once", "run_all"])
    catchup_window = serializers.FloatField(help_text="Seconds")
    retry_backoff = serializers.FloatField(help_text="Seconds, doubled per attempt")
    history_limit = serializers.IntegerField(allow_null=True)
    notify = serializers.DictField()
    missed_count = serializers.IntegerField()


class ExecutionSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Execution id, as a string")
    job_name = serializers.CharField()
    started_at = serializers.DateTimeField(help_text="Zero time while queued")
    finished_at = serializers.DateTimeField(help_text="Zero time while queued or running")
    success = serializers.BooleanField()
    node_name = serializers.CharField()
    group = serializers.IntegerField(help_text="The run (fire) this execution belongs to")
    attempt = serializers.IntegerField()
    output_truncated = serializers.BooleanField()
    status = serializers.ChoiceField(
        choices=["queued", "running", "success", "failed", "timeout", "killed", "skipped"]
    )
    scheduled_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField()
    output = serializers.CharField(help_text="Empty while queued or when nothing was written")


class MemberSerializer(serializers.Serializer):
    Name = serializers.CharField()
    Addr = serializers.CharField()
    Port = serializers.IntegerField()
    Tags = serializers.DictField(child=serializers.CharField())
    Status = serializers.IntegerField(help_text="Serf status: 1 alive, 3 left, 4 failed")
    statusText = serializers.ChoiceField(choices=["alive", "failed", "left"])


class StatusSerializer(serializers.Serializer):
    agent = serializers.DictField(child=serializers.CharField())
    serf = serializers.DictField(child=serializers.CharField())
    tags = serializers.DictField(child=serializers.CharField())


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    details = serializers.DictField()
