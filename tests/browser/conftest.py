"""Fixtures for the browser tests: the real app on a live HTTP server, driven by Debian's Chromium.

Each test gets a fresh copy of the seeded SQLite database (the same demo data as the acceptance
tests), the app on its :class:`VirtualClock` behind a threaded werkzeug server on a free port,
and a new browser context (no cookies). Chromium itself is started once per session through
Playwright's bundled driver; no browser is downloaded: the system's ``chromium`` is used.

Without Chromium or Playwright the tests are skipped, or fail under ``--require-browser``.
Every JavaScript error a page reports (uncaught exceptions and ``console.error``, including
resources that failed to load) fails the test unless the test declared it expected.
Screenshots go to ``test-artifacts/screenshots/<test>-<step>.png``, plus ``<test>-failure.png``
when a test fails.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.acceptance.conftest import DEMO_PASSWORD, app, seeded_sqlite, web_engine, webhook_allow_hosts
from tests.conftest import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, ViewportSize

__all__ = ["app", "seeded_sqlite", "web_engine", "webhook_allow_hosts"]  # fixtures re-used from the acceptance tests

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ENV = "AGGLO_CHROMIUM"  # another Chromium binary, if not the one on PATH
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


def _chromium() -> str | None:
    explicit = os.environ.get(CHROMIUM_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("chromium") or next(
        (p for p in ("/usr/bin/chromium", "/usr/lib/chromium/chromium") if os.access(p, os.X_OK)), None
    )


_REQUIRED = {"browser": False}  # --require-browser, for what runs before any fixture (imports)


def pytest_configure(config: pytest.Config) -> None:
    _REQUIRED["browser"] = bool(config.getoption("--require-browser"))


def _unavailable(config: pytest.Config, why: str) -> NoReturn:
    if config.getoption("--require-browser"):
        pytest.fail(f"--require-browser given but {why}", pytrace=False)
    pytest.skip(why)


def unavailable_at_import(why: str) -> NoReturn:
    """For a test module that cannot even be imported (no playwright): skip it, or fail the run."""
    if _REQUIRED["browser"]:
        pytest.fail(f"--require-browser given but {why}", pytrace=False)
    pytest.skip(why, allow_module_level=True)


@pytest.fixture(scope="session")
def chromium_path(pytestconfig: pytest.Config) -> str:
    path = _chromium()
    if path is None:
        _unavailable(pytestconfig, "Chromium is not installed (make browser installs Debian's chromium)")
    return path


@pytest.fixture(scope="session")
def playwright_driver(pytestconfig: pytest.Config) -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable(pytestconfig, "the Python package playwright is not installed (pip install -e '.[dev]')")
    driver = sync_playwright().start()
    yield driver
    driver.stop()


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright, chromium_path: str) -> Iterator[Browser]:
    chromium = playwright_driver.chromium.launch(
        executable_path=chromium_path,
        headless=True,
        # Tests may run as root (containers, CI) where Chromium's sandbox cannot start.
        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    )
    yield chromium
    chromium.close()


# -- the app on a live server --------------------------------------------------------------------


@pytest.fixture
def web_db_url(tmp_path: Path, seeded_sqlite: Path) -> str:
    """A fresh copy of the seeded SQLite database (the browser tests need no other backend)."""
    path = tmp_path / "agglo.db"
    shutil.copy(seeded_sqlite, path)
    return f"sqlite:///{path}"


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served over HTTP on a free port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="agglo-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


# -- pages, console errors and screenshots --------------------------------------------------------


@dataclass
class Console:
    """JavaScript errors seen on the test's pages; ``expect`` allows ones the test provokes on purpose."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def expect(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "") if message.location else ""
            self.errors.append(f"console.error: {message.text} ({where})")

    def on_page_error(self, error: Any) -> None:
        self.errors.append(f"uncaught: {error}")

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def console() -> Console:
    return Console()


def screenshot_path(test_name: str, step: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test_name}-{step}")
    return SCREENSHOTS / f"{safe}.png"


@pytest.fixture
def page(browser: Browser, live_server: str, console: Console, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser tab (own cookies) at desktop size, pointed at the live server."""
    context = browser.new_context(base_url=live_server, viewport=DESKTOP, locale="ru-RU")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.on("console", console.on_console)
    tab.on("pageerror", console.on_page_error)
    try:
        yield tab
        if request.node.stash.get(_CALL_FAILED, False):
            tab.screenshot(path=screenshot_path(request.node.name, "failure"), full_page=True)
    finally:
        context.close()
    unexpected = console.unexpected()
    assert not unexpected, "JavaScript errors on the pages:\n" + "\n".join(unexpected)


@pytest.fixture
def shot(page: Page, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``shot("step")``: a full-page screenshot saved as a test artefact."""

    def take(step: str) -> Path:
        path = screenshot_path(request.node.name, step)
        page.screenshot(path=path, full_page=True)
        return path

    return take


# -- signing in and out -----------------------------------------------------------------------


def sign_in(page: Page, login: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the login form as a person would (typing, then the «Войти» button)."""
    page.goto("/login")
    page.get_by_label("Логин").fill(login)
    page.get_by_label("Пароль").fill(password)
    page.get_by_role("button", name="Войти").click()
    page.wait_for_url(lambda url: "/login" not in url)


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Выйти").click()
    page.wait_for_url(re.compile(r"/login"))
