"""The baseline: stock Celery and django-celery-beat, with none of dkronweb's scheduling code.

The benchmark starts it as

    celery -A bench.baseline_app worker -Q <prefix>.noop ...
    celery -A bench.baseline_app beat -S django_celery_beat.schedulers:DatabaseScheduler

The worker runs `noop(phase, key)`, which only records when it started (a Redis RPUSH). The beat
process records when it published each message (buffered and flushed to Redis by a thread every
100 ms, so the stock scheduler pays about a list append per send). The PeriodicTask rows live
in the benchmark's own database, which Django is pointed at through the usual DKRON_* settings.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dkronweb.settings")

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from celery import Celery  # noqa: E402
from celery.signals import after_task_publish, beat_init  # noqa: E402

BROKER_URL = os.environ.get("DKBENCH_BROKER_URL", "redis://127.0.0.1:6379/15")
PREFIX = os.environ.get("DKBENCH_PREFIX", "dkbench")
QUEUE = f"{PREFIX}.noop"
TASK_NAME = "dkbench.noop"

# Only the baseline's own processes make this app the current one: the benchmark process also
# imports it (to send raw no-op tasks) and must keep dkronweb's app current for its runs.
app = Celery(
    "dkbench_baseline",
    broker=BROKER_URL,
    set_as_current=os.environ.get("DKBENCH_ROLE") == "baseline",
)
app.conf.update(
    # The same message settings as dkronweb's agents, so the worker side is comparable.
    task_ignore_result=True,
    result_backend=None,
    task_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    enable_utc=True,
    task_acks_late=False,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


def start_key(prefix: str, phase: str) -> str:
    return f"{prefix}:start:{phase}"


def sent_key(prefix: str, phase: str) -> str:
    return f"{prefix}:sent:{phase}"


_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:  # created lazily, so each prefork child has its own connection
        _client = redis.Redis.from_url(BROKER_URL)
    return _client


@app.task(name=TASK_NAME, ignore_result=True)
def noop(phase: str, key: int) -> None:
    """Does nothing but record when it started."""
    _redis().rpush(start_key(PREFIX, phase), f"{key} {time.time():.6f}")


# --- The beat's send log --------------------------------------------------------------------

_sent: collections.deque[tuple[str, str]] = collections.deque()
_recording = False


def _flush_sent() -> None:
    while True:
        time.sleep(0.1)
        if not _sent:
            continue
        pipe = _redis().pipeline(transaction=False)
        while _sent:
            phase, line = _sent.popleft()
            pipe.rpush(sent_key(PREFIX, phase), line)
        # On an error the benchmark reports fewer sends; the beat is never blocked.
        with contextlib.suppress(redis.RedisError):
            pipe.execute()


@beat_init.connect
def _start_send_log(**_: Any) -> None:
    global _recording
    _recording = True
    threading.Thread(target=_flush_sent, name="dkbench-sent-log", daemon=True).start()


@after_task_publish.connect
def _record_send(sender: Any = None, body: Any = None, **_: Any) -> None:
    if not _recording or sender != TASK_NAME:
        return
    args = body[0] if isinstance(body, list | tuple) else (body or {}).get("args", [])
    if len(args) >= 2:
        _sent.append((str(args[0]), f"{args[1]} {time.time():.6f}"))
