"""System checks: configuration mistakes reported by `manage.py check` and at start-up."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from executors import registry
from jobs.secrets import check_keys


@register()
def check_untagged_target(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    value = settings.DKRON["UNTAGGED_TARGET"]
    if value not in {"all", "one"}:
        return [Warning(f"DKRON_UNTAGGED_TARGET={value!r} is not 'all' or 'one'", id="dkron.W001")]
    return []


@register()
def check_executors_load(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """An enabled executor whose client library is missing would fail every run: say so now.

    A warning, not an error: the other executors keep working, and its jobs fail with the
    same message at run time.
    """
    problems: list[CheckMessage] = []
    disabled = settings.DKRON["DISABLED_EXECUTORS"]
    for name in registry.available(disabled):
        try:
            registry.executor_class(name, disabled)
        except (ImportError, TypeError) as exc:
            problems.append(
                Warning(
                    f"executor {name!r} is enabled but cannot be loaded: {exc}",
                    hint=f"install its client library, or add {name} to DKRON_DISABLED_EXECUTORS",
                    id="dkron.W002",
                )
            )
    return problems


@register()
def check_encryption_key(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """A malformed DKRON_ENCRYPTION_KEY would fail every save of a job with secrets: stop now."""
    problem = check_keys()
    if problem is None:
        return []
    hint = 'generate one with: python -c "from cryptography.fernet import Fernet; '
    hint += 'print(Fernet.generate_key().decode())"'
    return [Error(problem, hint=hint, id="dkron.E001")]
