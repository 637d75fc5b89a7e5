"""Administration: deploy processes (problems shown in the source), users, API tokens, incidents."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from engine.credentials import UserChange
from engine.directory import Actor, Role
from engine.errors import AggloError, BadInput, DefinitionInvalid, NotPermitted, TooLarge

from .common import engine, flash_error, incident_of, me

MAX_BPMN = 5 * 1024 * 1024
MAX_SOURCE_LINES = 5000
ROLES = [r.value for r in Role]


def admin_actor() -> Actor:
    who = me()
    if not who.is_admin:
        raise NotPermitted(who.login, "open", "the administration pages", "administrators only")
    return who


def annotated_source(source: bytes, problems: list[object]) -> list[tuple[int, str, list[str]]] | None:
    """The uploaded file's lines with the problems found on each (None when too long or not text)."""
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.splitlines()
    if len(lines) > MAX_SOURCE_LINES:
        return None
    by_line: dict[int, list[str]] = {}
    for p in problems:
        line = getattr(p, "line", None)
        if line:
            by_line.setdefault(line, []).append(str(getattr(p, "reason", p)))
    return [(n, line, by_line.get(n, [])) for n, line in enumerate(lines, start=1)]


def install(bp: Blueprint) -> None:
    @bp.get("/admin")
    def admin() -> str:
        who = admin_actor()
        eng = engine()
        return render_template(
            "admin.html",
            nav="admin",
            definitions=eng.definitions(latest_only=False),
            incidents=eng.incidents(who),
            users=eng.users(),
            tokens=eng.tokens(who),
        )

    @bp.route("/admin/deploy", methods=["GET", "POST"])
    def deploy() -> Response | str:
        who = admin_actor()
        problems: list[object] = []
        source_lines = None
        filename = None
        source = b""
        status = 200
        if request.method == "POST":
            file = request.files.get("file")
            try:
                if file is None or not file.filename:
                    raise BadInput(_("Выберите файл BPMN."), field="file")
                filename = file.filename.replace("\\", "/").rsplit("/", 1)[-1]
                source = file.read(MAX_BPMN + 1)
                if len(source) > MAX_BPMN:
                    raise TooLarge(f"file {filename!r}", len(source), MAX_BPMN, field="file")
                resources = {}
                for extra in request.files.getlist("resources"):
                    if extra.filename:
                        name = extra.filename.replace("\\", "/").rsplit("/", 1)[-1]
                        resources[name] = extra.read(1024 * 1024 + 1)
                        if len(resources[name]) > 1024 * 1024:
                            raise TooLarge(f"file {name!r}", len(resources[name]), 1024 * 1024, field="resources")
                result = engine().deploy(source, filename, who, resources)
            except DefinitionInvalid as exc:
                problems = list(exc.problems)
                source_lines = annotated_source(source, problems)
                status = 422
            except AggloError as exc:
                flash_error(exc)
                status = 400
            else:
                if result.created:
                    names = ", ".join(f"{d.name or d.key} (v{d.version})" for d in result.definitions)
                    flash(_("Развёрнуто: %(names)s.", names=names), "success")
                else:
                    flash(_("Этот файл уже развёрнут — ничего не изменилось."), "info")
                return redirect(url_for("ui.admin"))
        html = render_template(
            "deploy.html", nav="admin", problems=problems, source_lines=source_lines, filename=filename
        )
        return Response(html, status=status, mimetype="text/html")

    @bp.route("/admin/users", methods=["GET", "POST"])
    def users() -> Response | str:
        who = admin_actor()
        eng = engine()
        error = None
        if request.method == "POST":
            login = (request.form.get("login") or "").strip().lower()
            existing = {u.login for u in eng.users()}
            creating = request.form.get("mode") == "create"
            try:
                if creating and login in existing:
                    raise BadInput(_("Логин «%(l)s» уже занят.", l=login), field="login")
                change = UserChange(
                    login=login,
                    name=request.form.get("name") or None,
                    organisation=request.form.get("organisation") or None,
                    roles=tuple(request.form.getlist("roles")) if request.form.getlist("roles") or creating else None,
                    email=request.form.get("email") or None,
                    active=(request.form.get("active") == "on") if request.form.get("mode") == "edit" else None,
                    password=request.form.get("password") or None,
                )
                eng.save_user(who, change)
                flash(_("Пользователь %(l)s сохранён.", l=login), "success")
                return redirect(url_for("ui.users"))
            except AggloError as exc:
                error = exc
                flash_error(exc)
        html = render_template(
            "users.html",
            nav="admin",
            users=eng.users(),
            organisations=eng.organisations(),
            roles=ROLES,
            edit=request.args.get("edit"),
            form=request.form if error else {},
        )
        return Response(html, status=400 if error else 200, mimetype="text/html")

    @bp.route("/admin/tokens", methods=["GET", "POST"])
    def tokens() -> Response | str:
        who = admin_actor()
        eng = engine()
        new_token = None
        if request.method == "POST":
            try:
                if request.form.get("revoke"):
                    eng.revoke_token(who, request.form["revoke"])
                    flash(_("Токен отозван."), "info")
                    return redirect(url_for("ui.tokens"))
                token, secret = eng.create_token(
                    who,
                    request.form.get("name") or "",
                    request.form.getlist("roles"),
                    request.form.get("organisation") or "",
                )
                # The secret is shown in this response only: never stored, never put in the session.
                new_token = {"name": token.name, "secret": secret}
            except AggloError as exc:
                flash_error(exc)
        return render_template(
            "tokens.html",
            nav="admin",
            tokens=eng.tokens(who),
            organisations=eng.organisations(),
            roles=ROLES,
            new_token=new_token,
        )

    @bp.get("/admin/incidents")
    def incidents() -> str:
        who = admin_actor()
        items = [incident_of(i) for i in engine().incidents(who)]
        return render_template("incidents.html", nav="admin", incidents=items)
