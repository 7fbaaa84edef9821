"""Top-level routes: /v1 API, /ui, /admin, /health, /metrics."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from web.api.views import MetricsView, StatusView, health

urlpatterns = [
    path("", RedirectView.as_view(url="/ui/", permanent=False)),
    path("v1", StatusView.as_view()),
    path("v1/", include("web.api.urls")),
    path("ui/", include("web.ui.urls")),
    path("admin/", admin.site.urls),
    path("health", health),
    path("metrics", MetricsView.as_view()),
]
