"""The application factory: settings in, a Flask app out. Nothing here reads the environment
except through :meth:`Settings.from_env` when no settings are given.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from flask_babel import Babel
from werkzeug.middleware.proxy_fix import ProxyFix

from engine.engine import Engine
from engine.settings import Settings

from . import auth, errors
from .api import create_api
from .feeds import create_feeds
from .inbound import create_inbound

log = logging.getLogger("agglo.web")

HERE = Path(__file__).parent
LANGUAGES = ("ru", "en")
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)


def _secret_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    log.warning("AGGLO_SECRET_KEY is not set: sessions are signed with a key that lasts only this process")
    return secrets.token_urlsafe(48)


def select_locale() -> str | None:
    chosen = request.args.get("lang") or request.cookies.get("agglo_lang")
    if chosen in LANGUAGES:
        return chosen
    return "ru"


def create_app(settings: Settings | None = None, engine: Engine | None = None, **config: Any) -> Flask:
    """Build the app on ``engine`` (or one opened from ``settings``: the database must be migrated)."""
    settings = settings or Settings.from_env(os.environ)
    if engine is None:
        from storage.bootstrap import open_engine

        engine = open_engine(settings)
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.update(
        SECRET_KEY=_secret_key(settings),
        SESSION_COOKIE_NAME=auth.SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        # Uploads: the attachment limit plus room for the multipart envelope.
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + 256 * 1024,
        MAX_FORM_MEMORY_SIZE=2 * 1024 * 1024,
        JSON_AS_ASCII=False,
        TEMPLATES_AUTO_RELOAD=False,
        BABEL_DEFAULT_LOCALE="ru",
        BABEL_DEFAULT_TIMEZONE="Asia/Yekaterinburg",
        BABEL_TRANSLATION_DIRECTORIES=str(HERE / "translations"),
        AGGLO_SETTINGS=settings,
    )
    app.config.update(config)
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )
    app.extensions["agglo.engine"] = engine
    Babel(app, locale_selector=select_locale)

    auth.install(app)
    errors.install(app)
    api = create_api()
    app.extensions["agglo.api"] = api
    app.register_blueprint(api.blueprint)
    app.register_blueprint(create_feeds())
    app.register_blueprint(create_inbound(app))

    from .ui import create_ui

    app.register_blueprint(create_ui())

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if request.path.startswith("/api/") and "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        if response.mimetype == "text/html":
            headers.setdefault("Cache-Control", "no-store")
        return response

    return app
