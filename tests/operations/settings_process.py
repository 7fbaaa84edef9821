"""Run Django in a fresh process with a chosen environment (settings are read once, at import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT

# A key that production accepts (not an example value, 50 characters).
GOOD_KEY = "k7Qw9xZ2pL4mN8vB1cR6tY3uI0oP5aS2dF7gH4jK9lZ1xC6vB3"


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The machine's environment without any DKRON_ or DJANGO_ variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DKRON_", "DJANGO_"))}
    env.update(DJANGO_SETTINGS_MODULE="dkronweb.settings", DKRON_DATA_DIR=str(data_dir))
    env.update(extra)
    return env


def production_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A production configuration that starts (SQLite in `data_dir` keeps it self-contained)."""
    settings = {
        "DKRON_ENV": "production",
        "DKRON_SECRET_KEY": GOOD_KEY,
        "DKRON_ALLOWED_HOSTS": "dkron.example.com",
        "DKRON_DATABASE_URL": f"sqlite:///{data_dir}/db.sqlite3",
        "DKRON_BROKER_URL": "memory://localhost/",
    }
    return clean_env(data_dir, **{**settings, **extra})


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `code` after django.setup() in a new process; stdout and stderr merged."""
    script = f"import django\ndjango.setup()\n{code}"
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
