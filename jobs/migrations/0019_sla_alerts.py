# Issue 17: SLA rules on jobs, and the alerts their breaches open.
#
# The new job columns have database defaults (rows a previous release inserts during a rolling
# upgrade stay valid). job_sla_idx holds only the jobs with rules; on PostgreSQL it is built
# CONCURRENTLY, so a large jobs table keeps taking writes (hence a non-atomic migration).

import django.db.models.deletion
from django.db import migrations, models

from jobs.migration_ops import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('jobs', '0018_backfills'),
    ]

    operations = [
        migrations.CreateModel(
            name='Alert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('job_name', models.CharField(help_text="The job's name when it opened", max_length=255)),
                ('kind', models.CharField(choices=[('late', 'Late'), ('overdue', 'Overdue'), ('no_success', 'No Success'), ('failing', 'Failing')], help_text='The rule breached', max_length=16)),
                ('state', models.CharField(choices=[('open', 'Open'), ('resolved', 'Resolved')], default='open', max_length=16)),
                ('subject', models.CharField(blank=True, default='', help_text="What breached: 'run <id>' (late), 'execution <id>' (overdue); empty for the job-wide rules (no_success, failing)", max_length=64)),
                ('detail', models.JSONField(blank=True, default=dict, help_text='What the check saw')),
                ('opened_at', models.DateTimeField(help_text='When the check opened it')),
                ('resolved_at', models.DateTimeField(blank=True, help_text='When it cleared', null=True)),
            ],
            options={
                'ordering': ['-id'],
            },
        ),
        migrations.AddField(
            model_name='job',
            name='has_sla',
            field=models.BooleanField(db_default=False, default=False, help_text='Whether `sla` holds any rule (server-kept)'),
        ),
        migrations.AddField(
            model_name='job',
            name='sla',
            field=models.JSONField(blank=True, db_default={}, default=dict, help_text='SLA rules: start_within, max_duration, kill_after, success_within (Go durations), consecutive_failures (a count)'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='job',
            index=models.Index(condition=models.Q(('has_sla', True)), fields=['id'], name='job_sla_idx'),
        ),
        migrations.AddField(
            model_name='alert',
            name='job',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='alerts', to='jobs.job'),
        ),
        migrations.AddIndex(
            model_name='alert',
            index=models.Index(condition=models.Q(('state', 'open')), fields=['id'], name='alert_open_idx'),
        ),
        migrations.AddIndex(
            model_name='alert',
            index=models.Index(fields=['job', '-id'], name='alert_job_idx'),
        ),
        migrations.AddConstraint(
            model_name='alert',
            constraint=models.UniqueConstraint(condition=models.Q(('state', 'open')), fields=('job', 'kind', 'subject'), name='alert_open_unique'),
        ),
    ]
