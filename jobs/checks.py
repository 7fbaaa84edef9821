"""System checks: configuration mistakes reported by `manage.py check` and at start-up.

The checks tagged `AGENT` are the ones an agent runs when it starts (`manage.py agent`; see
agent/management/commands/agent.py): none of them imports an executor's client library or the
web role, so an agent that runs only shell jobs holds neither. `manage.py check` (and every
command that runs all checks) also imports each enabled executor (`check_executors_import`).
"""

import stat
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from executors import registry
from jobs.secrets import check_keys

AGENT = "dkron"
# What an agent checks at start: its own checks and Django's that import nothing of the web
# role (the URL, template, static files and admin checks load the whole web role).
AGENT_TAGS = (AGENT, Tags.models, Tags.caches, Tags.compatibility, Tags.translation)


@register(AGENT)
def check_untagged_target(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    value = settings.DKRON["UNTAGGED_TARGET"]
    if value not in {"all", "one"}:
        return [Warning(f"DKRON_UNTAGGED_TARGET={value!r} is not 'all' or 'one'", id="dkron.W001")]
    return []


def _cannot_load(name: str, problem: str) -> Warning:
    return Warning(
        f"executor {name!r} is enabled but cannot be loaded: {problem}",
        hint=f"install its client library, or add {name} to DKRON_DISABLED_EXECUTORS",
        id="dkron.W002",
    )


@register(AGENT)
def check_executors_load(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """An enabled executor whose client library is missing would fail every run: say so now.

    A warning, not an error: the other executors keep working, and its jobs fail with the
    same message at run time. Found without importing any library (`registry.missing`), so
    the agent's start-up check does not load kafka-python, gRPC, boto3 and the rest.
    """
    disabled = settings.DKRON["DISABLED_EXECUTORS"]
    problems: list[CheckMessage] = []
    for name in registry.available(disabled):
        if missing := registry.missing(name):
            problems.append(_cannot_load(name, "not installed: " + ", ".join(missing)))
    return problems


@register()
def check_executors_import(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Import each enabled executor whose modules are installed, so `manage.py check` also
    reports one that fails to import or is not an executor (a broken plugin).

    Not an agent check (untagged): it loads every client library, which an agent does only
    for the executors its jobs use. Missing modules are `check_executors_load`'s to report.
    """
    disabled = settings.DKRON["DISABLED_EXECUTORS"]
    problems: list[CheckMessage] = []
    for name in registry.available(disabled):
        if registry.missing(name):
            continue
        try:
            registry.executor_class(name, disabled)
        except (ImportError, TypeError) as exc:
            problems.append(_cannot_load(name, str(exc)))
    return problems


@register(AGENT)
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


@register(AGENT)
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
