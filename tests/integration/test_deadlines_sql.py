"""The deadline engine tests, unchanged, on SQLite and PostgreSQL."""

from tests.unit.test_deadline_engine import *  # noqa: F403  (re-collected with the SQL `store` fixture)
