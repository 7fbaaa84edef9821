"""Notification templates: Django templates compiled from strings, and the context they get.

The context holds plain values only (no model instances), so a job owner's template can reach
nothing beyond what is listed here, and never the executor config (it may hold secrets):

- `job`: name, displayname, owner, owner_email, schedule, timezone, executor, tags, metadata,
  status, success_count, error_count;
- `run`: id, status, ok, trigger, scheduled_at, started_at, finished_at, duration (seconds),
  nodes;
- `executions`: the run's group report, one entry per node and attempt: id, node, attempt,
  status, final, started_at, finished_at, duration, reason, output (its last
  OUTPUT_TAIL characters), output_truncated;
- `ui_url`: the job's page in the UI (setting DKRON_PUBLIC_URL + /ui/jobs/<name>/);
- `payload`: {job, run, executions, ui_url} as one object, the default webhook body
  (`{{ payload|json }}`).

An SLA alert (jobs.services.sla) gets `job`, `ui_url`, `event` (late, overdue, no_success,
failing or recovered) and `alert`: id, kind, state, subject, detail, opened_at, resolved_at;
`run` and `executions` are empty. Its payload is {event, alert, job, ui_url}; a template
written for runs can tell the two apart with `{% if alert %}`.

Autoescaping is off (the output is plain text or JSON, not HTML); the `json` filter writes a
value as JSON (`{"job": {{ job.name|json }}}`).

Templates are written by job editors and rendered on agents, so they run in a small sandbox
(`_engine`): only the tags listed in TAGS (no load, include, extends, url, debug, lorem,
widthratio), Django's filters wrapped so that a width or precision above the size limit is
refused before anything is allocated and no filter returns more than the limit, and a render
that stops (RenderLimit) once its output passes DKRON_NOTIFY_RENDER_LIMIT characters or its
CPU time passes DKRON_NOTIFY_RENDER_TIME seconds. How it is counted:

1. every leaf node (text, variable, a tag without a body) is wrapped in `_Metered`, which adds
   its output's length to the render's `_Budget` and checks the CPU deadline;
2. every loop iteration sets its loop variable in the context, which checks the deadline too
   (`_BoundedContext`), so nested loops with an empty body stop as well;
3. a literal width above the limit (`ljust:"400000000"`) is refused at save time
   (`check_template`), a width read from a variable at render time.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.template import (
    Context,
    Engine,
    Library,
    Node,
    NodeList,
    Template,
    defaultfilters,
    defaulttags,
)
from django.template.defaulttags import IfNode

from jobs.notifications import NotificationError

register = Library()

OUTPUT_TAIL = 2000
RENDER_LIMIT = 1024 * 1024  # characters of output (DKRON_NOTIFY_RENDER_LIMIT)
RENDER_TIME = 1.0  # CPU seconds per render (DKRON_NOTIFY_RENDER_TIME)
# Django's tags a notification template may use; anything else is a syntax error at save time.
TAGS = (
    "autoescape",
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "now",
    "regroup",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "with",
)
# Filters whose argument sets the size of what they make (a width, a precision).
SIZED_FILTERS = ("ljust", "rjust", "center", "floatformat", "stringformat", "wordwrap")
_NUMBER = re.compile(r"\d+")
_SIZED_ARG = re.compile(
    r"\|\s*(" + "|".join(SIZED_FILTERS) + r")\s*:\s*(\"[^\"]*\"|'[^']*'|[^\s|}%]+)"
)


class RenderLimit(NotificationError):
    """A template went past the size or time limit; its notification fails with this."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


def _limits() -> tuple[int, float]:
    conf = getattr(settings, "DKRON", {})
    return (
        int(conf.get("NOTIFY_RENDER_LIMIT", RENDER_LIMIT)),
        float(conf.get("NOTIFY_RENDER_TIME", RENDER_TIME)),
    )


class _Budget:
    def __init__(self, max_chars: int, seconds: float) -> None:
        self.max_chars = max_chars
        self.seconds = seconds
        self.deadline = time.thread_time() + seconds
        self.used = 0

    def check(self) -> None:
        if time.thread_time() > self.deadline:
            raise RenderLimit(
                f"template rendering stopped: it took more than {self.seconds:g}s of CPU "
                "(DKRON_NOTIFY_RENDER_TIME)"
            )

    def charge(self, size: int) -> None:
        self.used += size
        if self.used > self.max_chars:
            raise RenderLimit(
                f"template rendering stopped: its output passed {self.max_chars} characters "
                "(DKRON_NOTIFY_RENDER_LIMIT)"
            )
        self.check()


class _BoundedContext(Context):
    """A Context carrying the render's budget; loops check it on every iteration."""

    budget: _Budget

    def __setitem__(self, key: Any, value: Any) -> None:
        self.budget.check()
        super().__setitem__(key, value)

    def update(self, other_dict: Any) -> Any:
        self.budget.check()
        return super().update(other_dict)


class _Metered(Node):
    """A leaf node whose output is counted against the render's budget."""

    child_nodelists: tuple[str, ...] = ()

    def __init__(self, inner: Node) -> None:
        self.inner = inner
        self.token = inner.token
        self.origin = inner.origin

    def render_annotated(self, context: Any) -> Any:
        out = str(self.inner.render_annotated(context))
        budget = getattr(context, "budget", None)
        if budget is not None:
            budget.charge(len(out))
        return out

    def render(self, context: Any) -> Any:
        return self.render_annotated(context)


def _meter(nodelist: NodeList) -> None:
    for index, node in enumerate(nodelist):
        if isinstance(node, IfNode):
            children = [branch for _, branch in node.conditions_nodelists]
        else:
            children = [
                getattr(node, name)
                for name in node.child_nodelists
                if isinstance(getattr(node, name, None), NodeList)
            ]
        if children:
            for child in children:
                _meter(child)
        elif not isinstance(node, _Metered):
            nodelist[index] = _Metered(node)


def _refuse_width(name: str, arg: Any, limit: int) -> None:
    for number in _NUMBER.findall(str(arg)):
        if len(number) > 12 or int(number) > limit:
            raise RenderLimit(
                f"filter {name}: {number} is above the size limit of {limit} characters"
            )


def _bounded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
        limit, _ = _limits()
        if name in SIZED_FILTERS and args:
            _refuse_width(name, args[0], limit)
        result = func(value, *args, **kwargs)
        if isinstance(result, (str, list, tuple)) and len(result) > limit:
            raise RenderLimit(f"filter {name}: its result passed {limit} characters or items")
        return result

    return bounded


sandbox = Library()
for _name in TAGS:
    sandbox.tags[_name] = defaulttags.register.tags[_name]
for _name, _func in defaultfilters.register.filters.items():
    sandbox.filter(
        _name,
        _bounded(_name, _func),
        **{
            flag: getattr(_func, flag)
            for flag in ("is_safe", "needs_autoescape", "expects_localtime")
            if hasattr(_func, flag)
        },
    )


DEFAULT_EMAIL_SUBJECT = "[dkronweb] {{ job.name }}: {{ run.status }}"
DEFAULT_EMAIL_BODY = """\
Job {{ job.name }} finished with status {{ run.status }} (run {{ run.id }}, {{ run.trigger }}\
{% if run.scheduled_at %}, scheduled at {{ run.scheduled_at }}{% endif %}).
{% for e in executions %}
- {{ e.node|default:"(no node)" }}, attempt {{ e.attempt }}: {{ e.status }}\
{% if e.reason %} ({{ e.reason }}){% endif %}
{% if e.output %}{{ e.output }}{% endif %}{% endfor %}

{{ ui_url }}
"""
DEFAULT_WEBHOOK_BODY = "{{ payload|json }}"
DEFAULT_ALERT_SUBJECT = "[dkronweb] {{ job.name }}: {{ event }} ({{ alert.kind }})"
DEFAULT_ALERT_BODY = """\
Job {{ job.name }}: {% if event == "recovered" %}the {{ alert.kind }} alert cleared\
{% else %}SLA rule breached: {{ alert.kind }}{% endif %}\
{% if alert.subject %} ({{ alert.subject }}){% endif %}.
Opened at {{ alert.opened_at }}{% if alert.resolved_at %}, resolved at \
{{ alert.resolved_at }}{% endif %}.
{% for key, value in alert.detail.items %}- {{ key }}: {{ value }}
{% endfor %}
{{ ui_url }}
"""


@register.filter(name="json")
def to_json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


@functools.cache
def _engine() -> Engine:
    # No loaders: a template can neither include nor extend files from the server. The
    # builtins are the sandbox's tags and filters and `json`, nothing else (see the module doc).
    engine = Engine(autoescape=False, loaders=[])
    engine.template_builtins = [sandbox, register]
    return engine


@functools.lru_cache(maxsize=256)
def compile_template(source: str) -> Template:
    """Raises django.template.TemplateSyntaxError."""
    template = _engine().from_string(source)
    _meter(template.nodelist)
    return template


def check_template(source: str) -> None:
    """Save time: a syntax error (TemplateSyntaxError) or a literal width above the size
    limit (RenderLimit) is refused."""
    compile_template(source)
    limit, _ = _limits()
    for name, arg in _SIZED_ARG.findall(source):
        _refuse_width(name, arg, limit)


def render(source: str, context: dict[str, Any]) -> str:
    """Raises RenderLimit past the size or CPU time limit (see the module doc)."""
    template = compile_template(source)
    bounded = _BoundedContext(context, autoescape=False)
    bounded.budget = _Budget(*_limits())
    return template.render(bounded)


def ui_url(public_url: str, job_name: str) -> str:
    return f"{public_url.rstrip('/')}/ui/jobs/{quote(job_name, safe='')}/"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def build_context(*, job: Any, run: Any, executions: list[Any], public_url: str) -> dict[str, Any]:
    """`job`, `run` and `executions` are the model rows (read by attribute only)."""
    reports = [
        {
            "id": e.pk,
            "node": e.node_name,
            "attempt": e.attempt,
            "status": e.status,
            "final": e.final,
            "started_at": _iso(e.started_at),
            "finished_at": _iso(e.finished_at),
            "duration": _seconds(e.started_at, e.finished_at),
            "reason": e.reason,
            "output": e.output[-OUTPUT_TAIL:],
            "output_truncated": e.output_truncated or len(e.output) > OUTPUT_TAIL,
        }
        for e in sorted(executions, key=lambda e: (e.node_name, e.attempt, e.pk))
    ]
    starts = [e.started_at for e in executions if e.started_at]
    ends = [e.finished_at for e in executions if e.finished_at]
    started, finished = (min(starts) if starts else None), (max(ends) if ends else None)
    context: dict[str, Any] = {
        "job": {
            "name": job.name,
            "displayname": job.displayname,
            "owner": job.owner,
            "owner_email": job.owner_email,
            "schedule": job.schedule,
            "timezone": job.timezone,
            "executor": job.executor,
            "tags": job.tags,
            "metadata": job.metadata,
            "status": job.status,
            "success_count": job.success_count,
            "error_count": job.error_count,
        },
        "run": {
            "id": run.pk,
            "status": run.status,
            "ok": run.status == "success",
            "trigger": run.trigger,
            "scheduled_at": _iso(run.scheduled_at),
            "started_at": _iso(started),
            "finished_at": _iso(finished),
            "duration": _seconds(started, finished),
            "nodes": len({e.node_name for e in executions}),
        },
        "executions": reports,
        "ui_url": ui_url(public_url, job.name),
    }
    context["payload"] = dict(context)
    return context


def build_alert_context(*, job: Any, alert: Any, event: str, public_url: str) -> dict[str, Any]:
    """An SLA alert's context; `job` and `alert` are the model rows (read by attribute only)."""
    context: dict[str, Any] = {
        "event": event,
        "alert": {
            "id": alert.pk,
            "kind": alert.kind,
            "state": alert.state,
            "subject": alert.subject,
            "detail": dict(alert.detail or {}),
            "opened_at": _iso(alert.opened_at),
            "resolved_at": _iso(alert.resolved_at),
        },
        "job": {
            "name": job.name,
            "displayname": job.displayname,
            "owner": job.owner,
            "owner_email": job.owner_email,
            "schedule": job.schedule,
            "timezone": job.timezone,
            "executor": job.executor,
            "tags": job.tags,
            "metadata": job.metadata,
            "status": job.status,
            "success_count": job.success_count,
            "error_count": job.error_count,
        },
        "ui_url": ui_url(public_url, job.name),
    }
    context["payload"] = dict(context)
    context["run"] = {}
    context["executions"] = []
    return context
