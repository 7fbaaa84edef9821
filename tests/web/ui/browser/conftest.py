"""Real-browser fixtures: Debian's Chromium driven by Playwright against pytest-django's live
server, which runs the project in-process on the test database (so the tests use
`transactional_db`: agent subprocesses and the server thread see committed rows only).

Static files: pytest-django's live server wraps the app in Django's StaticFilesHandler when
`django.contrib.staticfiles` is installed, so /static/ui/app.js and app.css are served; `UI`
records their responses and the tests assert they loaded.

Screenshots (full page) go to tests/web/ui/artifacts/<test>-<nn>-<step>.png (git-ignored), one per
page visited, plus <test>-99-FAILED.png when a test fails.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from tests.harness import require

CHROMIUM = os.environ.get("DKRON_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
TIMEOUT_MS = 10_000

ADMIN = ("ui-admin", "ui-admin-pass")
VIEWER = ("ui-viewer", "ui-viewer-pass")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)  # the page fixture screenshots failures
    return report


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for the browser tests (Debian's binary; never
    `playwright install`). Package scope, not session: Playwright's loop on the main thread
    must be gone before tests that call asyncio.run() themselves (the nats executor)."""
    require(os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is needed: apt-get install chromium")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        require(False, "playwright is needed: pip install -r requirements-dev.txt")
        raise
    # Playwright's sync API keeps an asyncio loop on the main thread, which Django's
    # async-safety check mistakes for async code around every ORM call of the tests.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    expect.set_options(timeout=TIMEOUT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def ui_users(transactional_db) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A superuser and a read-only user (signed in, no model permissions)."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    return {
        "admin": User.objects.create_superuser(ADMIN[0], "ui-admin@example.com", ADMIN[1]),
        "viewer": User.objects.create_user(VIEWER[0], "ui-viewer@example.com", VIEWER[1]),
    }


class UI:
    """A browser tab on the live server, with screenshots and the page's JS errors recorded."""

    def __init__(self, page: Any, base_url: str, test_name: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.test_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.shots = 0
        self.errors: list[str] = []
        self.static: dict[str, int] = {}
        self.dialogs: list[str] = []
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        page.on("console", self._console)
        page.on("response", self._response)
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        # The UI's Content-Security-Policy refused an inline script or style: it would not work.
        if "Content Security Policy" in message.text:
            self.errors.append(f"{self.page.url}: {message.text}")

    def _response(self, response: Any) -> None:
        if "/static/" in response.url:
            self.static[response.url.split("/static/", 1)[1].split("?")[0]] = response.status

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept()

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str, step: str | None = None) -> Any:
        response = self.page.goto(self.url(path))
        self.shot(step or (path.strip("/").replace("/", "_") or "root"))
        return response

    def shot(self, step: str) -> Path:
        self.shots += 1
        name = f"{self.test_name}-{self.shots:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', step)}.png"
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def login(self, username: str, password: str) -> None:
        page = self.page
        page.goto(self.url("/ui/login/"))
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(re.compile(r".*/ui/(\?.*)?$"))

    def path(self) -> str:
        return self.page.url[len(self.base_url) :]


@contextmanager
def _open(browser: Any, live_server: Any, request: pytest.FixtureRequest) -> Iterator[UI]:
    for old in ARTIFACTS.glob(f"{request.node.name}-*.png"):
        old.unlink()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    ui = UI(context.new_page(), live_server.url, request.node.name)
    try:
        yield ui
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            with suppress(Exception):  # best effort on an already failing test
                ui.page.screenshot(path=str(ARTIFACTS / f"{ui.test_name}-99-FAILED.png"))
        context.close()
    assert not ui.errors, f"JavaScript errors or CSP refusals on the page: {ui.errors}"


@pytest.fixture
def anon_ui(browser, live_server, ui_users, request) -> Iterator[UI]:  # type: ignore[no-untyped-def]
    """A fresh tab, not signed in."""
    with _open(browser, live_server, request) as tab:
        yield tab


@pytest.fixture
def ui(browser, live_server, ui_users, request) -> Iterator[UI]:  # type: ignore[no-untyped-def]
    """A tab signed in as the superuser through the real login form."""
    with _open(browser, live_server, request) as tab:
        tab.login(*ADMIN)
        yield tab


@pytest.fixture
def viewer_ui(browser, live_server, ui_users, request) -> Iterator[UI]:  # type: ignore[no-untyped-def]
    """A tab signed in as the read-only user."""
    with _open(browser, live_server, request) as tab:
        tab.login(*VIEWER)
        yield tab
