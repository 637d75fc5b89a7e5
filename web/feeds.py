"""Addresses outside the API: the private iCalendar feed and the health check."""

from __future__ import annotations

from flask import Blueprint, Response, request
from sqlalchemy import text

from .api.spec import json_response
from .auth import engine


def create_feeds() -> Blueprint:
    bp = Blueprint("feeds", __name__)

    @bp.get("/calendar/<token>.ics")
    def calendar_feed(token: str) -> Response:
        """The owner's open deadlines; the token in the URL is the only credential (rotate it to revoke)."""
        body = engine().calendar_feed(token, request.host_url.rstrip("/"))
        return Response(
            body.encode("utf-8"),
            mimetype="text/calendar",
            headers={
                "Content-Disposition": 'inline; filename="agglo-deadlines.ics"',
                "Cache-Control": "private, max-age=300",
                "X-Robots-Tag": "noindex",
            },
        )

    @bp.get("/healthz")
    def healthz() -> Response:
        """200 when the database answers and its schema is current; 503 otherwise."""
        from storage.bootstrap import head_revision

        database = getattr(engine().store, "engine", None)
        if database is None:
            return json_response({"status": "ok", "schema": None})
        try:
            with database.connect() as conn:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception as exc:
            return json_response({"status": "unavailable", "database": str(exc)[:200]}, 503)
        current = revision == head_revision()
        payload = {"status": "ok" if current else "migrations pending", "schema": revision}
        return json_response(payload, 200 if current else 503)

    return bp
