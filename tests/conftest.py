"""Fixtures shared by every layer of the suite.

Databases: ``db_url`` yields a fresh, migrated database per test. SQLite always; PostgreSQL
too when ``AGGLO_TEST_POSTGRES_URL`` names a server (e.g. postgresql://postgres@127.0.0.1:5432/postgres);
each PostgreSQL test gets its own database cloned from a migrated template, dropped afterwards.
With ``--require-postgres`` the run fails when PostgreSQL is not configured (CI uses it).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.clock import VirtualClock
from engine.directory import COORDINATOR_ORG, MINISTRY_ORG, Actor, Organisation, OrgKind, Role, User
from engine.engine import Engine
from engine.memory import MemoryStore
from engine.sandbox import Sandbox
from engine.services import ServiceRegistry

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PG_ENV = "AGGLO_TEST_POSTGRES_URL"

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # Monday 02.03.2026, 11:00 in Chelyabinsk


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-postgres", action="store_true", help="fail unless the PostgreSQL half of the suite runs"
    )
    parser.addoption(
        "--require-browser", action="store_true", help="fail (instead of skipping) when Chromium is not installed"
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--require-postgres") and not os.environ.get(PG_ENV):
        raise pytest.UsageError(f"--require-postgres given but {PG_ENV} is not set")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = ["sqlite"] + (["postgres"] if os.environ.get(PG_ENV) else [])
        metafunc.parametrize("backend", backends, scope="function")


# -- actors and reference data ----------------------------------------------------------------

MINISTRY = Actor("ministry", MINISTRY_ORG, frozenset({Role.MINISTRY}))
COORDINATOR = Actor("coordinator", COORDINATOR_ORG, frozenset({Role.COORDINATOR}))
ADMIN = Actor("admin", COORDINATOR_ORG, frozenset({Role.ADMIN}))
TROITSK = Actor("troitsk-go", "troitsk-go", frozenset({Role.MOUO}))
KOPEYSK = Actor("kopeysk-go", "kopeysk-go", frozenset({Role.MOUO}))

ORGS = [
    Organisation(MINISTRY_ORG, "Министерство образования и науки Челябинской области", OrgKind.MINISTRY),
    Organisation(COORDINATOR_ORG, "ГБУ ДПО РЦОКИО", OrgKind.COORDINATOR),
    Organisation("troitsk-go", "Троицкий городской округ", OrgKind.MOUO),
    Organisation("kopeysk-go", "Копейский городской округ", OrgKind.MOUO),
]
USERS = [User(a.login, a.login, a.organisation, a.roles) for a in (MINISTRY, COORDINATOR, ADMIN, TROITSK, KOPEYSK)]


def seed_directory(engine: Engine) -> None:
    engine.import_directory(ADMIN, ORGS, USERS, [])


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def services() -> ServiceRegistry:
    return ServiceRegistry()


@pytest.fixture
def memory_engine(clock: VirtualClock, services: ServiceRegistry) -> Engine:
    engine = Engine(MemoryStore(), clock, sandbox=Sandbox(time_limit=0.5), services=services)
    seed_directory(engine)
    return engine


# -- databases ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from storage.bootstrap import upgrade

    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _pg_admin_url() -> str:
    from storage.db import normalise_url

    return normalise_url(os.environ[PG_ENV])


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    from storage.bootstrap import upgrade

    admin = make_url(_pg_admin_url())
    name = f"agglo_tpl_{uuid.uuid4().hex[:10]}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(admin.set(database=name).render_as_string(hide_password=False))
        yield name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def pg_clone(template: str, prefix: str = "agglo_t_") -> Iterator[str]:
    """A fresh PostgreSQL database copied from ``template``; dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(_pg_admin_url())
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(backend: str, tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / "agglo.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    with pg_clone(request.getfixturevalue("pg_template")) as url:
        yield url


@pytest.fixture
def sql_engine(db_url: str, clock: VirtualClock, services: ServiceRegistry) -> Iterator[Engine]:
    from storage.db import connect
    from storage.store import SqlStore

    database = connect(db_url)
    engine = Engine(SqlStore(database), clock, sandbox=Sandbox(time_limit=0.5), services=services)
    seed_directory(engine)
    yield engine
    database.dispose()


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the shared corpora and seeds are not beside this checkout")
    return SHARED
