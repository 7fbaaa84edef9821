"""Settings, all read from the environment in this one place (every variable is in .env.example).

The defaults are the embedded mode: SQLite in ./var, an in-process broker, auth on. Production
sets DKRON_DATABASE_URL (PostgreSQL) and DKRON_BROKER_URL (Redis) and DKRON_SECRET_KEY.
Variables are read only here, through dkronweb.env's strict readers (a bad value stops
start-up naming the variable); the rest of the code reads django.conf.settings. The exceptions
are not dkronweb settings: DOCKER_HOST and PUBSUB_EMULATOR_HOST, read by the docker and
gcppubsub executors as their client libraries read them, and DKRON_AGENT_NAME/DKRON_AGENT_ID,
which jobs.node sets for the agent's shell jobs to inherit.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from dkronweb import __version__
from dkronweb.env import (
    env,
    env_bool,
    env_choice,
    env_duration,
    env_float,
    env_int,
    env_json_object,
    env_list,
    env_secret,
)
from executors import netguard

BASE_DIR = Path(__file__).resolve().parent.parent


DATA_DIR = Path(env("DKRON_DATA_DIR", str(BASE_DIR / "var")))
# "prod" must not quietly mean embedded (auth-off and debug allowed).
PRODUCTION = env_choice("DKRON_ENV", "embedded", ("embedded", "production")) == "production"
DEBUG = env_bool("DKRON_DEBUG", False)


def _private_dir(path: Path) -> Path:
    """Create a directory, and any missing parent, owner-only (0700); an existing one is left
    as it is (a system check warns when the data directory is open to others: jobs.checks)."""
    if not path.is_dir():
        if not path.parent.exists():
            _private_dir(path.parent)
        with contextlib.suppress(FileExistsError):  # another process was first
            path.mkdir(mode=0o700)
    return path


def _private_file(path: Path, text: str = "") -> None:
    """Create a file owner-only (0600) from the start, never 0644 and then chmod."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _secret_key() -> str:
    key = env_secret("DKRON_SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("DKRON_SECRET_KEY must be set when DKRON_ENV=production")
    # Embedded mode: a key generated once and kept beside the database, so sessions survive.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        _private_dir(DATA_DIR)
        with contextlib.suppress(FileExistsError):  # another process was first
            _private_file(path, secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()


def _outbound_allow() -> tuple[netguard.AllowRule, ...]:
    try:
        return netguard.parse_allow(env_list("DKRON_OUTBOUND_ALLOW"))
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


# Embedded: loopback names only, so a web page cannot reach the local server under its own
# name (DNS rebinding); `serve --host 0.0.0.0` needs DKRON_ALLOWED_HOSTS. Production: none.
ALLOWED_HOSTS = env_list("DKRON_ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DKRON_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "jobs",  # the domain core: models, services, selectors, schedule
    "web",  # the web role: /v1 API, admin, /metrics
    "web.ui",  # the web UI (its own app for templates, tags and static files)
    "scheduler",  # the scheduler role: `manage.py scheduler`
    "agent",  # the agent role: `manage.py agent`, `leave`
    "dkronweb",  # the project: `manage.py serve` (every role in one process)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dkronweb.urls"
WSGI_APPLICATION = "dkronweb.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project templates (the UI) at the top level; APP_DIRS keeps apps' own (the admin,
        # third-party apps) and lets a project template override an app's of the same name.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "web.ui.access.permissions",
            ]
        },
    }
]

DATABASE_URL = env_secret("DKRON_DATABASE_URL", f"sqlite:///{DATA_DIR / 'dkronweb.sqlite3'}")
# Persistent connections (60 s), checked before their first use in each request or task:
# without the health check, every web thread's first request after a database restart fails
# (500) on the connection the restart broke (tests/faults/test_server_restarts.py).
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _private_dir(DATA_DIR)
    # Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the database
    # file's mode, so all three stay owner-only (SQLite itself would create them 0644).
    _sqlite_path = Path(DATABASES["default"]["NAME"])
    if str(_sqlite_path) != ":memory:" and not _sqlite_path.exists():
        _private_dir(_sqlite_path.parent)
        with contextlib.suppress(FileExistsError):  # another process was first
            _private_file(_sqlite_path)
    # WAL lets the web, scheduler and agent threads read while one writes; IMMEDIATE
    # transactions plus a busy timeout make writers queue instead of failing with "locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("DKRON_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = _private_dir(DATA_DIR / "static")
STORAGES = {
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
LOGIN_URL = "/ui/login/"
LOGIN_REDIRECT_URL = "/ui/"

# --- Auth ------------------------------------------------------------------------------
# On by default. Turning it off is for trusted networks with Dkron OSS clients that send no
# credentials; the start-up log warns loudly.
AUTH_ENABLED = env_bool("DKRON_AUTH_ENABLED", True)
# Production refuses auth off unless this says it is meant (a trusted network with Dkron OSS
# clients); every process then logs a warning at start-up (jobs.apps).
AUTH_OFF_IN_PRODUCTION = env_bool("DKRON_PRODUCTION_ALLOW_AUTH_OFF", False)

# --- Production refusals -----------------------------------------------------------------
# Values printed in .env.example, docker-compose.yml, the README and the test settings:
# whoever copied them has a secret key everyone knows (sessions and password resets forged).
EXAMPLE_SECRET_KEYS = frozenset(
    {"change-me", "...", "test-secret-key-not-for-production", "secret", "changeme"}
)
MIN_SECRET_KEY_LENGTH = 32


def _production_problems() -> list[str]:
    problems = []
    if DEBUG:
        problems.append("DKRON_DEBUG is on (error pages would show code and settings)")
    if not AUTH_ENABLED and not AUTH_OFF_IN_PRODUCTION:
        problems.append(
            "DKRON_AUTH_ENABLED=false (anyone who reaches the port could run shell jobs); "
            "for a trusted network set DKRON_PRODUCTION_ALLOW_AUTH_OFF=true as well"
        )
    if SECRET_KEY.strip().lower() in EXAMPLE_SECRET_KEYS:
        problems.append("DKRON_SECRET_KEY is an example value from the documentation")
    elif len(SECRET_KEY) < MIN_SECRET_KEY_LENGTH:
        problems.append(f"DKRON_SECRET_KEY is shorter than {MIN_SECRET_KEY_LENGTH} characters")
    return problems


if PRODUCTION and (_problems := _production_problems()):
    raise ImproperlyConfigured(
        "DKRON_ENV=production refuses to start: "
        + "; ".join(_problems)
        + '. Generate a key with: python -c "import secrets; print(secrets.token_urlsafe(50))"'
    )

# --- HTTPS, cookies and browser headers ---------------------------------------------------
# On by default in production; each has its variable. Behind a TLS proxy, set
# DKRON_PROXY_SSL_HEADER to the header it sets (only then: a client could send it itself).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DKRON_SECURE_COOKIES", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("DKRON_HSTS_SECONDS", 365 * 86400 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DKRON_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("DKRON_HSTS_PRELOAD", PRODUCTION)
# Off by default: Dkron clients and probes often speak plain HTTP inside the network.
SECURE_SSL_REDIRECT = env_bool("DKRON_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^health$"]  # load balancer and kubelet probes
_proxy_header, _, _proxy_value = env("DKRON_PROXY_SSL_HEADER").strip().partition("=")
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _proxy_header.strip().upper().replace("-", "_"),
        _proxy_value.strip() or "https",
    )
# Content-Security-Policy of the /ui/ pages (web/ui/csp.py): this server's script and
# stylesheet only, no inline code, no framing.
CSP_ENABLED = env_bool("DKRON_CSP", True)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}
if CSP_ENABLED:
    MIDDLEWARE.insert(1, "web.ui.csp.UIContentSecurityPolicy")

# Error pages and error mails hide passwords in URLs and every secret setting, even with
# DKRON_DEBUG on (dkronweb/error_reports.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "dkronweb.error_reports.SecretsFilter"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "web.api.auth.TokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["web.api.permissions.ApiAccess"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "web.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "dkronweb API",
    "DESCRIPTION": "Dkron-compatible /v1 API",
    "VERSION": "0.1.0",
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DKRON_MAX_BODY_BYTES", 2 * 1024 * 1024)

# --- Celery ----------------------------------------------------------------------------
CELERY_BROKER_URL = env_secret("DKRON_BROKER_URL", "memory://localhost/")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
# Runs are claimed in the database; a redelivered message is a no-op, so early ack is safe
# and avoids Redis' visibility-timeout redelivery of long runs.
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_CREATE_MISSING_QUEUES = True
CELERY_TASK_DEFAULT_QUEUE = "dkron.default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Retry a lost broker forever (None; 0 would mean "never"): Celery's default of 100 attempts
# makes an agent exit after a long broker outage and wait for a supervisor to restart it.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {"visibility_timeout": 6 * 3600}
if CELERY_BROKER_URL.startswith("memory://"):
    # The embedded default's in-process broker is polled, once a second unless told: every
    # run would start up to a second late. A poll is a check of an in-memory queue.
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = 0.05
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fix-up closes the database connection after every task unless told to reuse
# it; reconnecting cost a sixth of an agent's time. Broken connections are retried anyway.
CELERY_DB_REUSE_MAX = 1000
CELERY_BEAT_SCHEDULER = "scheduler.beat:JobScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = 1
# Task events (docs/celery-tools.md): agents send task-received/started/succeeded/failed/retried,
# so Flower and `celery events` work without `-E` or `enable_events`. About one small event
# message per state change, on the broker's `celeryev` fanout exchange (dropped there when
# nobody listens). DKRON_TASK_EVENTS=false turns them off; worker heartbeats (Flower's worker
# list) are sent either way. Publishers' task-sent events are opt-in (DKRON_TASK_SENT_EVENTS):
# one more message per fire on the scheduler's publish path cost a quarter of its fire rate
# (bench, 2026-12-02: 1,018/s without, 779/s with), and Flower shows a run from `received` on.
TASK_EVENTS = env_bool("DKRON_TASK_EVENTS", True)
CELERY_WORKER_SEND_TASK_EVENTS = TASK_EVENTS
CELERY_TASK_SEND_SENT_EVENT = TASK_EVENTS and env_bool("DKRON_TASK_SENT_EVENTS", False)

# --- Scheduling and agents (seconds) ---------------------------------------------------


def _job_env_passthrough() -> tuple[str, ...]:
    names = env_list("DKRON_JOB_ENV_PASSTHROUGH")
    ours = [n for n in names if n.upper().startswith(("DKRON_", "DJANGO_", "CELERY_", "*"))]
    if ours:
        raise ImproperlyConfigured(
            f"DKRON_JOB_ENV_PASSTHROUGH: {', '.join(ours)} would hand dkronweb's own settings "
            "(keys, database and broker passwords) to every shell job; set what a job needs "
            "in its own env instead"
        )
    return tuple(names)


VERSION = __version__  # what agents register and /v1/ answers (the core reads it here)
NODE_NAME = env("DKRON_NODE_NAME", socket.gethostname().split(".")[0].lower())
DKRON: dict[str, Any] = {
    "LEASE_TTL": env_float("DKRON_LEASE_TTL", 4.0),
    # Off only to prove that fire keys alone prevent duplicates (every scheduler fires).
    "LEASE_ENABLED": env_bool("DKRON_SCHEDULER_LEASE", True),
    "TICK_MAX": env_float("DKRON_TICK_MAX", 1.0),
    # Schedulers active at once share the jobs in this many shards (job id % SHARDS), each
    # holding ceil(SHARDS / schedulers alive); 1: one active scheduler, the others standby.
    # Every scheduler of a cluster must use the same value (docs/scheduler.md).
    "SHARDS": env_int("DKRON_SCHEDULER_SHARDS", 1, minimum=1),
    "FIRE_BATCH": env_int("DKRON_FIRE_BATCH", 500, minimum=1),
    "MISFIRE_GRACE": env_float("DKRON_MISFIRE_GRACE", 60.0),
    # Catch-up runs (misfire_policy run_once/run_all after an outage) published per second,
    # cluster-wide; on-time fires are never held back. 0 publishes them all at once.
    # docs/scheduler.md explains the default.
    "CATCHUP_RATE": env_float("DKRON_CATCHUP_RATE", 20.0),
    # Seconds a scheduler may take to stop after SIGTERM/SIGINT before it exits hard.
    "STOP_TIMEOUT": env_float("DKRON_SCHEDULER_STOP_TIMEOUT", 10.0),
    # The scheduler follows the database's clock (fire times, agent liveness), not its host's.
    "CLOCK_FROM_DATABASE": env_bool("DKRON_SCHEDULER_CLOCK_FROM_DATABASE", True),
    "HEARTBEAT_INTERVAL": env_float("DKRON_HEARTBEAT_INTERVAL", 5.0),
    "AGENT_DEAD_AFTER": env_float("DKRON_AGENT_DEAD_AFTER", 20.0),
    "QUEUED_REPUBLISH_AFTER": env_float("DKRON_QUEUED_REPUBLISH_AFTER", 60.0),
    # The agent's reaper (agent.reaper): kills a killed agent's job processes and reports it
    # dead at once. Off, a dead agent is found by its heartbeat (AGENT_DEAD_AFTER).
    "AGENT_REAPER": env_bool("DKRON_AGENT_REAPER", True),
    "OUTPUT_FLUSH_INTERVAL": env_float("DKRON_OUTPUT_FLUSH_INTERVAL", 1.0),
    "DEFAULT_MAX_RUNTIME": env_float("DKRON_DEFAULT_MAX_RUNTIME", 24 * 3600.0),
    "HARD_LIMIT_GRACE": env_float("DKRON_HARD_LIMIT_GRACE", 30.0),
    "OUTPUT_LIMIT": env_int("DKRON_OUTPUT_LIMIT", 256_000),
    "HISTORY_LIMIT": env_int("DKRON_HISTORY_LIMIT", 100),
    "RETRY_BACKOFF_MAX": env_float("DKRON_RETRY_BACKOFF_MAX", 600.0),
    "DISABLED_EXECUTORS": set(env_list("DKRON_DISABLED_EXECUTORS")),
    # Shell jobs start with a clean environment (executors.shell.BASE_ENV: PATH, HOME, LANG,
    # LC_*, TZ...); these agent variables are passed as well ("NAME*" is a prefix).
    "JOB_ENV_PASSTHROUGH": _job_env_passthrough(),
    # Processors (SPEC 8): directories the `files` processor may write under (the first is
    # the default log_dir), the `fluent` defaults under Dkron's own variable names, and
    # processors refused at save time.
    "PROCESSOR_LOG_DIRS": env_list("DKRON_PROCESSOR_LOG_DIRS", str(DATA_DIR / "logs")),
    "FLUENTBIT_HOST": env("FLUENTBIT_HOST", "127.0.0.1"),
    "FLUENTBIT_PORT": env_int("FLUENTBIT_PORT", 24224),
    "FLUENTBIT_TAG": env("FLUENTBIT_TAG", "dkron"),
    "DISABLED_PROCESSORS": set(env_list("DKRON_DISABLED_PROCESSORS")),
    # Notifications (SPEC 8): the global rule (always, on_failure, on_success, on_change or
    # never; a job's notify.on replaces it), email to owner_email (on when an SMTP host or a
    # backend is set), a global webhook, and delivery limits. PUBLIC_URL builds UI links.
    "NOTIFY_ON": env("DKRON_NOTIFY_ON", "never").strip().lower(),
    "NOTIFY_EMAIL_ENABLED": env_bool(
        "DKRON_NOTIFY_EMAIL_ENABLED", bool(env("DKRON_EMAIL_HOST") or env("DKRON_EMAIL_BACKEND"))
    ),
    # A Slack-style webhook URL is itself a secret; headers often carry a token.
    "NOTIFY_WEBHOOK_URL": env_secret("DKRON_NOTIFY_WEBHOOK_URL"),
    "NOTIFY_WEBHOOK_HEADERS": env_json_object("DKRON_NOTIFY_WEBHOOK_HEADERS", secret=True),
    "NOTIFY_WEBHOOK_BODY": env("DKRON_NOTIFY_WEBHOOK_BODY"),
    "NOTIFY_TIMEOUT": env_float("DKRON_NOTIFY_TIMEOUT", 10.0),
    "NOTIFY_RETRIES": env_int("DKRON_NOTIFY_RETRIES", 3),
    "NOTIFY_RETRY_BACKOFF": env_float("DKRON_NOTIFY_RETRY_BACKOFF", 1.0),
    "PUBLIC_URL": env("DKRON_PUBLIC_URL", "http://127.0.0.1:8080"),
    # "all" (Dkron: untagged jobs run on every alive node) or "one".
    "UNTAGGED_TARGET": env("DKRON_UNTAGGED_TARGET", "all"),
    # Placement of a run for one of several agents (issue 16): an agent is full when what is
    # queued for it and running on it reaches its slots times this; when every matching one
    # is, the run waits unplaced for the first slot that frees. 0 (the default): no bound,
    # the least busy agent per slot takes it and its own queue holds it (Celery's model, and
    # what keeps a burst at broker speed: a held run is placed one finish at a time). 1: a
    # run never waits on a busy agent while another has a free slot.
    "SLOT_QUEUE": env_int("DKRON_SLOT_QUEUE", 0),
    "DC": env("DKRON_DC", "dc1"),
    "REGION": env("DKRON_REGION", "global"),
    # Dkron's server=true tag on this agent (agent.worker); false for agent-only nodes.
    "AGENT_SERVER": env_bool("DKRON_AGENT_SERVER", True),
    # The first embedded start's admin password (jobs.bootstrap); empty: a random one, printed.
    "ADMIN_PASSWORD": env_secret("DKRON_ADMIN_PASSWORD"),
    # Retention (jobs.services.retention, the hourly `dkronweb.retention` periodic task):
    # finished executions older than HISTORY_MAX_AGE seconds are deleted (0 = keep them),
    # RETENTION_BATCH ids per DELETE, for at most RETENTION_TIME_BUDGET seconds per run.
    "HISTORY_MAX_AGE": env_duration("DKRON_HISTORY_MAX_AGE", 90 * 86400.0),
    "RETENTION_BATCH": env_int("DKRON_RETENTION_BATCH", 5000, minimum=1),
    "RETENTION_TIME_BUDGET": env_duration("DKRON_RETENTION_TIME_BUDGET", 120.0),
    # /health reports executions queued for longer than this many seconds as a backlog.
    "BACKLOG_ALERT_SECONDS": env_duration("DKRON_BACKLOG_ALERT_SECONDS", 60.0),
    # Secrets (jobs.secrets): comma-separated Fernet keys, the first encrypting; when set,
    # executor secrets are stored encrypted. Unset: stored as given.
    "ENCRYPTION_KEYS": env_list("DKRON_ENCRYPTION_KEY", secret=True),
    # The outbound guard (executors.netguard) for every executor, processor and notification
    # that connects: refuse loopback, private, link-local (cloud metadata) and other non-public
    # addresses. Recommended on in production; off by default so the embedded default can call
    # local services. DKRON_HTTP_BLOCK_PRIVATE is the older name, still accepted.
    "BLOCK_PRIVATE": env_bool("DKRON_BLOCK_PRIVATE", env_bool("DKRON_HTTP_BLOCK_PRIVATE", False)),
    # What the guard lets through anyway: CIDRs, addresses and host names ("*.internal" for
    # subdomains), each with an optional :port, e.g. "10.0.0.0/8,kafka.internal:9092".
    "OUTBOUND_ALLOW": _outbound_allow(),
}

# --- Abuse limits (issue 12: templates, restore, slow clients, brute force) ---------------
DKRON.update(
    {
        # A notification template's render stops (and its notification fails) past this many
        # characters of output or this many CPU seconds (jobs.notifications.render).
        "NOTIFY_RENDER_LIMIT": env_int("DKRON_NOTIFY_RENDER_LIMIT", 1024 * 1024),
        "NOTIFY_RENDER_TIME": env_float("DKRON_NOTIFY_RENDER_TIME", 1.0),
        # /v1/restore takes at most this many jobs per file (413 past it: split the file),
        # written this many jobs per transaction (jobs.services.transfer).
        "RESTORE_MAX_JOBS": env_int("DKRON_RESTORE_MAX_JOBS", 1000),
        "RESTORE_BATCH": env_int("DKRON_RESTORE_BATCH", 100, minimum=1),
    }
)
# Slow clients (`manage.py serve`, dkronweb.webserver): a connection is closed when its request
# headers take longer than DKRON_WEB_HEADER_TIMEOUT seconds, or the whole request longer than
# DKRON_WEB_READ_TIMEOUT. In production, put nginx in front of gunicorn (docs/nginx.conf).
WEB_HEADER_TIMEOUT = env_duration("DKRON_WEB_HEADER_TIMEOUT", 10.0)
WEB_READ_TIMEOUT = env_duration("DKRON_WEB_READ_TIMEOUT", 60.0)
# Brute force (django-axes): after DKRON_LOGIN_FAILURE_LIMIT failed logins a user name, and
# separately a client address, is refused for DKRON_LOGIN_COOLOFF (UI, admin and the API's
# Basic auth; refused before any password is hashed). Failed logins go to the audit log.
INSTALLED_APPS.append("axes")
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = [
    "web.api.auth.BasicAuthentication" if name.endswith(".BasicAuthentication") else name
    for name in REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]
]
AXES_FAILURE_LIMIT = env_int("DKRON_LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = env_duration("DKRON_LOGIN_COOLOFF", 900.0) / 3600  # hours, as axes wants
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "web.api.auth.lockout_response"
AXES_VERBOSE = False
# The client address is REMOTE_ADDR, unless DKRON_TRUST_X_FORWARDED_FOR=true: then the last
# X-Forwarded-For entry, which a proxy that is the only way in must write (docs/nginx.conf
# overwrites it), or a client could pick its own address.
TRUST_X_FORWARDED_FOR = env_bool("DKRON_TRUST_X_FORWARDED_FOR", False)
AXES_CLIENT_IP_CALLABLE = "web.api.auth.client_address"
# The API's Basic auth remembers a verified password this many seconds in each process, so a
# client sending Basic on every call does not pay the password hasher every time; a password
# change or deactivation is seen on the next request all the same (web/api/auth.py). 0: off.
BASIC_AUTH_CACHE_SECONDS = env_duration("DKRON_BASIC_AUTH_CACHE_SECONDS", 60.0)

# --- The agent's apps ------------------------------------------------------------------
# Apps that serve the web role only: the admin (its autodiscovery imports every admin module,
# forms and widgets), sessions, messages, static files, DRF and the OpenAPI generator, the
# login lockout, the UI, and the scheduler's and `serve`'s commands. No agent code uses their
# models, signals or templates: runs, webhooks and emails need jobs, auth, contenttypes (the
# models' relations) and django_celery_beat (the retention task's periodic task). Nor does an
# agent authenticate anyone, so it needs no axes backend. `manage.py agent` leaves them out
# (about 2.5 MB of its resident memory, docs/agents.md); agents run no migrations, and every
# other command (`migrate`, `check`, `serve`, which runs an agent beside the web role, and
# `celery -A dkronweb worker`, which cannot be told apart before Django is set up) has them all.
WEB_ONLY_APPS = (
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "web",
    "web.ui",
    "scheduler",
    "dkronweb",
    "axes",
)
AGENT_ENTRY_POINTS = ("manage.py", "django-admin", "__main__.py")


def _agent_command(argv: list[str]) -> bool:
    """True for `manage.py agent` (or `django-admin agent`, `python -m django agent`): the
    command name is argv[1], as Django's ManagementUtility reads it, and it is known before
    django.setup() loads the apps, which is before the command itself runs."""
    return len(argv) > 1 and argv[1] == "agent" and Path(argv[0]).name in AGENT_ENTRY_POINTS


AGENT_PROCESS = _agent_command(sys.argv)
if AGENT_PROCESS:
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in WEB_ONLY_APPS]
    AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]

# --- Email (notifications) -------------------------------------------------------------
EMAIL_BACKEND = env("DKRON_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("DKRON_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DKRON_EMAIL_PORT", 25)
EMAIL_HOST_USER = env("DKRON_EMAIL_USER")
EMAIL_HOST_PASSWORD = env_secret("DKRON_EMAIL_PASSWORD")
EMAIL_USE_TLS = env_bool("DKRON_EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("DKRON_EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = int(DKRON["NOTIFY_TIMEOUT"])
DEFAULT_FROM_EMAIL = env("DKRON_EMAIL_FROM", "dkronweb@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# "text" (default) or "json" (one object a line: timestamp, level, logger, message, and `job`
# and `execution` on lines about a run; jobs.logcontext adds them to both formats).
LOG_FORMAT = env_choice("DKRON_LOG_FORMAT", "text", ("text", "json"))
LOG_LEVEL = env_choice(
    "DKRON_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL")
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"execution": {"()": "jobs.logcontext.ExecutionFilter"}},
    "formatters": {
        "text": {
            "()": "jobs.logcontext.TextFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s%(run_fields)s %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["execution"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        # httpx logs full URLs (query strings may carry tokens) at INFO.
        "httpx": {"level": "WARNING"},
        # kafka-python logs SASL PLAIN login bytes (the password) at DEBUG.
        "kafka": {"level": "WARNING"},
    },
}
