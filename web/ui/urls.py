"""Routes of the web UI under /ui/ (names are `ui-*`; templates and tests use the names)."""

from django.urls import path

from web.ui.views import (
    auth,
    backfill,
    calendars,
    cluster,
    concurrency,
    dashboard,
    job_detail,
    job_form,
    job_history,
    job_list,
    tokens,
)

urlpatterns = [
    path("", dashboard.dashboard, name="ui-dashboard"),
    path("login/", auth.LoginView.as_view(), name="ui-login"),
    path("logout/", auth.logout, name="ui-logout"),
    # Jobs list and bulk actions (POST, with a confirmation step).
    path("jobs/", job_list.job_list, name="ui-jobs"),
    path("jobs/bulk/", job_list.job_bulk, name="ui-jobs-bulk"),
    # Create / edit / clone; the executor's config fields are a fragment swapped in on change.
    path("jobs/new/", job_form.job_create, name="ui-job-new"),
    path("executor-fields/", job_form.executor_fields, name="ui-executor-fields"),
    path("jobs/<str:name>/edit/", job_form.job_edit, name="ui-job-edit"),
    path("jobs/<str:name>/clone/", job_form.job_clone, name="ui-job-clone"),
    # One job: page, its executions fragment (live refresh), actions (POST).
    path("jobs/<str:name>/", job_detail.job_page, name="ui-job"),
    path("jobs/<str:name>/full/<str:part>/", job_detail.job_full_value, name="ui-job-full"),
    path("jobs/<str:name>/executions/", job_detail.job_executions, name="ui-job-executions"),
    path("jobs/<str:name>/run/", job_detail.job_run, name="ui-job-run"),
    path("jobs/<str:name>/toggle/", job_detail.job_toggle, name="ui-job-toggle"),
    path("jobs/<str:name>/delete/", job_detail.job_delete, name="ui-job-delete"),
    # Its history: revisions, one with its diff, the restore (POST).
    path("jobs/<str:name>/history/", job_history.job_history, name="ui-job-history"),
    path("jobs/<str:name>/history/<int:number>/", job_history.job_revision, name="ui-job-revision"),
    path(
        "jobs/<str:name>/history/<int:number>/restore/",
        job_history.job_revision_restore,
        name="ui-job-revision-restore",
    ),
    # Backfills of a job's past fire times: the form (dry run, start), progress, cancel.
    path("jobs/<str:name>/backfill/", backfill.backfill_form, name="ui-backfill-form"),
    path("jobs/<str:name>/backfills/<int:pk>/", backfill.backfill_page, name="ui-backfill"),
    path(
        "jobs/<str:name>/backfills/<int:pk>/cancel/",
        backfill.backfill_cancel,
        name="ui-backfill-cancel",
    ),
    path("executions/<int:pk>/output/", job_detail.execution_output, name="ui-execution-output"),
    path("executions/<int:pk>/kill/", job_detail.execution_kill, name="ui-execution-kill"),
    # The cluster.
    path("busy/", cluster.busy, name="ui-busy"),
    path("busy/fragment/", cluster.busy_fragment, name="ui-busy-fragment"),
    path("members/", cluster.members, name="ui-members"),
    # Concurrency keys with their limits and counts (read only: set on the jobs).
    path("concurrency/", concurrency.concurrency, name="ui-concurrency"),
    # Calendars (read only: edited through /v1/calendars or the admin).
    path("calendars/", calendars.calendars, name="ui-calendars"),
    # The signed-in user's API tokens.
    path("tokens/", tokens.tokens, name="ui-tokens"),
    path("tokens/<int:pk>/revoke/", tokens.token_revoke, name="ui-token-revoke"),
]
