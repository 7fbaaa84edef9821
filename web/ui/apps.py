from django.apps import AppConfig


class UiConfig(AppConfig):
    """The web UI: its own app so its templates, tags and static files are found."""

    name = "web.ui"
    label = "ui"
    verbose_name = "dkronweb UI"
