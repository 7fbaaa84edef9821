"""The job form: Django fields for the job, and the executor's config fields from its schema.

The form only turns what the browser sent into the dict the API would receive; every rule
(names, schedules, executor configs, the run-code permission) is checked by
`job_services.job_upsert`, whose errors `apply_service_error` places next to the fields.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS

from executors import registry
from executors.values import parse_bool, parse_go_duration
from jobs import schedule as sched
from jobs.errors import DomainError
from jobs.models import Calendar, Concurrency, Job, MisfirePolicy
from jobs.notifications import schema as notify_schema
from jobs.sla import KEYS as SLA_KEYS
from web.ui.schema_widgets import Widget, config_schema, label_for, widget_for

SECRET_KEPT_HELP = "Stored; leave empty to keep the stored value."
DATETIME_INPUT = "%Y-%m-%dT%H:%M:%S"
DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)


def disabled_executors() -> set[str]:
    return set(settings.DKRON["DISABLED_EXECUTORS"])


def executor_names() -> list[str]:
    return registry.available(disabled_executors())


def job_zone(timezone: str) -> ZoneInfo:
    """The zone a job's times are entered and shown in (the server's when the job has none)."""
    try:
        return sched.validate_timezone(timezone or "", default_tz=settings.TIME_ZONE)
    except sched.ScheduleError:
        return ZoneInfo("UTC")


# --- executor config fields ------------------------------------------------------------------


@dataclass
class ConfigField:
    """One input of the executor's config, described from its JSON schema (schema_widgets)."""

    key: str  # Dkron's key (the alias), posted as `config.<key>`
    attr: str  # the pydantic attribute name (also accepted as a key)
    label: str
    kind: str  # text, number, checkbox, select, textarea, password (schema_widgets.Widget)
    required: bool
    help: str
    default: Any = None
    choices: list[tuple[str, str]] = field(default_factory=list)
    step: str = ""
    json: bool = False  # a textarea whose JSON array or object is sent decoded
    value: str = ""
    checked: bool = False
    stored_secret: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def input_name(self) -> str:
        return f"config.{self.key}"

    @property
    def input_id(self) -> str:
        return "config-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.key)

    @property
    def select_choices(self) -> list[tuple[str, str]]:
        """The choices, plus a stored value that is none of them (shown as it is)."""
        if self.value and self.value not in {v for v, _ in self.choices}:
            return [*self.choices, (self.value, f"{self.value} (as stored)")]
        return self.choices

    @property
    def placeholder(self) -> str:
        if self.kind in ("checkbox", "select", "password") or not self.default:
            return ""
        return f"default: {_display(self.default)}"


def _display(value: Any) -> str:
    """A config value as the user sees and edits it; Dkron's strings stay as they are."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return str(value)


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return bool(value)
    text = str(value).strip()
    try:
        return parse_bool(text)
    except ValueError:
        return text.lower() in {"yes", "y", "on"}


def _config_field(
    key: str, prop: Mapping[str, Any], *, attr: str, required: bool, widget: Widget
) -> ConfigField:
    choices = [(v, v) for v in widget.choices]
    default = prop.get("default")
    if widget.kind == "select":
        blank = "choose…" if required else f"default ({_display(default)})"
        choices = [("", blank), *choices]
    return ConfigField(
        key=key,
        attr=attr,
        label=label_for(key, prop),
        kind=widget.kind,
        required=required,
        help=str(prop.get("description") or ""),
        default=default,
        choices=choices,
        step=widget.step,
        json=widget.json,
    )


def schema_fields(executor: str) -> list[ConfigField] | None:
    """Blank fields of the executor's config schema; None when the executor is not available."""
    try:
        cls = registry.executor_class(executor, disabled_executors())
    except (registry.UnknownExecutor, ImportError, TypeError):
        return None
    model = cls.config_schema
    schema = config_schema(model)
    required = set(schema.get("required", ()))
    # The attribute name is accepted as a key too (populate_by_name): found under either.
    attrs = {info.alias or name: name for name, info in model.model_fields.items()}
    return [
        _config_field(
            key,
            prop,
            attr=attrs.get(key, key),
            required=key in required,
            widget=widget_for(key, prop, secret=key in cls.secret_keys, defs=schema.get("$defs")),
        )
        for key, prop in schema.get("properties", {}).items()
    ]


def executor_description(executor: str) -> str:
    try:
        return registry.executor_class(executor, disabled_executors()).description
    except (registry.UnknownExecutor, ImportError, TypeError):
        return ""


def _field_for(fields: list[ConfigField], key: str) -> ConfigField | None:
    for f in fields:
        if key in (f.key, f.attr):
            return f
    return None


def fill_from_config(
    fields: list[ConfigField], config: Mapping[str, Any], *, keep_secrets: bool
) -> dict[str, Any]:
    """Show a stored config in the fields; returns the keys that have no field (extra)."""
    extra: dict[str, Any] = {}
    for key, value in config.items():
        f = _field_for(fields, key)
        if f is None:
            extra[key] = value
        elif f.kind == "password":
            f.stored_secret = keep_secrets and value not in (None, "")
        elif f.kind == "checkbox":
            f.checked = _truthy(value)
        else:
            f.value = _display(value)
    for f in fields:
        if f.kind == "checkbox" and _field_for_key(config, f) is None:
            f.checked = _truthy(f.default)
        if f.kind == "password" and f.stored_secret:
            f.help = f"{f.help} {SECRET_KEPT_HELP}".strip()
    return extra


def _field_for_key(config: Mapping[str, Any], f: ConfigField) -> Any:
    if f.key in config:
        return config[f.key]
    return config.get(f.attr)


def fill_defaults(fields: list[ConfigField]) -> None:
    for f in fields:
        if f.kind == "checkbox":
            f.checked = _truthy(f.default)


def fill_from_post(fields: list[ConfigField], post: Mapping[str, Any]) -> None:
    for f in fields:
        if f.kind == "checkbox":
            f.checked = f.input_name in post
        elif f.kind != "password":  # secrets are never echoed back
            f.value = str(post.get(f.input_name, ""))


def config_from_fields(fields: list[ConfigField], post: Mapping[str, Any]) -> dict[str, Any]:
    """The executor_config the form means: empty inputs and unchanged flags are left out, so
    the schema's defaults apply (and an empty secret keeps the stored one)."""
    config: dict[str, Any] = {}
    for f in fields:
        if f.kind == "checkbox":
            if f.checked != _truthy(f.default):
                config[f.key] = f.checked
            continue
        raw = str(post.get(f.input_name, "")) if f.kind == "password" else f.value
        if raw == "":
            continue
        if f.json:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            config[f.key] = parsed if isinstance(parsed, (dict, list)) else raw
        elif f.kind == "number":
            config[f.key] = _number(raw, integer=f.step == "1")
        else:
            config[f.key] = raw
    return config


def _number(raw: str, *, integer: bool) -> Any:
    text = raw.strip()
    try:
        return int(text) if integer else float(text)
    except ValueError:
        return raw  # the schema says what is wrong with it


# --- the job form ----------------------------------------------------------------------------


def _seconds(text: str, what: str) -> float:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            value = parse_go_duration(text).total_seconds()
        except ValueError as exc:
            raise forms.ValidationError(f"{what}: {exc}") from None
    if not math.isfinite(value):
        raise forms.ValidationError(f"{what}: must be seconds or a duration such as 1h")
    if value < 0:
        raise forms.ValidationError("must not be negative")
    return value


def _parse_datetime(text: str, zone: ZoneInfo) -> datetime:
    value: datetime | None = None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        for fmt in DATETIME_FORMATS:
            try:
                value = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if value is None:
        raise forms.ValidationError("use YYYY-MM-DD HH:MM[:SS]")
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value


def _rows(source: Mapping[str, Any] | None, prefix: str) -> list[tuple[str, str]]:
    if source is None or not hasattr(source, "getlist"):
        return []
    keys = source.getlist(f"{prefix}_key")
    values = source.getlist(f"{prefix}_value")
    values += [""] * (len(keys) - len(values))
    pairs = [(str(k), str(v)) for k, v in zip(keys, values, strict=False)]
    return [(k, v) for k, v in pairs if k.strip() or v.strip()]  # the blank row is re-added


def _text(label: str, help_text: str = "", **kw: Any) -> forms.CharField:
    return forms.CharField(label=label, required=False, help_text=help_text, strip=False, **kw)


class JobForm(forms.Form):
    """The job's own fields; tags/metadata rows and the executor config ride along."""

    name = forms.CharField(
        label="Name",
        max_length=255,
        strip=False,
        help_text="Lowercase letters, digits, _ and -.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    displayname = _text("Display name", max_length=255)
    schedule = _text(
        "Schedule",
        "6 fields, seconds first (0 30 9 * * mon-fri), or @every 10m, @daily, @at <time>, "
        "@manually. Leave empty for a job that runs only after its parent.",
        max_length=255,
        widget=forms.TextInput(attrs={"spellcheck": "false", "class": "mono"}),
    )
    timezone = _text(
        "Time zone",
        "IANA name, e.g. Europe/Berlin; empty means the server's zone.",
        max_length=64,
        widget=forms.TextInput(attrs={"list": "tz-list", "autocomplete": "off"}),
    )
    executor = forms.CharField(label="Executor", max_length=64)
    owner = _text("Owner", max_length=255)
    owner_email = _text(
        "Owner email", max_length=255, widget=forms.EmailInput(attrs={"autocomplete": "off"})
    )
    retries = forms.IntegerField(
        label="Retries",
        required=False,
        min_value=0,
        max_value=1000,
        help_text="Extra attempts after a failed attempt.",
    )
    retry_backoff = _text(
        "Retry backoff", "Seconds (or 30s, 1m) before the first retry; doubled each attempt."
    )
    concurrency = forms.ChoiceField(
        label="Concurrency",
        choices=Concurrency.choices,
        help_text="allow overlapping runs, forbid them (skip), or replace the running one.",
    )
    parent_job = _text(
        "Parent job",
        "Run after this job succeeds (a child is not scheduled on its own).",
        max_length=255,
        widget=forms.TextInput(attrs={"list": "job-names", "autocomplete": "off"}),
    )
    disabled = forms.BooleanField(label="Disabled", required=False)
    ephemeral = forms.BooleanField(
        label="Ephemeral", required=False, help_text="Delete the job after its first success."
    )
    misfire_policy = forms.ChoiceField(
        label="Misfire policy",
        choices=MisfirePolicy.choices,
        help_text="Fire times missed while no scheduler ran: skip, run once, or run all.",
    )
    catchup_window = _text("Catch-up window", "How far back catch-up looks (seconds or 1h).")
    jitter = _text(
        "Jitter",
        "Spread each fire over this window after its time (seconds or 5m); 0 for none.",
    )
    # Concurrency keys (jobs.concurrency): the service judges them (a key needs a limit or a
    # rate, the rate's form, the metadata a key names), its messages land next to these.
    concurrency_key = _text(
        "Concurrency key",
        "Executions holding the same key share its limits across all jobs and agents; "
        "{metadata.x} is replaced by this job's metadata x (e.g. db:{metadata.db}). "
        "Empty for none.",
        max_length=255,
        widget=forms.TextInput(attrs={"spellcheck": "false", "class": "mono"}),
    )
    concurrency_limit = forms.IntegerField(
        label="Concurrency limit",
        required=False,
        max_value=1_000_000,
        help_text="At most this many executions holding the key run at once; empty for no limit.",
    )
    rate_limit = _text(
        "Rate limit",
        "At most N starts of the key's executions per second, minute or hour: N/s, N/m or "
        "N/h (e.g. 10/m); empty for none.",
        max_length=32,
        widget=forms.TextInput(attrs={"spellcheck": "false", "class": "mono"}),
    )
    # SLA rules (jobs.sla): sent as the job's `sla`, judged by the service, its messages
    # placed next to these (apply_service_error).
    sla_start_within = _text(
        "Start within",
        "A fire not started this long after its time is late (e.g. 5m); empty for no rule.",
        max_length=64,
    )
    sla_max_duration = _text(
        "Max duration", "A run still going after this is overdue (e.g. 1h).", max_length=64
    )
    sla_kill_after = _text(
        "Kill after",
        "Kill a run still going this long after it started (at least the max duration).",
        max_length=64,
    )
    sla_success_within = _text(
        "Success within",
        "Alert when the job has not succeeded for this long (e.g. 26h): a dead man's switch.",
        max_length=64,
    )
    sla_consecutive_failures = forms.IntegerField(
        label="Consecutive failures",
        required=False,
        help_text="Alert after this many failed runs in a row.",
    )
    history_limit = forms.IntegerField(
        label="History limit",
        required=False,
        min_value=1,
        max_value=1_000_000,
        help_text="Executions kept; empty for the server's default.",
    )
    starts_at = _text(
        "Starts at",
        "In the job's time zone; no scheduled runs before.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
    )
    expires_at = _text(
        "Expires at",
        "In the job's time zone; no scheduled runs after.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
    )
    extra_json = _text(
        "Other config keys (JSON)",
        "A JSON object of executor_config keys the form has no field for.",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
    )
    processors_json = _text(
        "Processors (JSON)",
        'e.g. {"log": {"forward": "true"}}',
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
    )
    notify_json = _text(
        "Notifications (JSON)",
        'e.g. {"on": "on_failure", "emails": ["ops@example.com"]}',
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
    )
    # Run parameters (jobs.params): a JSON list; the service checks each entry.
    params_json = _text(
        "Run parameters (JSON)",
        'A list, e.g. [{"name": "region", "type": "choice", "choices": ["eu", "us"], '
        '"default": "eu"}]; types string, int, bool, choice. Runs get DKRON_PARAM_REGION '
        "and {{ params.region }} in config values.",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
    )

    # Calendars (jobs.calendars): the choices are the calendars that exist, read per form.
    exclude_calendars = forms.MultipleChoiceField(
        label="Exclude calendars",
        required=False,
        help_text="Never fire inside these calendars (holidays, blackout windows).",
        widget=forms.SelectMultiple(attrs={"size": 4}),
    )
    only_calendars = forms.MultipleChoiceField(
        label="Only calendars",
        required=False,
        help_text="If any is chosen, fire only inside one of them (business hours).",
        widget=forms.SelectMultiple(attrs={"size": 4}),
    )

    ROW_LABELS = {"tags": "Tags", "metadata": "Metadata"}
    # The service judges every rule; a browser's own checks would hide its messages.
    use_required_attribute = False

    def __init__(
        self,
        data: Any = None,
        *,
        initial: Mapping[str, Any] | None = None,
        rows: Mapping[str, list[tuple[str, str]]] | None = None,
        rows_from: Any = None,
        name_readonly: bool = False,
    ) -> None:
        super().__init__(data, initial=dict(initial) if initial is not None else None)
        self.name_readonly = name_readonly
        if name_readonly:
            self.fields["name"].required = False
            self.fields["name"].widget.attrs["readonly"] = True
            self.fields["name"].help_text = "The name of an existing job cannot change."
        source = data if data is not None else rows_from
        self.tag_rows = _rows(source, "tags") if source is not None else []
        self.metadata_rows = _rows(source, "metadata") if source is not None else []
        if source is None and rows:
            self.tag_rows = list(rows.get("tags", []))
            self.metadata_rows = list(rows.get("metadata", []))
        self.row_errors: dict[str, list[str]] = {"tags": [], "metadata": []}
        self.config_fields: list[ConfigField] = []
        calendar_names = [(n, n) for n in Calendar.objects.values_list("name", flat=True)]
        self.fields["exclude_calendars"].choices = calendar_names  # type: ignore[attr-defined]
        self.fields["only_calendars"].choices = calendar_names  # type: ignore[attr-defined]

    # -- validation of what only the form knows (types, JSON, rows) --

    def _map(self, prefix: str) -> dict[str, str]:
        rows = self.tag_rows if prefix == "tags" else self.metadata_rows
        result: dict[str, str] = {}
        for key, value in rows:
            k = key.strip()
            if not k and not value.strip():
                continue
            if not k:
                self.row_errors[prefix].append(f"a value ({value!r}) has no key")
            elif k in result:
                self.row_errors[prefix].append(f"key {k!r} appears twice")
            else:
                result[k] = value.strip()
        return result

    def _json_object(self, field_name: str) -> dict[str, Any]:
        text = (self.cleaned_data.get(field_name) or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object ({...})")
        return value

    def _json_list(self, field_name: str) -> list[Any]:
        text = (self.cleaned_data.get(field_name) or "").strip()
        if not text:
            return []
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from None
        if not isinstance(value, list):
            raise forms.ValidationError("must be a JSON list ([{...}, ...])")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        zone = job_zone(str(data.get("timezone") or ""))
        for name in ("starts_at", "expires_at"):
            text = (data.get(name) or "").strip()
            try:
                data[name] = _parse_datetime(text, zone) if text else None
            except forms.ValidationError as exc:
                self.add_error(name, exc)
        for name, what in (
            ("retry_backoff", "retry backoff"),
            ("catchup_window", "window"),
            ("jitter", "jitter"),
        ):
            text = (data.get(name) or "").strip()
            try:
                data[name] = _seconds(text, what) if text else None
            except forms.ValidationError as exc:
                self.add_error(name, exc)
        for name in ("extra_json", "processors_json", "notify_json"):
            try:
                data[name] = self._json_object(name)
            except forms.ValidationError as exc:
                self.add_error(name, exc)
        try:
            data["params_json"] = self._json_list("params_json")
        except forms.ValidationError as exc:
            self.add_error("params_json", exc)
        data["tags"] = self._map("tags")
        data["metadata"] = self._map("metadata")
        if any(self.row_errors.values()):
            raise forms.ValidationError("fix the tag and metadata rows")
        return data

    def has_problems(self) -> bool:
        return bool(self.errors) or any(self.row_errors.values()) or self.config_has_errors()

    def config_has_errors(self) -> bool:
        return any(f.errors for f in self.config_fields)

    def job_data(self, *, name: str) -> dict[str, Any]:
        """The dict the API would hand to job_upsert."""
        d = self.cleaned_data
        config = config_from_fields(self.config_fields, self.data)
        for key, value in d["extra_json"].items():
            config.setdefault(key, value)
        return {
            "name": name,
            "displayname": d.get("displayname") or "",
            "schedule": (d.get("schedule") or "").strip(),
            "timezone": (d.get("timezone") or "").strip(),
            "owner": d.get("owner") or "",
            "owner_email": (d.get("owner_email") or "").strip(),
            "disabled": bool(d.get("disabled")),
            "tags": d["tags"],
            "metadata": d["metadata"],
            "retries": d.get("retries"),
            "retry_backoff": d.get("retry_backoff"),
            "concurrency": d.get("concurrency"),
            "executor": (d.get("executor") or "").strip(),
            "executor_config": config,
            "processors": d["processors_json"],
            "parent_job": (d.get("parent_job") or "").strip(),
            "ephemeral": bool(d.get("ephemeral")),
            "starts_at": d.get("starts_at"),
            "expires_at": d.get("expires_at"),
            "misfire_policy": d.get("misfire_policy"),
            "catchup_window": d.get("catchup_window"),
            "jitter": d.get("jitter"),
            "history_limit": d.get("history_limit"),
            "notify": d["notify_json"],
            "exclude_calendars": list(d.get("exclude_calendars") or []),
            "only_calendars": list(d.get("only_calendars") or []),
            "params": d.get("params_json") or [],
            "concurrency_key": d.get("concurrency_key") or "",
            "concurrency_limit": d.get("concurrency_limit"),
            "rate_limit": (d.get("rate_limit") or "").strip(),
            "sla": self._sla(d),
        }

    @staticmethod
    def _sla(d: Mapping[str, Any]) -> dict[str, Any]:
        rules: dict[str, Any] = {}
        for key in SLA_KEYS:
            value = d.get(f"sla_{key}")
            if isinstance(value, str):
                value = value.strip()
            if value not in (None, ""):
                rules[key] = value
        return rules

    # -- the service's verdict, placed next to the fields --

    def apply_service_error(self, exc: DomainError, *, extra_keys: Iterable[str] = ()) -> None:
        extra = set(extra_keys)
        placed = False
        for key, message in exc.details.items():
            if key == "executor_config" and isinstance(message, Mapping):
                for config_key, config_message in message.items():
                    f = _field_for(self.config_fields, str(config_key))
                    if f is not None:
                        f.errors.append(str(config_message))
                    elif config_key in extra:
                        self.add_error("extra_json", f"{config_key}: {config_message}")
                    else:
                        self.add_error(None, f"executor config {config_key}: {config_message}")
                placed = True
            elif key == "params":
                self.add_error("params_json", _params_message(message))
                placed = True
            elif key == "sla" and isinstance(message, Mapping):
                for rule, rule_message in message.items():
                    if f"sla_{rule}" in self.fields:
                        self.add_error(f"sla_{rule}", str(rule_message))
                    else:
                        self.add_error(None, f"sla {rule}: {rule_message}")
                placed = True
            elif key in self.row_errors:
                self.row_errors[key].append(str(message))
                placed = True
            elif key in self.fields and not (key == "name" and self.name_readonly):
                self.add_error(key, str(message))
                placed = True
            else:
                self.add_error(None, f"{key}: {message}")
                placed = True
        if not placed or exc.status_code == 403:
            self.add_error(None, exc.message)

    def error_summary(self) -> list[dict[str, str]]:
        """Every problem, for the summary at the top: label, message and the input's id."""
        out: list[dict[str, str]] = []
        for message in self.non_field_errors():
            out.append({"label": "", "message": str(message), "anchor": ""})
        for name, field_errors in self.errors.items():
            if name == NON_FIELD_ERRORS:
                continue
            bound = self[name]
            for message in field_errors:
                out.append(
                    {"label": str(bound.label), "message": str(message), "anchor": bound.auto_id}
                )
        for prefix, row_errors in self.row_errors.items():
            for message in row_errors:
                out.append({"label": self.ROW_LABELS[prefix], "message": message, "anchor": prefix})
        for f in self.config_fields:
            for message in f.errors:
                out.append({"label": f.key, "message": message, "anchor": f.input_id})
        return out


def _params_message(message: Any) -> str:
    """The service's findings about the declaration (`{"region.choices": "..."}`) as text."""
    if isinstance(message, Mapping):
        return "; ".join(f"{key}: {text}" for key, text in message.items())
    return str(message)


def initial_from_job(job: Job, *, clone: bool = False) -> dict[str, Any]:
    zone = job_zone(job.timezone)

    def local(value: datetime | None) -> str:
        return value.astimezone(zone).strftime(DATETIME_INPUT) if value else ""

    def seconds(value: float) -> str:
        return f"{value:g}"

    def as_json(value: Any) -> str:
        return json.dumps(value, indent=2) if value else ""

    return {
        "name": "" if clone else job.name,
        "displayname": job.displayname,
        "schedule": job.schedule,
        "timezone": job.timezone,
        "executor": job.executor,
        "owner": job.owner,
        "owner_email": job.owner_email,
        "retries": job.retries,
        "retry_backoff": seconds(job.retry_backoff),
        "concurrency": job.concurrency,
        "parent_job": job.parent.name if job.parent_id and job.parent else "",
        "disabled": job.disabled,
        "ephemeral": job.ephemeral,
        "misfire_policy": job.misfire_policy,
        "catchup_window": seconds(job.catchup_window),
        "jitter": seconds(job.jitter),
        "history_limit": job.history_limit,
        "starts_at": local(job.starts_at),
        "expires_at": local(job.expires_at),
        "processors_json": as_json(job.processors),
        "notify_json": as_json(notify_schema.mask_secrets(job.notify)),
        "exclude_calendars": list(job.exclude_calendars or []),
        "only_calendars": list(job.only_calendars or []),
        "params_json": as_json(job.params),
        "concurrency_key": job.concurrency_key,
        "concurrency_limit": job.concurrency_limit,
        "rate_limit": job.rate_limit,
        **{
            f"sla_{key}": _display(value)
            for key, value in (job.sla if isinstance(job.sla, dict) else {}).items()
            if key in SLA_KEYS
        },
    }


def rows_from_job(job: Job) -> dict[str, list[tuple[str, str]]]:
    return {
        "tags": [(str(k), _display(v)) for k, v in (job.tags or {}).items()],
        "metadata": [(str(k), _display(v)) for k, v in (job.metadata or {}).items()],
    }


def default_initial() -> dict[str, Any]:
    names = executor_names()
    return {
        "executor": "shell" if "shell" in names else (names[0] if names else ""),
        "retries": 0,
        "retry_backoff": "1",
        "concurrency": Concurrency.ALLOW,
        "misfire_policy": MisfirePolicy.SKIP,
        "catchup_window": "3600",
        "jitter": "0",
    }


def extra_json_text(executor: str, extra: Mapping[str, Any]) -> str:
    """Keys without a field, secrets masked (an uninstalled plugin's keys are guessed)."""
    if not extra:
        return ""
    return json.dumps(registry.mask_secrets(executor, extra), indent=2)
