"""Broker queue depths: the messages waiting in the node queues, read from Redis or RabbitMQ.

/metrics reports them, and the scheduler's sweep reads them to tell a lost message from a long
queue (jobs.services.maintenance), so they live in the core, under the roles that use them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from jobs.dispatch import node_queue

NODE_QUEUE_PREFIX = node_queue("")
BROKER_TIMEOUT = 1.0  # seconds, per broker call: a scrape must answer while the broker is down
SCAN_LIMIT = 10_000  # keys looked at when listing node queues in Redis


def _broker_url() -> str:
    url = settings.CELERY_BROKER_URL
    if isinstance(url, list | tuple):
        url = url[0] if url else ""
    return str(url or "").split(";")[0].strip()


def queue_depths(queues: Iterable[str], *, discover: bool = True) -> dict[str, int] | None:
    """Messages per queue: the given ones and, with `discover`, any node queue the broker holds.

    Ready messages only, on every transport: a message an agent has reserved (prefetched,
    or held for its ETA) and not acknowledged yet is not counted.

    None when the transport is not one this can read (Redis, RabbitMQ and the in-memory
    broker are). AMQP cannot list queues: there the depths are those of the given queues (the
    default queue and every registered agent's), a queue not declared yet counting 0. Raises
    what the broker client raises when the broker does not answer (within BROKER_TIMEOUT).
    """
    url = _broker_url()
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme in ("redis", "rediss"):
        return _redis_depths(url, set(queues), discover=discover)
    if scheme in AMQP_SCHEMES:
        return _amqp_depths(url, set(queues))
    if scheme == "memory":
        return _memory_depths(set(queues), discover=discover)
    return None


_redis_lock = threading.Lock()
_redis_clients: dict[str, Any] = {}


def _redis_client(url: str) -> Any:
    import redis

    with _redis_lock:
        client = _redis_clients.get(url)
        if client is None:
            client = redis.Redis.from_url(
                url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT
            )
            _redis_clients[url] = client
        return client


def _redis_depths(url: str, queues: set[str], *, discover: bool) -> dict[str, int]:
    """LLEN of each queue and its priority lists, as kombu's Redis transport lays them out."""
    from kombu.transport import redis as kombu_redis

    options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {})
    prefix = str(options.get("global_keyprefix") or "")
    sep = str(options.get("sep") or kombu_redis.Channel.sep)
    steps = list(options.get("priority_steps") or kombu_redis.PRIORITY_STEPS)
    client = _redis_client(url)
    keys = client.scan_iter(match=f"{prefix}{NODE_QUEUE_PREFIX}*", count=1000) if discover else ()
    for i, key in enumerate(keys):
        if i >= SCAN_LIMIT:
            break
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        queues.add(name[len(prefix) :].split(sep)[0])
    ordered = sorted(queues)
    with client.pipeline(transaction=False) as pipe:
        for queue in ordered:
            for pri in steps:
                pipe.llen(f"{prefix}{queue}{sep}{pri}" if pri else f"{prefix}{queue}")
        lengths = pipe.execute()
    return {
        queue: int(sum(lengths[i * len(steps) : (i + 1) * len(steps)]))
        for i, queue in enumerate(ordered)
    }


AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
NOT_FOUND = 404  # the AMQP reply code of a passive declare of a queue that does not exist


def _amqp_depths(url: str, queues: set[str]) -> dict[str, int]:
    """message_count of a passive queue.declare per queue (RabbitMQ), over one connection.

    Ready messages only, as LLEN in Redis: a message an agent holds unacknowledged (prefetched,
    or running with acks_late) is not counted. A missing queue closes its channel; the next
    queue gets a fresh one.
    """
    from kombu import Connection

    options = {"read_timeout": BROKER_TIMEOUT, "write_timeout": BROKER_TIMEOUT}
    sizes: dict[str, int] = {}
    ssl = getattr(settings, "CELERY_BROKER_USE_SSL", None) or False
    with Connection(
        url, connect_timeout=BROKER_TIMEOUT, transport_options=options, ssl=ssl
    ) as conn:
        conn.ensure_connection(max_retries=0, timeout=max(1, int(BROKER_TIMEOUT)))
        channel: Any = conn.channel()
        try:
            for queue in sorted(queues):
                try:
                    _, count, _ = channel.queue_declare(queue=queue, passive=True)
                except Exception as exc:  # amqp.exceptions.NotFound: the queue is not there
                    if getattr(exc, "code", None) != NOT_FOUND:
                        raise
                    sizes[queue] = 0
                    channel = conn.channel()
                    continue
                sizes[queue] = int(count)
        finally:
            with contextlib.suppress(Exception):
                channel.close()
    return sizes


def _memory_depths(queues: set[str], *, discover: bool) -> dict[str, int]:
    """The in-process broker of the embedded mode (web and agent share the process)."""
    from kombu.transport import memory

    held = dict(memory.Channel.queues)
    if discover:
        queues |= {q for q in held if q.startswith(NODE_QUEUE_PREFIX)}
    return {q: int(held[q].qsize()) if q in held else 0 for q in sorted(queues)}
