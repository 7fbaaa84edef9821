"""System checks: configuration mistakes reported by `manage.py check` and at start-up."""

from typing import Any

from django.conf import settings
from django.core.checks import Warning, register


@register()
def check_untagged_target(app_configs: Any, **kwargs: Any) -> list[Warning]:
    value = settings.DKRON["UNTAGGED_TARGET"]
    if value not in {"all", "one"}:
        return [Warning(f"DKRON_UNTAGGED_TARGET={value!r} is not 'all' or 'one'", id="dkron.W001")]
    return []
