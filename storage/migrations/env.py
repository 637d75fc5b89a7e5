"""Alembic environment: migrations are derived from storage.tables; the URL comes from the caller
(``agglo db upgrade``) or from AGGLO_DATABASE_URL."""

from __future__ import annotations

import os
import warnings
from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection

from storage.db import DEFAULT_URL, connect
from storage.tables import UTCDateTime, metadata

config = context.config


def _url() -> str:
    return config.attributes.get("url") or os.environ.get("AGGLO_DATABASE_URL") or DEFAULT_URL


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # Migrations must not import live application types: render our UTC type as plain DateTime.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


# SQLite cannot reflect expression indexes (ix_tasks_open_inbox), so `alembic check` compares
# that one on PostgreSQL only; the warnings saying so are expected and would only be noise.
warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
warnings.filterwarnings("ignore", message="autogenerate skipping metadata-specified expression-based index")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = connect(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
