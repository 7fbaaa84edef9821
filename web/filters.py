"""The list filters of /v1/jobs, /v1/jobs/{name}/executions and the UI's job list, parsed once.

Dkron's filters arrive as query strings (the API) or form fields (the UI). One serializer per
list reads them into the typed values the selectors take (`JobFilters`, `ExecutionFilters`), so
no selector looks at raw parameters. A bad value is a `DomainError` (a 400 in the API, a message
in the UI) with Dkron-style wording; when several values are bad, the first in the order the
fields are declared is reported, which is the order the lists have always checked them in.

Numbers are read with Python's `int()` on purpose, as they always were (so `3_0` is 30 and
`1.0` is refused); DRF's IntegerField would accept `1.0`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from rest_framework import serializers

from jobs.errors import DomainError
from jobs.models import JobStatus
from jobs.selectors import EXECUTION_SORTS, JOB_SORTS, ExecutionFilters, JobFilters, PageSlice

# Dkron's `?status=` names: the model's values, with "untriggered" for a job never run.
JOB_STATUS_FILTERS: dict[str, str] = {
    **{s.value: s.value for s in JobStatus if s.value},
    "untriggered": JobStatus.UNTRIGGERED.value,
}
_NAMES = list(JOB_STATUS_FILTERS)
STATUS_MESSAGE = f"status must be {', '.join(_NAMES[:-1])} or {_NAMES[-1]}"
BOOLEANS = ("true", "false")
T = TypeVar("T")


def _values(params: Mapping[str, Any], key: str) -> list[Any]:
    return params.getlist(key) if hasattr(params, "getlist") else [params[key]]


def _refuse_nul(params: Mapping[str, Any]) -> None:
    """The database cannot compare with NUL characters; such a parameter is a 400."""
    for key in params:
        if "\x00" in key or any("\x00" in str(v) for v in _values(params, key)):
            raise DomainError("query parameters must not contain NUL characters", {key: "NUL"})


def _text(default: str = "") -> serializers.CharField:
    # Compared as given: Dkron's q is an exact substring, and "DESC " is not "DESC".
    return serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, default=default
    )


def _choice(choices: Any, message: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=list(choices),
        required=False,
        allow_blank=True,
        default="",
        error_messages={"invalid_choice": message},
    )


class _PythonInt(serializers.Field):
    """An optional integer as `int()` reads it; blank or absent is None."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(required=False, default=None, **kwargs)
        self.message = message

    def to_internal_value(self, data: Any) -> int | None:
        if data in (None, ""):
            return None
        try:
            return int(data)
        except (TypeError, ValueError):
            raise serializers.ValidationError(self.message) from None


class _Paging(serializers.Field):
    """react-admin's `_start`/`_end` read together: both must be integers before either's sign
    is looked at, so `_start=-1&_end=x` says "integers", as it always has."""

    def __init__(self) -> None:
        super().__init__(source="*", required=False)

    def get_value(self, dictionary: Mapping[str, Any]) -> Any:
        return {key: dictionary.get(key) for key in ("_start", "_end")}

    def to_internal_value(self, data: dict[str, Any]) -> dict[str, PageSlice]:
        try:
            start = int(data["_start"] or 0)
            end = None if not data["_end"] else int(data["_end"])
        except (TypeError, ValueError):
            raise serializers.ValidationError("_start and _end must be integers") from None
        if start < 0 or (end is not None and end < 0):
            raise serializers.ValidationError("_start and _end must not be negative")
        given = data["_start"] is not None or data["_end"] is not None
        return {"page": PageSlice(start, end, given)}


class _Filter(serializers.Serializer, Generic[T]):
    """A filter serializer: `parse` answers the typed filters or raises the first error."""

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> T:
        _refuse_nul(params)
        serializer = cls(data=params)
        if not serializer.is_valid():
            first = next(iter(serializer.errors.values()))
            raise DomainError(str(first[0]))
        return serializer.typed(serializer.validated_data, params)

    def typed(self, values: dict[str, Any], params: Mapping[str, Any]) -> T:
        raise NotImplementedError


class JobListFilter(_Filter[JobFilters]):
    """GET /v1/jobs: metadata[k]=v (AND), q, status, disabled, executor, _sort/_order."""

    q = _text()
    status = _choice(JOB_STATUS_FILTERS, STATUS_MESSAGE)
    disabled = _choice(BOOLEANS, "disabled must be true or false")
    executor = _text()
    _sort = _choice(
        JOB_SORTS, f"cannot sort by '{{input}}'; use one of {', '.join(sorted(JOB_SORTS))}"
    )
    _order = _text("ASC")

    def typed(self, values: dict[str, Any], params: Mapping[str, Any]) -> JobFilters:
        metadata = [
            (key[len("metadata[") : -1], str(value))
            for key in params
            if key.startswith("metadata[") and key.endswith("]")
            for value in _values(params, key)
        ]
        status = values["status"]
        return JobFilters(
            metadata=metadata,
            q=values["q"],
            status=None if not status else JOB_STATUS_FILTERS[status],
            disabled=None if not values["disabled"] else values["disabled"] == "true",
            executor=values["executor"],
            sort=values["_sort"] or "name",
            descending=values["_order"].upper() == "DESC",
        )


class JobPageFilter(_Filter[PageSlice]):
    """The `_start`/`_end` slice of GET /v1/jobs, read after the filters (as Dkron)."""

    paging = _Paging()

    def typed(self, values: dict[str, Any], params: Mapping[str, Any]) -> PageSlice:
        page: PageSlice = values["page"]
        return page


class ExecutionListFilter(_Filter[ExecutionFilters]):
    """GET /v1/jobs/{name}/executions: _sort/_order, group, _start/_end, output_size_limit."""

    _sort = _choice(EXECUTION_SORTS, "cannot sort executions by '{input}'")
    _order = _text("DESC")
    group = _PythonInt("group must be an integer")
    paging = _Paging()
    output_size_limit = _PythonInt("output_size_limit must be an integer")

    def validate_group(self, value: int | None) -> int | None:
        # Only plain digits: no sign, no underscores, no Unicode digits ("²" is a digit to
        # str.isdigit but not to int()).
        raw = self.initial_data.get("group")
        if value is not None and not (raw.isascii() and raw.isdigit()):
            raise serializers.ValidationError("group must be an integer")
        return value

    def validate_output_size_limit(self, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise serializers.ValidationError("output_size_limit must not be negative")
        return value

    def typed(self, values: dict[str, Any], params: Mapping[str, Any]) -> ExecutionFilters:
        return ExecutionFilters(
            sort=values["_sort"] or "id",
            descending=values["_order"].upper() == "DESC",
            group=values["group"],
            page=values["page"],
            output_limit=values["output_size_limit"],
        )
