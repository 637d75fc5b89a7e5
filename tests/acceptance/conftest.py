"""Fixtures for HTTP and browser tests: the real app on a real database with the demo data.

A seeded database (migrated, demo organisations and users, every process deployed) is built
once per session and backend and copied for each test (a file copy on SQLite, ``CREATE
DATABASE … TEMPLATE`` on PostgreSQL), so every test starts from the same state in
milliseconds. The app runs on the test's :class:`VirtualClock`.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from engine.clock import VirtualClock
from engine.engine import Engine
from engine.passwords import Passwords
from engine.sandbox import Sandbox
from engine.settings import Settings
from tests.conftest import PG_ENV, START, _pg_admin_url, pg_clone

DEMO_PASSWORD = "agglo-demo"
WEB_SETTINGS = Settings(
    argon2_time_cost=1,
    argon2_memory_kib=8192,
    secret_key="test-secret-key-" + "x" * 32,
    demo_password=DEMO_PASSWORD,
    max_upload_bytes=1024 * 1024,
    login_rate_limit_per_minute=10,
)
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def _seed(url: str) -> None:
    from cli.demo import seed
    from storage.bootstrap import open_engine, upgrade

    upgrade(url)
    settings = WEB_SETTINGS.with_(database_url=url)
    engine = open_engine(settings, VirtualClock(START))
    seed(engine, Passwords(1, 8192, 1), DEMO_PASSWORD)
    engine.store.engine.dispose()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seeded") / "seeded.db"
    _seed(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def seeded_pg() -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(_pg_admin_url())
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"agglo_seed_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        _seed(admin.set(database=name).render_as_string(hide_password=False))
        yield name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def web_db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh copy of the seeded database on this test's backend."""
    if backend == "sqlite":
        path = tmp_path / "agglo.db"
        shutil.copy(request.getfixturevalue("seeded_sqlite"), path)
        yield f"sqlite:///{path}"
        return
    with pg_clone(request.getfixturevalue("seeded_pg"), "agglo_w_") as url:
        yield url


# Host names reserved for documentation (RFC 2606/6761) stand for public receivers in tests: they
# resolve to a public address here without asking DNS, so that saving such a URL works offline.
RESERVED_DOMAINS = ("example", "example.com", "example.org", "example.net", "test")
PUBLIC_ADDRESS = "93.184.215.14"


def offline_resolver(host: str, port: int) -> list[str]:
    """The system resolver, but reserved example names resolve to a public address."""
    from webhooks import ssrf

    name = host.lower().rstrip(".")
    if any(name == d or name.endswith("." + d) for d in RESERVED_DOMAINS):
        return [PUBLIC_ADDRESS]
    return ssrf.system_resolver(host, port)


def url_guard(
    settings: Settings, resolver: Callable[[str, int], list[str]] = offline_resolver
) -> Callable[[str], object]:
    """The SSRF check on saving a webhook URL, as ``storage.bootstrap.open_engine`` wires it."""
    from webhooks import ssrf

    allow = [h for h in settings.webhook_allow_hosts.split(",") if h.strip()]
    return lambda url: ssrf.check(url, allow, resolver)


@pytest.fixture
def webhook_allow_hosts() -> str:
    """AGGLO_WEBHOOK_ALLOW_HOSTS of the test's app: none; a test parametrizes it to allow a receiver."""
    return ""


@pytest.fixture
def web_engine(web_db_url: str, clock: VirtualClock, webhook_allow_hosts: str) -> Iterator[Engine]:
    from storage.db import connect
    from storage.store import SqlStore

    database = connect(web_db_url)
    settings = WEB_SETTINGS.with_(database_url=web_db_url, webhook_allow_hosts=webhook_allow_hosts)
    engine = Engine(
        SqlStore(database), clock, sandbox=Sandbox(time_limit=0.5), settings=settings, url_guard=url_guard(settings)
    )
    yield engine
    database.dispose()


@pytest.fixture
def app(web_engine: Engine) -> Flask:
    from web.app import create_app

    flask_app = create_app(web_engine.settings, web_engine, TESTING=False)
    flask_app.logger.disabled = True
    return flask_app


@dataclass
class Client:
    """A browser-like client: keeps its session cookie and sends the CSRF token like our pages do."""

    http: FlaskClient
    login_name: str | None = None

    def csrf(self) -> str:
        page = self.http.get("/login" if self.login_name is None else "/profile")
        found = CSRF.search(page.get_data(as_text=True))
        assert found, "no CSRF token on the page"
        return found.group(1)

    def login(self, login: str, password: str = DEMO_PASSWORD) -> TestResponse:
        token = self.csrf()
        response = self.http.post("/login", data={"login": login, "password": password, "csrf_token": token})
        if response.status_code == 302:
            self.login_name = login
        return response

    def get(self, url: str, **kw: Any) -> TestResponse:
        return self.http.get(url, **kw)

    def form(self, url: str, data: dict[str, Any] | None = None, **kw: Any) -> TestResponse:
        """Submit a form as our pages do (with the session's CSRF token)."""
        payload = {"csrf_token": self.csrf(), **(data or {})}
        return self.http.post(url, data=payload, **kw)

    def api(self, method: str, url: str, json: Any = None, **kw: Any) -> TestResponse:
        """Call the API with the session cookie (unsafe methods carry X-CSRF-Token)."""
        headers = dict(kw.pop("headers", {}) or {})
        if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
            headers.setdefault("X-CSRF-Token", self.csrf())
        return self.http.open(url, method=method.upper(), json=json, headers=headers, **kw)


@pytest.fixture
def client(app: Flask) -> Client:
    """An anonymous browser."""
    return Client(app.test_client())


@pytest.fixture
def login(app: Flask) -> Callable[[str], Client]:
    """``login("troitsk-go")``: a browser signed in as that demo user."""

    def make(user: str) -> Client:
        c = Client(app.test_client())
        response = c.login(user)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return c

    return make


@pytest.fixture
def bearer(app: Flask, web_engine: Engine) -> Callable[..., Callable[..., TestResponse]]:
    """``bearer(roles, organisation)``: a function calling the API with a fresh API token."""
    from engine.directory import SYSTEM_ACTOR

    def make(roles: tuple[str, ...] | list[str], organisation: str) -> Callable[..., TestResponse]:
        _, secret = web_engine.create_token(SYSTEM_ACTOR, f"t-{uuid.uuid4().hex[:8]}", list(roles), organisation)
        http = app.test_client()

        def call(method: str, url: str, json: Any = None, **kw: Any) -> TestResponse:
            headers = {"Authorization": f"Bearer {secret}", **(kw.pop("headers", {}) or {})}
            return http.open(url, method=method.upper(), json=json, headers=headers, **kw)

        call.secret = secret  # type: ignore[attr-defined]
        return call

    return make


def postgres_available() -> bool:
    return bool(os.environ.get(PG_ENV))
