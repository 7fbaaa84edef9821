# Roles (SPEC 11): scoped API tokens, the audit log, and the groups read-only, operator,
# editor and code-editor. Each role holds the one before it, so every group is also a usable
# token scope. Leaving (change_agent) and reading the audit log (view_auditentry) are in no
# group: superusers have them, or grant them directly.

import django.db.models.deletion
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

READ = [
    "view_job",
    "view_run",
    "view_execution",
    "view_agent",
    "view_clusterflag",
    "view_lease",
]
OPERATE = [*READ, "operate_job"]
EDIT = [*OPERATE, "add_job", "change_job", "delete_job"]
ROLES = {
    "read-only": READ,
    "operator": OPERATE,
    "editor": EDIT,
    "code-editor": [*EDIT, "run_code_jobs"],
}


def create_roles(apps, schema_editor):
    # Permissions are normally made after all migrations (post_migrate); make them now.
    for label in ("auth", "contenttypes", "jobs"):
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, verbosity=0, apps=apps)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames)
        assert perms.count() == len(codenames), (name, sorted(p.codename for p in perms))
        group.permissions.add(*perms)


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('jobs', '0004_execution_finished_idx'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(auto_now_add=True, db_index=True, help_text='When it happened')),
                ('actor', models.CharField(help_text="Username, or 'system'", max_length=150)),
                ('via', models.CharField(choices=[('api', 'Api'), ('ui', 'Ui'), ('admin', 'Admin'), ('cli', 'Cli'), ('system', 'System')], help_text='Which door it came through', max_length=8)),
                ('action', models.CharField(db_index=True, help_text='create, run, kill, ...', max_length=32)),
                ('target', models.CharField(blank=True, default='', help_text='Job, token...', max_length=255)),
                ('detail', models.JSONField(blank=True, default=dict, help_text='Context; never secrets')),
            ],
            options={
                'verbose_name_plural': 'audit entries',
                'ordering': ['-at', '-id'],
            },
        ),
        migrations.AddField(
            model_name='apitoken',
            name='expires_at',
            field=models.DateTimeField(blank=True, help_text='Refused after this time', null=True),
        ),
        migrations.AddField(
            model_name='apitoken',
            name='role',
            field=models.ForeignKey(blank=True, help_text="Limits the token to this group's permissions (never beyond its user's); empty: the user's own permissions", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='auth.group'),
        ),
        migrations.RunPython(create_roles, drop_roles),
    ]
