"""Who is asking: browser sessions, API bearer tokens, and CSRF protection.

* A browser session is Flask's signed cookie (``agglo_session``: HttpOnly, SameSite=Lax,
  Secure when the site is served over TLS or configured so). It holds the login, a
  fingerprint of the password hash — so changing the password ends every other session — and
  the CSRF token. Each request re-reads the user: a deactivated user is out at once. Sessions
  end after 8 idle hours.
* A machine sends ``Authorization: Bearer agt_…``; the token carries its own roles and
  organisation (:mod:`engine.credentials`). Bearer requests need no CSRF token: browsers never
  attach that header on their own.
* Every unsafe request authenticated by a cookie (and the login form itself) must carry the
  session's CSRF token, in the form field ``csrf_token`` or the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, Response, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_babel import get_locale

from engine.directory import Actor
from engine.engine import Engine
from engine.errors import NotAuthenticated, NotPermitted

SESSION_COOKIE = "agglo_session"
IDLE_LIMIT = timedelta(hours=8)
SEEN_RESOLUTION = timedelta(minutes=5)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class CsrfFailed(NotPermitted):
    code = "csrf_failed"

    def __init__(self) -> None:
        super().__init__(
            "browser", "submit", "this form", "the CSRF token is missing or stale; reload the page and try again"
        )


class TlsAwareSessions(SecureCookieSessionInterface):
    """Mark the cookie Secure when configured so, or when this request came over TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        configured = bool(super().get_cookie_secure(app))
        try:
            return configured or request.is_secure
        except RuntimeError:
            return configured


def engine() -> Engine:
    result: Engine = current_app.extensions["agglo.engine"]
    return result


def fingerprint(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:24]


def client_ip(req: Request) -> str:
    return (req.remote_addr or "-")[:64]


def _now() -> datetime:
    return engine().clock.now()


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 20:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def check_csrf() -> None:
    expected = session.get("csrf")
    form = request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")
    supplied = request.headers.get(CSRF_HEADER) or (request.form.get(CSRF_FIELD) if form else None)
    if not expected or not supplied or not hmac.compare_digest(str(expected), str(supplied)):
        raise CsrfFailed()


def bearer_secret() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def login_session(actor: Actor, password_hash: str | None) -> None:
    """Start a fresh session for ``actor`` (a new CSRF token too: no fixation)."""
    session.clear()
    session.permanent = True
    session["login"] = actor.login
    session["fp"] = fingerprint(password_hash)
    session["seen"] = _now().isoformat()
    session["csrf"] = secrets.token_urlsafe(32)


def logout_session() -> None:
    session.clear()


def refresh_session_fingerprint(password_hash: str | None) -> None:
    session["fp"] = fingerprint(password_hash)


def _session_actor() -> Actor | None:
    login = session.get("login")
    if not isinstance(login, str):
        return None
    now = _now()
    try:
        seen = datetime.fromisoformat(str(session.get("seen")))
    except ValueError:
        seen = None
    if seen is None or now - seen > IDLE_LIMIT:
        logout_session()
        return None
    with engine().store.transaction() as tx:
        user = tx.get_user(login)
    fp = str(session.get("fp"))
    if user is None or not user.active or not hmac.compare_digest(fingerprint(user.password_hash), fp):
        logout_session()
        return None
    if now - seen >= SEEN_RESOLUTION:
        session["seen"] = now.isoformat()
    return Actor.of(user)


def current_actor() -> Actor | None:
    """The caller, from a bearer token or the session; None when anonymous."""
    if "actor" in g:
        actor: Actor | None = g.actor
        return actor
    secret = bearer_secret()
    if secret is not None:
        g.auth = "bearer"
        g.actor = engine().authenticate_token(secret)
    else:
        g.auth = "session"
        g.actor = _session_actor()
    found: Actor | None = g.actor
    return found


def require_actor() -> Actor:
    actor = current_actor()
    if actor is None:
        raise NotAuthenticated("log in or send an API token (Authorization: Bearer agt_…)")
    return actor


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else goes to the inbox."""
    if not target:
        return url_for("ui.inbox")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("ui.inbox")
    return target


def login_redirect() -> Response:
    target = request.full_path if request.method == "GET" else request.referrer
    path = request.path if request.method == "GET" else None
    nxt = target.rstrip("?") if path and target else None
    return redirect(url_for("ui.login", next=nxt))  # type: ignore[return-value]


def install(app: Flask) -> None:
    app.session_interface = TlsAwareSessions()

    @app.before_request
    def protect() -> None:
        if request.method not in UNSAFE:
            return
        if request.endpoint in app.config.get("CSRF_EXEMPT", set()) or bearer_secret() is not None:
            return
        # A cookie carries authority only once someone has logged in; the login form itself is
        # protected too (login CSRF). Anonymous API calls go on to their 401.
        if session.get("login") or request.endpoint == "ui.login":
            check_csrf()

    @app.context_processor
    def inject() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "current_actor": current_actor, "get_locale": get_locale}
