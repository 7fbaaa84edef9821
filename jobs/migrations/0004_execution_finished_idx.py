# Retention (jobs.services.retention) deletes finished executions oldest first by this index.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0003_agent_metrics'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='execution',
            index=models.Index(
                condition=models.Q(('finished_at__isnull', False)),
                fields=['finished_at'],
                name='exec_finished_idx',
            ),
        ),
    ]
