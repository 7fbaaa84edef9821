"""Helpers of the agent lifecycle tests: real `celery worker` agents and the real Celery CLI."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.procs import free_port
from bench.servers import listening
from tests.faults.services import Api, FaultCluster, Services
from tests.harness import ROOT, Proc, reachable, require, wait_for

HOST = socket.gethostname()


def celery_worker(
    faults: FaultCluster,
    name: str,
    *extra: str,
    pool: str = "threads",
    concurrency: int = 2,
    wait: bool = True,
    **env: str,
) -> Proc:
    """`celery -A dkronweb worker --node-name <name>` as the docs give it (no `-n`)."""
    args = [sys.executable, "-m", "celery", "-A", "dkronweb", "worker", "--node-name", name]
    args += ["--pool", pool, "-c", str(concurrency), "-l", "INFO", "--without-mingle"]
    args += ["--without-gossip", *extra]
    proc = Proc(f"worker-{name}", args, faults.services.env(**env), faults.log_dir)
    faults.procs.append(proc)
    if wait:
        faults.wait_registered(proc, name)
    return proc


def celery_cli(
    services: Services, *args: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> str:
    """Run `celery -A dkronweb <args>` against the private broker (or `env`'s); its output."""
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "dkronweb", *args],
        cwd=ROOT,
        env=services.env(**(env or {})),
        capture_output=True,
        timeout=timeout,
        text=True,
    )
    return done.stdout + done.stderr


def inspect_json(
    services: Services, what: str, node: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    out = celery_cli(services, "inspect", what, "-d", node, "--json", "-t", "5", env=env)
    start = out.find("{")
    data: dict[str, Any] = json.loads(out[start : out.rfind("}") + 1]) if start >= 0 else {}
    return data


def job_processes(execution_id: int) -> list[psutil.Process]:
    """Live processes of one execution (by the environment the shell executor gives them)."""
    found = []
    for proc in psutil.process_iter():
        try:
            mine = proc.environ().get("DKRON_EXECUTION_ID") == str(execution_id)
            if mine and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


@dataclass
class Broker:
    """The broker a test runs on: the fault harness's Redis, or a RabbitMQ vhost of its own
    (with a web process of its own publishing there, so API runs go through it too)."""

    name: str
    url: str
    api: Api

    @property
    def env(self) -> dict[str, str]:
        return {"DKRON_BROKER_URL": self.url}

    def queue_length(self, queue: str) -> int:
        """Messages ready in a queue (0 when it does not exist), by a passive declare."""
        from kombu import Connection

        with Connection(self.url, connect_timeout=5) as conn:
            channel = conn.channel()
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            except conn.channel_errors:
                return 0
            finally:
                with contextlib.suppress(Exception):
                    channel.close()


RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"


def _rabbitmqctl(*args: str) -> None:
    subprocess.run([RABBITMQCTL, *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def broker(kind: str, faults: FaultCluster, services: Services) -> Iterator[Broker]:
    if kind == "redis":
        yield Broker("redis", services.redis.url(), services.api)
        return
    require(
        reachable("127.0.0.1", 5672) and Path(RABBITMQCTL).exists(),
        "RabbitMQ on 127.0.0.1:5672 and rabbitmqctl",
    )
    vhost = f"dk-agents-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        port = free_port()
        args = [sys.executable, "manage.py", "serve", "--no-agent", "--no-scheduler"]
        web = Proc("web-rabbitmq", [*args, "--port", str(port)], services.env(
            DKRON_BROKER_URL=url), faults.log_dir)  # fmt: skip
        faults.procs.append(web)
        wait_for(lambda: listening(port), timeout=60, what="the RabbitMQ web process")
        yield Broker("rabbitmq", url, Api(f"http://127.0.0.1:{port}"))
    finally:
        faults.stop_all()
        with contextlib.suppress(Exception):
            _rabbitmqctl("delete_vhost", vhost)
