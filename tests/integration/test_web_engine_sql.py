"""The credentials, documents, reports and calendar-feed tests, unchanged, on SQLite and PostgreSQL.

Re-collected here with the SQL `engine` and `store` fixtures (tests/integration/conftest.py):
the memory and SQL adapters must agree on tokens, logins, comments, attachments and the new
task and audit filters. The pure iCalendar tests (escaping, folding) run once, in tests/unit.
"""

from tests.unit.test_credentials import *  # noqa: F403  (the `auth_engine` fixture builds on the SQL `store`)
from tests.unit.test_documents import *  # noqa: F403
from tests.unit.test_ical import (  # noqa: F401  (only the tests that go through the engine)
    test_a_met_deadline_leaves_the_feed_and_the_next_one_appears,
    test_feed_events_describe_the_task,
    test_feed_uids_are_stable_and_a_moved_deadline_updates_its_event,
    test_the_feed_holds_the_users_open_deadlines_only,
)
from tests.unit.test_reports import *  # noqa: F403
