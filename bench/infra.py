"""The benchmark's own PostgreSQL database and Redis keys, and the environment of its processes.

Each run creates `dkbench_<pid>` and drops it at the end; it uses Redis database 15 and only
keys that carry its own prefix (`dkb<pid>`), so two runs (a smoke test beside a full run) do
not disturb each other, and nobody else's Redis database or PostgreSQL database is touched.
Leftovers of a run that was killed (its pid is gone) are removed by the next run.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis

PG_ADMIN_URL = os.environ.get("DKBENCH_PG_URL", "postgresql://root@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DKBENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
DB_PATTERN = re.compile(r"^dkbench_(\d+)$")
KEY_PATTERN = re.compile(r"dkb(\d+)")


@dataclass
class Infra:
    run_id: str  # the pid
    db_name: str
    prefix: str  # Redis keys, queue names, agent names
    data_dir: Path
    redis_url: str = REDIS_URL  # the broker and the bookkeeping (the soak uses its own db)
    # Where the children count their statements (bench/dbstats.py); None: not counted.
    stmt_dir: Path | None = None

    @property
    def database_url(self) -> str:
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgres://", 1)
        return f"{base}/{self.db_name}"

    @property
    def broker_url(self) -> str:
        return self.redis_url

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every child process (and of this one, for Django)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DKRON_")}
        env.update(
            DJANGO_SETTINGS_MODULE="dkronweb.settings",
            DKRON_DATABASE_URL=self.database_url,
            DKRON_BROKER_URL=self.broker_url,
            DKRON_SECRET_KEY="dkbench-not-secret",
            DKRON_DATA_DIR=str(self.data_dir),
            DKRON_ALLOWED_HOSTS="*",
            # One agent per untagged run (Dkron's default is every node): executions are then
            # counted like Celery tasks, one per fire.
            DKRON_UNTAGGED_TARGET="one",
            DKRON_LOG_LEVEL="INFO",
            DKBENCH_BROKER_URL=self.broker_url,
            DKBENCH_PREFIX=self.prefix,
            PYTHONUNBUFFERED="1",
            # Celery task events are on by default (Flower); DKBENCH_TASK_EVENTS=false measures
            # what they cost.
            DKRON_TASK_EVENTS=os.environ.get("DKBENCH_TASK_EVENTS", "true"),
        )
        if self.stmt_dir is not None:
            # bench/stmthook/sitecustomize.py: a statement counter in every child (a Django
            # execute wrapper), loaded by Python at start-up from the front of PYTHONPATH.
            hook = str(Path(__file__).resolve().parent / "stmthook")
            path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            env["PYTHONPATH"] = os.pathsep.join([hook, *(p for p in path if p != hook)])
            env["DKBENCH_STMT_DIR"] = str(self.stmt_dir)
        env.update(extra)
        return env


def make(data_root: Path) -> Infra:
    pid = str(os.getpid())
    data_dir = data_root / f"dkbench-{pid}"
    data_dir.mkdir(parents=True, exist_ok=True)
    return Infra(run_id=pid, db_name=f"dkbench_{pid}", prefix=f"dkb{pid}", data_dir=data_dir)


def _pid_alive(pid: int) -> bool:
    return pid != os.getpid() and psutil.pid_exists(pid)


def remove_leftovers() -> list[str]:
    """Drop databases and Redis keys of earlier runs whose process is gone."""
    removed: list[str] = []
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
        for name in names:
            m = DB_PATTERN.match(name)
            if m and not _pid_alive(int(m.group(1))):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                removed.append(name)
    client = redis.Redis.from_url(REDIS_URL)

    def dead(text: str) -> bool:
        m = KEY_PATTERN.search(text)
        return bool(m and not _pid_alive(int(m.group(1))))

    stale = [k for k in client.scan_iter(match="*dkb*", count=1000) if dead(_text(k))]
    if stale:
        client.delete(*stale)
        removed.append(f"{len(stale)} redis key(s)")
    members = _binding_members(client, dead)
    if members:
        removed.append(f"{members} kombu binding(s)")
    return removed


def create_database(infra: Infra) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{infra.db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{infra.db_name}"')


def drop_database(infra: Infra) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{infra.db_name}" WITH (FORCE)')


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _binding_members(client: redis.Redis, matches: Callable[[str], bool]) -> int:
    """Kombu keeps the queue bindings of all runs in shared sets: remove only matching ones."""
    removed = 0
    for key in client.scan_iter(match="_kombu.binding*", count=1000):
        kind = _text(client.type(key))
        members: list[Any]
        if kind == "set":
            members = [m for m in client.smembers(key) if matches(_text(m))]
            if members:
                removed += int(client.srem(key, *members))
        elif kind == "zset":
            members = [m for m in client.zrange(key, 0, -1) if matches(_text(m))]
            if members:
                removed += int(client.zrem(key, *members))
    return removed


def delete_keys(infra: Infra) -> int:
    """Delete this run's Redis keys (queues, logs) and its queues' kombu bindings."""
    client = infra.redis()
    keys = list(client.scan_iter(match=f"*{infra.prefix}*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])
    own = re.compile(rf"{infra.prefix}(?!\d)")
    return len(keys) + _binding_members(client, lambda m: bool(own.search(m)))


def services_reachable() -> str | None:
    """None when PostgreSQL and Redis answer; otherwise what is missing."""
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at {REDIS_URL}: {exc}"
    return None


def cleanup(infra: Infra) -> None:
    with contextlib.suppress(Exception):
        delete_keys(infra)
    drop_database(infra)
