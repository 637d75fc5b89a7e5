"""Login, logout, the profile (password change, the private calendar URL) and notifications."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from engine.errors import AggloError, BadInput, NotAuthenticated, TooManyAttempts

from ..auth import client_ip, current_actor, login_session, logout_session, refresh_session_fingerprint, safe_next
from .common import engine, flash_error, me, problem_text


def install(bp: Blueprint) -> None:
    @bp.route("/login", methods=["GET", "POST"])
    def login() -> Response | str:
        if request.method == "GET" and current_actor() is not None:
            return redirect(safe_next(request.args.get("next")))
        error = None
        status = 200
        login_value = ""
        if request.method == "POST":
            login_value = (request.form.get("login") or "").strip().lower()
            try:
                actor = engine().authenticate(login_value, request.form.get("password") or "", client_ip(request))
            except (NotAuthenticated, TooManyAttempts) as exc:
                error = problem_text(exc)
                status = 429 if isinstance(exc, TooManyAttempts) else 401
            else:
                login_session(actor, engine().user(actor.login, actor).password_hash)
                return redirect(safe_next(request.form.get("next")))
        html = render_template(
            "login.html", error=error, login_value=login_value, next=request.values.get("next") or ""
        )
        return Response(html, status=status, mimetype="text/html")

    @bp.post("/logout")
    def logout() -> Response:
        logout_session()
        flash(_("Вы вышли из системы."), "info")
        return redirect(url_for("ui.login"))

    @bp.route("/profile", methods=["GET", "POST"])
    def profile() -> Response | str:
        who = me()
        eng = engine()
        errors: dict[str, str] = {}
        feed_url = None
        if request.method == "POST":
            action = request.form.get("action")
            try:
                if action == "password":
                    new = request.form.get("new_password") or ""
                    if new != (request.form.get("repeat_password") or ""):
                        raise BadInput(_("Новые пароли не совпадают."), field="repeat_password")
                    eng.change_password(who, request.form.get("old_password") or "", new)
                    refresh_session_fingerprint(eng.user(who.login, who).password_hash)
                    flash(_("Пароль изменён. Другие сеансы завершены."), "success")
                    return redirect(url_for("ui.profile"))
                if action == "calendar":
                    # Shown in this response only; the database keeps its hash.
                    secret = eng.rotate_calendar_token(who)
                    feed_url = url_for("feeds.calendar_feed", token=secret, _external=True)
                    flash(_("Создана новая ссылка на календарь; прежняя больше не работает."), "success")
            except BadInput as exc:
                errors[exc.field or "form"] = problem_text(exc)
            except AggloError as exc:
                flash_error(exc)
        user = eng.user(who.login, who)
        status = 400 if errors else 200
        html = render_template("profile.html", nav="profile", user=user, errors=errors, feed_url=feed_url)
        return Response(html, status=status, mimetype="text/html")

    @bp.route("/notifications", methods=["GET", "POST"])
    def notifications() -> Response | str:
        who = me()
        eng = engine()
        if request.method == "POST":
            ids = request.form.getlist("id") or None
            count = eng.mark_notifications_read(who, ids)
            flash(_("Отмечено прочитанными: %(n)s.", n=count), "info")
            return redirect(url_for("ui.notifications"))
        items = eng.notifications(who, unread_only=request.args.get("unread") == "1", limit=200)
        return render_template("notifications.html", nav="notifications", items=items)
