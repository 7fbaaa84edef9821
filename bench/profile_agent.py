"""`python -m bench.profile_agent [N]`: what one execution costs an agent, without Celery.

Creates its own database (`dkbench_<pid>`, dropped at the end), N jobs with the `echo`
executor and one registered agent, starts their runs (nothing is published), then in this
process claims, runs and finishes each execution the way an agent does, and prints the wall
time and CPU per execution and per step, beside the round trip of a bare `SELECT 1` and of a
one-row `UPDATE` with and without a synchronous commit. It is the profile behind the README's
end-to-end figure: what the database path costs, apart from the broker and the process pool.
`--cprofile` adds cProfile's table of the runner loop (cumulative and own time).
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds of a PostgreSQL backend on this host (None when not readable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _commits(cursor: Any) -> int:
    """Transactions committed in this database (PostgreSQL's own statistics)."""
    cursor.execute("SELECT pg_stat_force_next_flush()")
    cursor.execute("SELECT pg_stat_clear_snapshot()")
    cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    return int(cursor.fetchone()[0])


def main(n: int, *, profile: bool = False) -> None:
    from bench import infra

    env = infra.make(Path(tempfile.gettempdir()))
    infra.create_database(env)
    os.environ.update(env.env())
    try:
        _profile(n, profile=profile)
    finally:
        from django.db import connections

        connections.close_all()
        infra.drop_database(env)


def _profile(n: int, *, profile: bool) -> None:
    import logging

    import django

    django.setup()
    logging.disable(logging.INFO)
    from django.core.management import call_command
    from django.db import connection, transaction

    from agent import runner
    from jobs import dispatch
    from jobs.models import Execution, Job
    from jobs.services.agents import agent_register
    from jobs.services.executions import execution_claim, execution_finish
    from jobs.services.runs import Fire, start_runs

    call_command("migrate", verbosity=0)
    agent_register(name="profile", instance_id="p", tags={})
    jobs = Job.objects.bulk_create(
        Job(name=f"p-{i}", schedule="@manually", executor="echo", executor_config={"message": "x"})
        for i in range(2 * n)
    )
    publish = dispatch.publish_on_commit
    dispatch.publish_on_commit = lambda *a, **k: None  # measure the database only
    try:
        with transaction.atomic():
            start_runs([Fire(job=j, scheduled_at=None, trigger="manual") for j in jobs])
    finally:
        dispatch.publish_on_commit = publish
    ids = list(Execution.objects.order_by("id").values_list("id", flat=True))

    with connection.cursor() as cursor:
        t = time.perf_counter()
        for _ in range(500):
            cursor.execute("SELECT 1")
        select1 = (time.perf_counter() - t) / 500
        pk = jobs[0].pk
        t = time.perf_counter()
        for _ in range(200):
            cursor.execute("UPDATE jobs_job SET missed_count = missed_count WHERE id = %s", [pk])
        update_sync = (time.perf_counter() - t) / 200
        cursor.execute("SET synchronous_commit TO OFF")
        t = time.perf_counter()
        for _ in range(200):
            cursor.execute("UPDATE jobs_job SET missed_count = missed_count WHERE id = %s", [pk])
        update_async = (time.perf_counter() - t) / 200
        cursor.execute("SET synchronous_commit TO ON")

    claim = finish = 0.0
    for pk in ids[:n]:
        t0 = time.perf_counter()
        execution = execution_claim(execution_id=pk, node_name="profile")
        t1 = time.perf_counter()
        execution_finish(execution_id=pk, status="success", output="x\n", claimed=execution)
        claim, finish = claim + t1 - t0, finish + time.perf_counter() - t1
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
        commits0 = _commits(cursor)
    statements = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    b0 = _backend_cpu(backend)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    c0, t0 = _cpu(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    with connection.execute_wrapper(count):
        for pk in ids[n:]:
            runner.run_execution(pk, node_name="profile")
    if profiler is not None:
        profiler.disable()
    wall, cpu = (time.perf_counter() - t0) / n, (_cpu() - c0) / n
    b1 = _backend_cpu(backend)
    with connection.cursor() as cursor:
        commits = _commits(cursor) - commits0 - 3  # the three statistics reads commit too

    ms = 1000.0
    print(f"database: {connection.vendor}, {n} executions per measurement")
    print(f"round trip SELECT 1:            {select1 * ms:6.2f} ms")
    print(f"one-row UPDATE, sync commit:    {update_sync * ms:6.2f} ms")
    print(f"one-row UPDATE, async commit:   {update_async * ms:6.2f} ms")
    print(f"claim (service):                {claim / n * ms:6.2f} ms")
    print(f"finish (service):               {finish / n * ms:6.2f} ms")
    print(f"whole execution (runner), wall: {wall * ms:6.2f} ms")
    print(f"whole execution (runner), CPU:  {cpu * ms:6.2f} ms of this process")
    if b0 is not None and b1 is not None:
        print(f"whole execution, database CPU:  {(b1 - b0) / n * ms:6.2f} ms of its backend")
    print(f"statements per execution:       {statements / n:6.2f}")
    print(f"commits per execution:          {commits / n:6.2f} (pg_stat_database)")
    if profiler is not None:
        import pstats

        print("\ncProfile of the runner loop (cumulative, then own time):")
        stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
        stats.sort_stats("cumulative").print_stats(35)
        stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--cprofile"]
    main(int(args[0]) if args else 500, profile="--cprofile" in sys.argv[1:])
