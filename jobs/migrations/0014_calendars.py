# Issue 16 part 3: calendars and blackout windows.
#
# The Calendar table, and two job fields naming calendars (exclude_calendars, only_calendars:
# JSON lists of names, so the fire path reads them with the job and a job without calendars
# costs no join). The roles of 0005 get the calendar permissions: every role may view them,
# editors (and code-editors) may add, change and delete them, as they may jobs.

from django.contrib.auth.management import create_permissions
from django.db import migrations, models

VIEW = ["view_calendar"]
EDIT = ["view_calendar", "add_calendar", "change_calendar", "delete_calendar"]
ROLES = {"read-only": VIEW, "operator": VIEW, "editor": EDIT, "code-editor": EDIT}


def grant(apps, schema_editor):
    config = apps.get_app_config("jobs")
    config.models_module = True
    create_permissions(config, verbosity=0, apps=apps)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group = Group.objects.filter(name=name).first()
        if group is None:
            continue  # an operator removed the role: nothing to extend
        perms = Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames)
        group.permissions.add(*perms)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="jobs", codename__in=EDIT).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0013_job_params"),
    ]

    operations = [
        migrations.CreateModel(
            name="Calendar",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(help_text="a-z, 0-9, _ and -", max_length=255, unique=True)),
                ("description", models.TextField(blank=True, default="")),
                ("timezone", models.CharField(help_text="IANA zone the times are read in", max_length=64)),
                (
                    "dates",
                    models.JSONField(blank=True, default=list, help_text="Whole local days, YYYY-MM-DD"),
                ),
                (
                    "ranges",
                    models.JSONField(
                        blank=True, default=list, help_text="Local [start, end) wall times, ISO 8601"
                    ),
                ),
                (
                    "windows",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="Weekly windows {days, start, end}; end before start crosses midnight",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"ordering": ["name"]},
        ),
        migrations.AddField(
            model_name="job",
            name="exclude_calendars",
            field=models.JSONField(
                blank=True, default=list, help_text="Names of calendars this job never fires inside"
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="only_calendars",
            field=models.JSONField(
                blank=True, default=list, help_text="Names of calendars this job fires only inside"
            ),
        ),
        migrations.RunPython(grant, revoke),
    ]
