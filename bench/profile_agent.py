"""`python -m bench.profile_agent [N]`: what one execution costs an agent, without Celery.

Creates its own database (`dkbench_<pid>`, dropped at the end), N jobs with the `echo`
executor and one registered agent, starts their runs (nothing is published), then in this
process claims, runs and finishes each execution the way an agent does, and prints the wall
time and CPU per execution and per step, beside the round trip of a bare `SELECT 1` and of a
one-row `UPDATE` with and without a synchronous commit. It is the profile behind the README's
end-to-end figure: what the database path costs, apart from the broker and the process pool.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(n: int) -> None:
    from bench import infra

    env = infra.make(Path(tempfile.gettempdir()))
    infra.create_database(env)
    os.environ.update(env.env())
    try:
        _profile(n)
    finally:
        from django.db import connections

        connections.close_all()
        infra.drop_database(env)


def _profile(n: int) -> None:
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
    c0, t0 = _cpu(), time.perf_counter()
    for pk in ids[n:]:
        runner.run_execution(pk, node_name="profile")
    wall, cpu = (time.perf_counter() - t0) / n, (_cpu() - c0) / n

    ms = 1000.0
    print(f"database: {connection.vendor}, {n} executions per measurement")
    print(f"round trip SELECT 1:            {select1 * ms:6.2f} ms")
    print(f"one-row UPDATE, sync commit:    {update_sync * ms:6.2f} ms")
    print(f"one-row UPDATE, async commit:   {update_async * ms:6.2f} ms")
    print(f"claim (service):                {claim / n * ms:6.2f} ms")
    print(f"finish (service):               {finish / n * ms:6.2f} ms")
    print(f"whole execution (runner), wall: {wall * ms:6.2f} ms")
    print(f"whole execution (runner), CPU:  {cpu * ms:6.2f} ms of this process")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
