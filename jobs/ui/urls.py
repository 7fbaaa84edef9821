from django.urls import path

from jobs.ui import views

urlpatterns = [
    path("", views.dashboard, name="ui-dashboard"),
    path("jobs/<str:name>/", views.job_detail, name="ui-job"),
]
