"""Template helpers: times in the viewer's zone (the job's zone on hover), durations, badges."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs import timeutil

register = template.Library()


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@register.simple_tag
def when(value: datetime | None, zone: str | None = None) -> SafeString | str:
    """`<time>` in UTC on the server; the page script shows it in the viewer's zone. The title
    gives it in `zone` (the job's time zone, UTC when the job has none)."""
    if value is None:
        return "—"
    tz = _zone(zone)
    in_zone = value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")
    utc = value.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S UTC")
    return format_html(
        '<time datetime="{}" data-local title="{} ({})">{}</time>',
        value.isoformat(),
        in_zone,
        zone or "UTC",
        utc,
    )


@register.filter
def duration(execution: object) -> str:
    """Finished minus started (or so far, when running), as 1.2s / 3m04s / 2h05m."""
    started = getattr(execution, "started_at", None)
    finished = getattr(execution, "finished_at", None)
    if started is None:
        return "—"
    if finished is None:
        finished = timeutil.now()
    seconds = max(0.0, (finished - started).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


@register.simple_tag
def badge(status: str | None, label: str | None = None) -> SafeString:
    status = status or "untriggered"
    return format_html(
        '<span class="badge {}">{}</span>', status, label or status.replace("_", " ")
    )
