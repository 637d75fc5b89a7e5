"""The WSGI entry point for production: ``gunicorn -c web/gunicorn.conf.py web.wsgi:app``.

Settings come from the environment (``AGGLO_*``); the database must be migrated first
(``agglo db upgrade``). Set ``AGGLO_SECRET_KEY`` so that every gunicorn worker signs sessions
with the same key.
"""

from __future__ import annotations

from web.app import create_app

app = create_app()
