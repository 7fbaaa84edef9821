# Issue 16 part 5: run parameters. Job.params holds a job's declared parameters (jobs.params);
# a run's values live in its snapshot (Run.snapshot["params"]), so runs need no column.
# (0012 is another branch's; the dependency is re-chained when both are merged.)

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0012_job_jitter"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="params",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Declared run parameters: a list of {name, type, default, required, description, choices}; runs get them as DKRON_PARAM_<NAME> and {{ params.<name> }}",
            ),
        ),
    ]
