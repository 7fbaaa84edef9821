# Issue 17: job history (JobRevision) and the revision each run ran.
#
# The two new columns have constant database defaults (a catalog change on PostgreSQL 11+, no
# rewrite), so rows a process of the previous release inserts during a rolling upgrade stay
# valid. Existing jobs get no revision: their history starts with their first change (a
# "baseline" revision of the job as it was, then the change).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0016_audit_via_apply'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='revision',
            field=models.PositiveIntegerField(db_default=0, default=0, help_text="Number of the job's current revision (0: none yet)"),
        ),
        migrations.AddField(
            model_name='run',
            name='revision',
            field=models.PositiveIntegerField(db_default=0, default=0, help_text="The job's revision it ran (0: from before revisions)"),
        ),
        migrations.CreateModel(
            name='JobRevision',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('job_name', models.CharField(help_text="The job's name", max_length=255)),
                ('number', models.PositiveIntegerField(help_text='1, 2, 3... per job name')),
                ('created_at', models.DateTimeField(auto_now_add=True, help_text='When the change was made')),
                ('actor', models.CharField(help_text="Username, or 'system'", max_length=150)),
                ('source', models.CharField(help_text='Through what: api, ui, admin, cli, system, restore (a /v1/restore backup), import (import_jobs), apply', max_length=16)),
                ('change', models.CharField(choices=[('create', 'Create'), ('update', 'Update'), ('toggle', 'Toggle'), ('delete', 'Delete'), ('restore', 'restore (rollback to an earlier revision)'), ('baseline', 'baseline (the job as it was before its first recorded change)')], help_text='What the change was', max_length=16)),
                ('data', models.JSONField(help_text='The job after the change, secrets masked')),
                ('secrets_changed', models.JSONField(blank=True, default=list, help_text='Which secrets this change set or replaced (paths such as executor_config.env.TOKEN); never their values')),
                ('restored_from', models.PositiveIntegerField(blank=True, help_text='For a restore: the revision it brought back', null=True)),
            ],
            options={
                'ordering': ['job_name', '-number'],
                'constraints': [models.UniqueConstraint(fields=('job_name', 'number'), name='unique_job_revision')],
            },
        ),
    ]
