# Issue 15: the maintenance sweep's cost must not grow with a healthy queued backlog.
#
# exec_published_idx (node_name, published_at, id), on rows published and not finished: the
# sweep asks, per live agent, for its queued executions published before the messages still
# waiting in the agent's broker queue, newest publish first, past as many as the queue holds.
# This index answers it by reading those few rows, not the agent's whole backlog. No `status`
# in its condition (see exec_unpublished_idx in 0010): the sweep compares the status in a form
# the planner cannot use to pick exec_active_idx, which would read the node's whole backlog.
#
# On PostgreSQL the index is built CONCURRENTLY, so a large table keeps taking writes while it
# is built (hence a non-atomic migration); elsewhere it is a plain CREATE INDEX.

from django.db import migrations, models

from jobs.migration_ops import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0010_history_indexes"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("finished_at__isnull", True), ("published_at__isnull", False)),
                fields=["node_name", "published_at", "id"],
                name="exec_published_idx",
            ),
        ),
    ]
