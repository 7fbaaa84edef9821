"""On PostgreSQL the agent's claim and finish are prepared statements: planned once per
connection instead of once per execution (planning took more of the database's time than
running them). A connection that loses them (a pooler) turns preparing off, and nothing fails.
"""

from __future__ import annotations

from django.db import connection

from agent import runner
from jobs.models import Execution
from jobs.services import execution_sql
from jobs.services.runs import run_now
from tests.factories import agent, job


def run_one(name: str) -> Execution:
    run_now(job=job(name, executor="echo", executor_config={"message": name}), force=True)
    execution = Execution.objects.filter(job_name=name).latest("pk")
    assert runner.run(execution.pk, node_name="n1").status == "success"
    execution.refresh_from_db()
    return execution


def prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_claim_and_the_finish_are_prepared_once_per_connection(transactional_db, monkeypatch):
    monkeypatch.setattr(execution_sql, "_prepare", True)
    agent("n1")
    if not execution_sql.available():  # SQLite: the ORM path, nothing to prepare
        assert run_one("p0").status == "success"
        return
    for name in ("p1", "p2", "p3"):
        assert run_one(name).status == "success"
    statements = prepared()
    assert sum("SET status = $1, node_name = $2" in s for s in statements) == 1, statements
    assert sum("WITH closed AS" in s for s in statements) == 1, statements
    assert connection.connection.prepare_threshold is None  # Django's other queries: as before


def test_a_connection_that_lost_them_sends_them_unprepared(transactional_db, monkeypatch):
    monkeypatch.setattr(execution_sql, "_prepare", True)
    agent("n1")
    run_one("before")
    if not execution_sql.available():
        return
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler moving the session looks like
    after = run_one("after")
    assert after.status == "success" and "after (job after)" in after.output
    assert execution_sql._prepare is False
    assert run_one("later").status == "success"
