"""The engine's unit tests, unchanged, on SQLite and PostgreSQL: the store adapters must agree."""

from tests.unit.test_engine import *  # noqa: F403  (re-collected with the SQL `engine` fixture)
