"""Routes of the /v1 API (with and without the trailing slash, as Dkron's router allows)."""

from django.urls import path, re_path
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiJsonRenderer2
from drf_spectacular.views import SpectacularJSONAPIView

from web.api import (
    alerts,
    apply,
    backfill,
    calendars,
    concurrency,
    ops,
    revisions,
    schema,
    tokens,
    views,
)  # schema: registers the token auth scheme
from web.api.permissions import ApiAccess

NAME = r"(?P<name>[^/]+)"
NUMBER = r"(?P<number>[^/]+)"

urlpatterns = [
    re_path(r"^$", views.StatusView.as_view()),
    path(
        "openapi.json",
        SpectacularJSONAPIView.as_view(
            # application/json first: the document is plain JSON (its 401 follows web.api.errors).
            renderer_classes=[OpenApiJsonRenderer2, OpenApiJsonRenderer],
            permission_classes=[ApiAccess],
            custom_settings={
                "PREPROCESSING_HOOKS": [f"{schema.__name__}.dkron_paths"],
                "POSTPROCESSING_HOOKS": [
                    "drf_spectacular.hooks.postprocess_schema_enums",
                    f"{schema.__name__}.document_auth_errors",
                    f"{schema.__name__}.document_plain_text_errors",
                ],
                "COMPONENT_SPLIT_PATCH": False,  # Dkron's PATCH is a full upsert, like POST
            },
        ),
        name="openapi",
    ),
    path("members", views.MembersView.as_view()),
    path("leader", views.LeaderView.as_view()),
    path("isleader", views.IsLeaderView.as_view()),
    path("busy", views.BusyView.as_view()),
    path("leave", ops.LeaveView.as_view()),
    path("pause", ops.PauseView.as_view()),
    path("unpause", ops.UnpauseView.as_view()),
    path("restore", ops.RestoreView.as_view()),
    # dkronweb extensions: the caller's API tokens, and the audit log.
    re_path(r"^tokens/?$", tokens.TokensView.as_view()),
    re_path(r"^tokens/(?P<token_id>[^/]+)/?$", tokens.TokenView.as_view()),
    re_path(r"^audit/?$", tokens.AuditView.as_view()),
    # dkronweb extension: calendars, named by jobs' exclude_calendars and only_calendars.
    re_path(r"^calendars/?$", calendars.CalendarsView.as_view()),
    re_path(rf"^calendars/{NAME}/?$", calendars.CalendarView.as_view()),
    re_path(rf"^calendars/{NAME}/ics/?$", calendars.CalendarIcsView.as_view()),
    # dkronweb extension: jobs as files (plan with ?dry_run=true, then apply).
    re_path(r"^apply/?$", apply.ApplyView.as_view()),
    # dkronweb extension: concurrency keys (jobs' concurrency_key), read-only.
    re_path(r"^concurrency/?$", concurrency.ConcurrencyView.as_view()),
    # dkronweb extension: SLA alerts (jobs' sla rules), read-only.
    re_path(r"^alerts/?$", alerts.AlertsView.as_view()),
    # dkronweb extension: schedule previews and backfills of past fire times.
    re_path(r"^schedule/preview/?$", backfill.SchedulePreviewView.as_view()),
    re_path(rf"^jobs/{NAME}/next/?$", backfill.JobNextView.as_view()),
    re_path(rf"^jobs/{NAME}/backfill/?$", backfill.JobBackfillView.as_view()),
    re_path(rf"^jobs/{NAME}/backfills/?$", backfill.JobBackfillsView.as_view()),
    re_path(rf"^jobs/{NAME}/backfills/(?P<backfill_id>[^/]+)/?$", backfill.BackfillView.as_view()),
    re_path(
        rf"^jobs/{NAME}/backfills/(?P<backfill_id>[^/]+)/cancel/?$",
        backfill.BackfillCancelView.as_view(),
    ),
    re_path(r"^jobs/?$", views.JobsView.as_view()),
    re_path(rf"^jobs/{NAME}/?$", views.JobView.as_view()),
    re_path(rf"^jobs/{NAME}/run/?$", views.JobRunView.as_view()),
    re_path(rf"^jobs/{NAME}/toggle/?$", views.JobToggleView.as_view()),
    # dkronweb extension: a job's history, the diff of two revisions, and the rollback.
    re_path(rf"^jobs/{NAME}/revisions/?$", revisions.RevisionsView.as_view()),
    re_path(rf"^jobs/{NAME}/revisions/{NUMBER}/?$", revisions.RevisionView.as_view()),
    re_path(rf"^jobs/{NAME}/revisions/{NUMBER}/diff/?$", revisions.RevisionDiffView.as_view()),
    re_path(
        rf"^jobs/{NAME}/revisions/{NUMBER}/restore/?$", revisions.RevisionRestoreView.as_view()
    ),
    re_path(rf"^jobs/{NAME}/executions/?$", views.ExecutionsView.as_view()),
    re_path(rf"^jobs/{NAME}/executions/(?P<execution_id>[^/]+)/?$", views.ExecutionView.as_view()),
    re_path(
        rf"^jobs/{NAME}/executions/(?P<execution_id>[^/]+)/kill/?$",
        views.ExecutionKillView.as_view(),
    ),
]
