# Issue 15: no cost that grows with history or with the queued backlog.
#
# - exec_job_active_idx: "does this job have an active execution?" probes the job's queued and
#   running rows only (the finish statement, run_settle, forbid and replace), instead of
#   walking the job's whole history or the cluster's whole active set. `job_id IS NOT NULL`
#   in its condition (always true) keeps it to queries that compare job_id: planner
#   statistics, taken while few rows were queued, make every partial index on active rows look
#   like one row, and a query that may use one it was not meant for (the agent's claim, by
#   primary key) then reads the whole active set.
# - exec_unpublished_idx: the scheduler's per-tick catch-up queries and the takeover republish
#   read only rows never published and not finished.
# - The foreign keys' own job_id indexes go: exec_job_idx (job_id, -id), run_job_idx
#   (job_id, -id) and unique_fire_key (job_id, scheduled_at) lead with job_id already, and every
#   insert and status change paid for the extra index. Only the index is dropped (the
#   constraint stays as it is: AlterField would drop and re-validate it over the whole table).
#
# On PostgreSQL the new indexes are built CONCURRENTLY, so a large table keeps taking writes
# while they are built (hence a non-atomic migration); elsewhere they are plain CREATE INDEX.

import django.db.models.deletion
from django.db import migrations, models

from jobs.migration_ops import AddIndexConcurrentlyOnPostgres

EXEC_JOB_FK_INDEX = "jobs_execution_job_id_f1a67db0"
RUN_JOB_FK_INDEX = "jobs_run_job_id_f26ec71d"


def _drop_fk_index(model_name, related_name, index, table):
    """The state: job's ForeignKey without db_index; the database: DROP INDEX alone."""
    field = models.ForeignKey(
        db_index=False,
        on_delete=django.db.models.deletion.CASCADE,
        related_name=related_name,
        to="jobs.job",
    )
    return migrations.SeparateDatabaseAndState(
        state_operations=[migrations.AlterField(model_name=model_name, name="job", field=field)],
        database_operations=[
            migrations.RunSQL(
                f'DROP INDEX IF EXISTS "{index}"',
                reverse_sql=f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("job_id")',
            )
        ],
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0009_agent_leaving_counters"),
    ]

    operations = [
        _drop_fk_index("execution", "executions", EXEC_JOB_FK_INDEX, "jobs_execution"),
        _drop_fk_index("run", "runs", RUN_JOB_FK_INDEX, "jobs_run"),
        AddIndexConcurrentlyOnPostgres(
            model_name="execution",
            index=models.Index(
                condition=models.Q(
                    ("job__isnull", False), ("status__in", ["queued", "running"])
                ),
                fields=["job"],
                name="exec_job_active_idx",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("finished_at__isnull", True), ("published_at__isnull", True)),
                fields=["not_before"],
                name="exec_unpublished_idx",
            ),
        ),
    ]
