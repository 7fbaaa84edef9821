# Issue 16: agent slots, concurrency keys and rate limits.
#
# The new columns have constant defaults, in the database too (a catalog change on PostgreSQL
# 11+, no rewrite; and rows inserted by a process of the previous release, which names none
# of them, stay valid during a rolling upgrade). The four indexes hold only held executions
# (waiting) and keyed ones, so they stay small; on PostgreSQL they are built CONCURRENTLY, so
# a large executions table keeps taking writes (hence a non-atomic migration); elsewhere they
# are plain CREATE INDEX.

from django.db import migrations, models

from jobs.migration_ops import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('jobs', '0014_calendars'),
    ]

    operations = [
        migrations.CreateModel(
            name='ConcurrencyKey',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=255, unique=True)),
                ('limit', models.PositiveIntegerField(blank=True, help_text='None: no limit', null=True)),
                ('rate_limit', models.CharField(blank=True, default='', max_length=32)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['key'],
            },
        ),
        migrations.AddField(
            model_name='agent',
            name='slots',
            field=models.PositiveIntegerField(db_default=0, default=0, help_text='Executions it runs at once (--slots; 0: its pool concurrency)'),
        ),
        migrations.AddField(
            model_name='execution',
            name='concurrency_key',
            field=models.CharField(blank=True, db_default='', default='', max_length=255),
        ),
        migrations.AddField(
            model_name='execution',
            name='waiting',
            field=models.CharField(blank=True, db_default='', default='', max_length=8),
        ),
        migrations.AddField(
            model_name='job',
            name='concurrency_key',
            field=models.CharField(blank=True, db_default='', default='', help_text='Executions holding the same key share its limits; may use {metadata.x}', max_length=255),
        ),
        migrations.AddField(
            model_name='job',
            name='concurrency_limit',
            field=models.PositiveIntegerField(blank=True, help_text='At most this many executions of the key run at once', null=True),
        ),
        migrations.AddField(
            model_name='job',
            name='rate_limit',
            field=models.CharField(blank=True, db_default='', default='', help_text="Starts of the key's executions: N/s, N/m or N/h", max_length=32),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='execution',
            index=models.Index(condition=models.Q(models.Q(('waiting', ''), _negated=True), ('finished_at__isnull', True)), fields=['waiting', 'id'], name='exec_waiting_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='execution',
            index=models.Index(condition=models.Q(models.Q(('waiting', ''), _negated=True), models.Q(('concurrency_key', ''), _negated=True), ('finished_at__isnull', True)), fields=['concurrency_key', 'id'], name='exec_key_waiting_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='execution',
            index=models.Index(condition=models.Q(models.Q(('waiting', 'key'), _negated=True), models.Q(('concurrency_key', ''), _negated=True), ('finished_at__isnull', True)), fields=['concurrency_key', 'status'], name='exec_key_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='execution',
            index=models.Index(condition=models.Q(models.Q(('concurrency_key', ''), _negated=True), ('started_at__isnull', False)), fields=['concurrency_key', 'started_at'], name='exec_key_started_idx'),
        ),
    ]
