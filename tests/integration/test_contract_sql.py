"""The contract scenario, unchanged, on SQLite and PostgreSQL."""

from tests.processes.test_contract import *  # noqa: F403  (re-collected with the SQL `engine` fixture)
