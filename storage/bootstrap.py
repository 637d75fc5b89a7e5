"""Composition root shared by the entry points: an Engine on the SQL store, and migrations."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine as DbEngine

from engine.clock import Clock, SystemClock
from engine.engine import Engine
from engine.sandbox import Sandbox
from engine.services import ServiceRegistry
from engine.settings import Settings
from webhooks import ssrf

from .db import MIGRATIONS, connect, normalise_url
from .store import SqlStore


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = normalise_url(url)
    return config


def upgrade(url: str) -> str:
    """Bring the database to the newest schema; return the revision it is at."""
    command.upgrade(alembic_config(url), "head")
    return head_revision()


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    return head or ""


def current_revision(db: DbEngine) -> str | None:
    with db.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_engine(
    settings: Settings, clock: Clock | None = None, services: ServiceRegistry | None = None, db: DbEngine | None = None
) -> Engine:
    """An engine on the configured database (the schema must be at head: ``agglo db upgrade``)."""
    database = db or connect(settings.database_url)
    allow = [h for h in settings.webhook_allow_hosts.split(",") if h.strip()]
    return Engine(
        SqlStore(database),
        clock or SystemClock(),
        sandbox=Sandbox(time_limit=settings.script_time_limit),
        services=services,
        settings=settings,
        url_guard=lambda url: ssrf.check(url, allow),
    )
