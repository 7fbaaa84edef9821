"""Test settings: real PostgreSQL and Redis on loopback, with short leases and heartbeats."""

import os
import socket


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


# Real PostgreSQL when it answers. `DKRON_TEST_DATABASE=sqlite` runs the tests on SQLite, the
# embedded default's database (`make test` does a second pass so). Run by hand without
# PostgreSQL, the tests fall back to SQLite and those that need PostgreSQL or Redis skip (with
# CI set they fail instead).
POSTGRES_AVAILABLE = _reachable("127.0.0.1", 5432)
if os.environ.get("DKRON_TEST_DATABASE") == "sqlite":
    os.environ.setdefault("DKRON_DATA_DIR", "/tmp/dkronweb-test-sqlite")
    if not os.environ.get("DKRON_DATABASE_URL", "").startswith("sqlite:"):
        # The ask for SQLite wins over a PostgreSQL URL exported for other runs, which made
        # an "SQLite pass" run on PostgreSQL without a word.
        os.environ["DKRON_DATABASE_URL"] = f"sqlite:///{os.environ['DKRON_DATA_DIR']}/db.sqlite3"
elif POSTGRES_AVAILABLE or os.environ.get("CI"):
    os.environ.setdefault("DKRON_DATABASE_URL", "postgres://root@127.0.0.1:5432/dkronweb")
else:
    os.environ.setdefault("DKRON_DATABASE_URL", "sqlite:////tmp/dkronweb-test/db.sqlite3")
os.environ.setdefault("DKRON_BROKER_URL", "redis://127.0.0.1:6379/7")
os.environ.setdefault("DKRON_DATA_DIR", "/tmp/dkronweb-test")
os.environ.setdefault("DKRON_SECRET_KEY", "test-secret-key-not-for-production")

from dkronweb.env import env_float  # noqa: E402
from dkronweb.settings import *  # noqa: E402,F403
from dkronweb.settings import ALLOWED_HOSTS, DATABASES, DKRON  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Django's test client says `Host: testserver`; the test runner allows it only once it has set
# up, and some test modules request at import (tests/web/api/test_fuzz.py reads the OpenAPI
# document).
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]
DKRON.update(
    {
        "LEASE_TTL": env_float("DKRON_LEASE_TTL", 3.0),
        "HEARTBEAT_INTERVAL": env_float("DKRON_HEARTBEAT_INTERVAL", 0.5),
        "AGENT_DEAD_AFTER": env_float("DKRON_AGENT_DEAD_AFTER", 3.0),
        "OUTPUT_FLUSH_INTERVAL": env_float("DKRON_OUTPUT_FLUSH_INTERVAL", 0.2),
        "QUEUED_REPUBLISH_AFTER": env_float("DKRON_QUEUED_REPUBLISH_AFTER", 10.0),
        "HARD_LIMIT_GRACE": 5.0,
        # Tests move the clock with time-machine; the database's would undo that.
        "CLOCK_FROM_DATABASE": False,
    }
)

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    _data_dir = os.environ["DKRON_DATA_DIR"]
    os.makedirs(_data_dir, exist_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(_data_dir, "test.sqlite3")}
