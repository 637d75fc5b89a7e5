"""Integration tests run the same engine tests on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.engine import Engine
from engine.ports import Store


@pytest.fixture
def engine(sql_engine: Engine) -> Engine:
    return sql_engine


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    from storage.db import connect
    from storage.store import SqlStore

    database = connect(db_url)
    yield SqlStore(database)
    database.dispose()
