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

Autoescaping is off (the output is plain text or JSON, not HTML); the `json` filter writes a
value as JSON (`{"job": {{ job.name|json }}}`).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.template import Context, Engine, Library, Template

register = Library()

OUTPUT_TAIL = 2000

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


@register.filter(name="json")
def to_json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


@functools.cache
def _engine() -> Engine:
    # No loaders: a template can neither include nor extend files from the server.
    return Engine(autoescape=False, loaders=[], builtins=["jobs.notifications.render"])


@functools.lru_cache(maxsize=256)
def compile_template(source: str) -> Template:
    """Raises django.template.TemplateSyntaxError."""
    return _engine().from_string(source)


def render(source: str, context: dict[str, Any]) -> str:
    return compile_template(source).render(Context(context, autoescape=False))


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
