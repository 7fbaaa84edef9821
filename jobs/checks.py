"""System checks: configuration mistakes reported by `manage.py check` and at start-up."""

import stat
from pathlib import Path
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


def loose_data_files() -> list[str]:
    """Paths of the data directory, its files and the SQLite database (with its -wal and -shm)
    that users other than the owner may read or write: "path (0644)".

    Their content is the whole server: secrets in job configs, session keys that give a
    superuser's access, the embedded secret key. Directories below the data directory are not
    listed (the data directory's own mode already keeps others out of them).
    """
    candidates: list[Path] = []
    data_dir = Path(settings.DATA_DIR)
    if data_dir.is_dir():
        candidates.append(data_dir)
        candidates.extend(p for p in sorted(data_dir.iterdir()) if p.is_file())
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and str(database["NAME"]) != ":memory:":
        name = Path(database["NAME"])
        candidates += [name.parent, name, Path(f"{name}-wal"), Path(f"{name}-shm")]
    loose, seen = [], set()
    for path in candidates:
        if path in seen:
            continue
        seen.add(path)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            loose.append(f"{path} ({mode:04o})")
    return loose


@register()
def check_data_dir_private(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    loose = loose_data_files()
    if not loose:
        return []
    return [
        Warning(
            "readable or writable by other users: " + ", ".join(loose),
            hint=f"chmod 700 {settings.DATA_DIR} and chmod 600 the files in it (dkronweb "
            "creates them so; they hold job secrets and login sessions)",
            id="dkron.W003",
        )
    ]
