"""Where templates live: the UI's at the top-level `templates/` (the layout the product was
specified with), apps' own templates still found beside them."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.template.loader import get_template

ROOT = Path(settings.BASE_DIR)


def test_the_ui_templates_load_from_the_top_level_templates_folder():
    origin = Path(get_template("ui/job.html").origin.name)
    assert origin == ROOT / "templates" / "ui" / "job.html"


def test_no_ui_templates_are_left_inside_the_app():
    assert not (ROOT / "jobs" / "ui" / "templates").exists()


def test_app_templates_such_as_the_admins_still_load():
    origin = Path(get_template("admin/base.html").origin.name)
    assert "django/contrib/admin" in origin.as_posix()
