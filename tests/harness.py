"""Test harness: real agent and scheduler processes against the test database and Redis.

The process plumbing (Proc, wait_for, free_port) is bench/procs.py's, shared with the
benchmark, the soak and the fault checker; bench never imports the tests.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from bench import procs
from bench.procs import ROOT as ROOT  # re-exported, as the tests import it from here
from bench.procs import agent_args, scheduler_args
from bench.procs import wait_for as wait_for  # re-exported: the tests' one wait_for

CI = bool(os.environ.get("CI"))


def require(ok: bool, reason: str) -> None:
    """Skip with the reason when run by hand; fail when CI is set (CI must never skip)."""
    if ok:
        return
    if CI:
        pytest.fail(f"{reason} (CI is set, so a missing service fails the run)")
    pytest.skip(reason)


def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def database_url() -> str:
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "root"
    return f"postgres://{user}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


class Proc(procs.Proc):
    """bench/procs.py's child process, with the tests' shorter patience on stop()."""

    stop_timeout = 5.0


class Cluster:
    """Starts agents and schedulers that share the test database and a private Redis db."""

    def __init__(self, log_dir: Path, broker_url: str) -> None:
        self.log_dir = log_dir
        self.broker_url = broker_url
        self.procs: list[Proc] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="dkronweb.settings_test",
            DKRON_DATABASE_URL=database_url(),
            DKRON_BROKER_URL=self.broker_url,
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def agent(
        self,
        name: str,
        *tags: str,
        pool: str = "threads",
        concurrency: int = 4,
        wait: bool = True,
        slots: int | None = None,
        **env: str,
    ) -> Proc:
        from jobs.models import Agent

        args = agent_args(name, *tags, pool=pool, concurrency=concurrency)
        if slots is not None:  # executions run at once (issue 16); the pool runs this many
            args += ["--slots", str(slots)]
        proc = Proc(f"agent-{name}", args, self.env(DKRON_NODE_NAME=name, **env), self.log_dir)
        self.procs.append(proc)
        if wait:
            started = time.monotonic()

            def registered() -> bool:
                if not proc.alive():
                    raise AssertionError(f"agent {name} exited:\n{proc.log()[-3000:]}")
                agent = Agent.objects.filter(name=name, left=False).first()
                return bool(
                    agent
                    and agent.started_at
                    and agent.started_at.timestamp() > 0
                    and agent.instance_id
                    and "ready" in proc.log()
                )

            wait_for(registered, timeout=30, what=f"agent {name} to register")
            proc.started_in = time.monotonic() - started  # type: ignore[attr-defined]
        return proc

    def scheduler(self, name: str = "scheduler", **env: str) -> Proc:
        # Its member name in /v1/members and /v1/leader: two schedulers on one host need two.
        proc = Proc(name, scheduler_args(name), self.env(**env), self.log_dir)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


# --- RabbitMQ as the broker -------------------------------------------------------------------

AMQP_URL = os.environ.get("DKRON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/dkronweb-test")


def amqp_vhost(url: str = AMQP_URL) -> str:
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path[1:]) or "/"


def require_rabbitmq(url: str = AMQP_URL) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    where = f"RabbitMQ at {parts.hostname}:{parts.port or 5672}"
    require(
        reachable(parts.hostname or "127.0.0.1", parts.port or 5672),
        f"{where} is needed (DKRON_TEST_AMQP_URL)",
    )
    reset_rabbitmq(url)  # creates the vhost where rabbitmqctl can
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=0)
    except Exception as exc:
        vhost = amqp_vhost(url)
        require(
            False,
            f"{where}: vhost {vhost!r} is not usable ({exc}); create it (rabbitmqctl add_vhost "
            f"{vhost}; rabbitmqctl set_permissions -p {vhost} guest '.*' '.*' '.*') or set "
            "DKRON_TEST_AMQP_URL",
        )


def reset_rabbitmq(url: str = AMQP_URL, queues: tuple[str, ...] = ()) -> None:
    """Delete the vhost's queues (connections to it stay open, e.g. a web process's).

    As root on the broker's host, rabbitmqctl creates the vhost when it is missing and lists
    every queue in it; otherwise the named ones are deleted (the vhost must then exist).
    """
    import shutil
    from urllib.parse import unquote, urlsplit

    from kombu import Connection

    vhost = amqp_vhost(url)
    ctl = shutil.which("rabbitmqctl")
    names = set(queues)
    if ctl and os.geteuid() == 0:
        user = unquote(urlsplit(url).username or "guest")
        if vhost != "/":
            for args in (
                ["add_vhost", vhost],
                ["set_permissions", "-p", vhost, user, ".*", ".*", ".*"],
            ):
                subprocess.run([ctl, "-q", *args], capture_output=True, timeout=60)
        listed = subprocess.run(
            [ctl, "-q", "list_queues", "-p", vhost, "name", "--no-table-headers"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        names |= {n.strip() for n in listed.stdout.splitlines() if n.strip()}
    with Connection(url, connect_timeout=5) as conn:
        for queue in sorted(names):
            if vhost == "/" and not queue.startswith("dkron."):
                continue  # a shared vhost: only dkronweb's own queues
            channel = conn.channel()
            with contextlib.suppress(Exception):
                channel.queue_delete(queue)
            with contextlib.suppress(Exception):
                channel.close()


@contextlib.contextmanager
def celery_broker(url: str) -> Any:
    """This process's Celery app and settings publish to `url` (the in-process API's runs)."""
    from django.conf import settings

    from dkronweb.celery import app

    def drop_pools() -> None:
        # Dropped, not closed: kombu keeps its pools per URL for the whole process, and a
        # closed one would be handed back when this URL is used again.
        # app.amqp too: its queues, exchanges and the task-sent events' dispatcher are bound
        # to the broker they first met (the event exchange is fanout on Redis, topic on AMQP).
        app._pool = None  # type: ignore[attr-defined]
        app.__dict__.pop("amqp", None)

    saved = app.conf.broker_url, settings.CELERY_BROKER_URL
    drop_pools()
    app.conf.broker_url = settings.CELERY_BROKER_URL = url
    try:
        yield
    finally:
        drop_pools()
        app.conf.broker_url, settings.CELERY_BROKER_URL = saved


def empty_test_broker() -> Any:
    """FLUSHDB the test broker's Redis database and return a client; None when the broker is
    not a reachable Redis. The sweep reads the node queues' depths to tell a lost message from
    a long queue, so a test of what it republishes starts from empty queues (messages other
    tests published stay in the test broker: nothing consumes them)."""
    from django.conf import settings

    url = str(settings.CELERY_BROKER_URL)
    if not url.startswith("redis://") or not reachable("127.0.0.1", 6379):
        return None
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    return client
