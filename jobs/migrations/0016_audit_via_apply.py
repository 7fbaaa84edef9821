# Issue 17: jobs as files. The audit log's `via` may say "apply" (manage.py jobs apply,
# POST /v1/apply). Choices live in Python only: no SQL runs.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0015_concurrency_keys_and_slots"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditentry",
            name="via",
            field=models.CharField(
                choices=[
                    ("api", "Api"),
                    ("ui", "Ui"),
                    ("admin", "Admin"),
                    ("cli", "Cli"),
                    ("system", "System"),
                    ("apply", "Apply"),
                ],
                help_text="Which door it came through",
                max_length=8,
            ),
        ),
    ]
