"""The inbox and the task page: what is mine, what is due, and doing it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from engine import access
from engine.directory import Role
from engine.documents import FILE_TYPES
from engine.errors import AggloError, BadInput, FieldError, FormInvalid, NotFound, TooLarge
from engine.ports import ExtensionQuery
from engine.records import ExtensionRequest, ExtensionStatus, TaskQuery, TaskStatus

from . import forms
from .common import Actor, Engine, back, engine, flash_error, me

PER_PAGE = 25
TABS = ("mine", "org", "approve", "overdue")


@dataclass(frozen=True)
class Decision:
    """An extension request waiting for this user's decision, with what the page shows of it."""

    request: ExtensionRequest
    task_name: str
    current: date | None
    task_visible: bool


def _decisions_for(eng: Engine, who: Actor) -> list[Decision]:
    """Pending extension requests this user decides. The approver (the coordinator for a МОУО's
    task) often may not open the task itself, so the inbox shows enough to decide on it."""
    result = []
    names: dict[str, dict[str, str]] = {}
    for e in eng.extension_requests(who, ExtensionQuery(status=ExtensionStatus.PENDING)):
        if e.approver_role not in who.roles:
            continue
        try:
            deadline = eng.deadline(e.deadline_id, who)
        except NotFound:
            deadline = None
        try:
            name = eng.task(e.task_id, who).task.name
            visible = True
        except NotFound:
            name, visible = None, False
            try:
                if deadline is not None:
                    instance = eng.instance(e.instance_id, who).instance
                    if instance.definition_id not in names:
                        model = eng.definition(instance.definition_id).model
                        names[instance.definition_id] = {k: v.label for k, v in model.elements.items()}
                    name = names[instance.definition_id].get(deadline.element_id)
            except NotFound:
                pass
        result.append(Decision(e, name or _("Задача"), deadline.final_date if deadline else None, visible))
    return result


def install(bp: Blueprint) -> None:
    @bp.get("/")
    def inbox() -> str:
        who = me()
        eng = engine()
        now = eng.clock.now()
        tab = request.args.get("tab") or ("approve" if who.has(Role.MINISTRY) else "org")
        if tab not in TABS:
            tab = "org"
        page = max(1, request.args.get("page", 1, type=int) or 1)
        base = TaskQuery(status=TaskStatus.OPEN, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
        queries = {
            "mine": TaskQuery(status=TaskStatus.OPEN, assignee=who.login, limit=PER_PAGE),
            "org": TaskQuery(status=TaskStatus.OPEN, limit=PER_PAGE),
            "approve": TaskQuery(status=TaskStatus.OPEN, role=Role.MINISTRY.value, limit=PER_PAGE),
            "overdue": TaskQuery(status=TaskStatus.OPEN, due_before=now, limit=PER_PAGE),
        }
        if not who.has(Role.MINISTRY) and not who.is_admin:
            del queries["approve"]
            if tab == "approve":
                tab = "org"
        views, total = eng.tasks_page(who, replace(queries[tab], limit=base.limit, offset=base.offset))
        counts = {name: total if name == tab else eng.count_tasks(who, q) for name, q in queries.items()}
        soon = now + timedelta(days=7)
        decide = _decisions_for(eng, who)
        return render_template(
            "inbox.html",
            nav="inbox",
            tab=tab,
            tabs=[t for t in TABS if t in queries],
            counts=counts,
            views=views,
            total=total,
            page=page,
            pages=max(1, math.ceil(total / PER_PAGE)),
            soon=soon,
            now=now,
            decide=decide,
        )

    @bp.get("/tasks/<task_id>")
    def task(task_id: str) -> Response:
        case = request.args.get("case")
        if case:
            # From a report or the calendar: an overseer who may not open another organisation's
            # task is taken to its case instead (a 404 when the case is not theirs either).
            try:
                engine().task(task_id, me())
            except NotFound:
                engine().instance(case, me())
                return redirect(url_for("ui.instance", instance_id=case) + "#deadlines")
        return _task_page(task_id)

    def _task_page(
        task_id: str,
        values: dict[str, Any] | None = None,
        errors: list[FieldError] | None = None,
        status: int = 200,
    ) -> Response:
        who = me()
        eng = engine()
        view = eng.task(task_id, who)
        widgets = forms.widgets(view.form, values or {}, errors or [])
        general = forms.form_errors(errors or [], view.form)
        comments = eng.comments(task_id, who)
        files = eng.attachments(task_id, who)
        can_act = view.task.status == TaskStatus.OPEN and access.can_act_on_task(who, view.task)
        pending = eng.extension_requests(who, ExtensionQuery(deadline_id=view.deadline.id)) if view.deadline else []
        html = render_template(
            "task.html",
            nav="inbox",
            view=view,
            widgets=widgets,
            general_errors=general,
            comments=comments,
            files=files,
            can_act=can_act,
            claimed_by_other=view.task.assignee not in (None, who.login),
            mine=view.task.assignee == who.login,
            extensions=pending,
            max_upload=eng.settings.max_upload_bytes,
            file_types=sorted(FILE_TYPES),
            today=eng.clock.now().date(),
        )
        return Response(html, status=status, mimetype="text/html")

    @bp.post("/tasks/<task_id>/claim")
    def claim(task_id: str) -> Response:
        try:
            engine().claim(task_id, me())
            flash(_("Задача закреплена за вами."), "success")
        except AggloError as exc:
            flash_error(exc)
        return redirect(url_for("ui.task", task_id=task_id))

    @bp.post("/tasks/<task_id>/unclaim")
    def unclaim(task_id: str) -> Response:
        try:
            engine().unclaim(task_id, me())
            flash(_("Задача возвращена в общий список."), "info")
        except AggloError as exc:
            flash_error(exc)
        return redirect(url_for("ui.task", task_id=task_id))

    @bp.post("/tasks/<task_id>/complete")
    def complete(task_id: str) -> Response:
        who = me()
        eng = engine()
        view = eng.task(task_id, who)
        data = forms.parse(view.form, request.form)
        expected = request.form.get("version", type=int)
        try:
            result = eng.complete(task_id, who, data, expected_version=expected)
        except FormInvalid as exc:
            flash(_("Форма заполнена с ошибками — они отмечены у полей."), "error")
            return _task_page(task_id, data, list(exc.errors), 422)
        except AggloError as exc:
            flash_error(exc)
            return redirect(url_for("ui.task", task_id=task_id))
        flash(_("Задача «%(name)s» выполнена.", name=view.task.name or view.task.element_id), "success")
        nxt = [t for t in result.tasks if access.can_act_on_task(who, t.task)]
        if nxt:
            return redirect(url_for("ui.task", task_id=nxt[0].task.id))
        return redirect(url_for("ui.inbox"))

    @bp.post("/tasks/<task_id>/comments")
    def comment(task_id: str) -> Response:
        try:
            engine().add_comment(task_id, me(), request.form.get("text") or "")
            flash(_("Комментарий добавлен."), "success")
        except AggloError as exc:
            flash_error(exc)
        return redirect(url_for("ui.task", task_id=task_id) + "#comments")

    @bp.post("/tasks/<task_id>/attachments")
    def attach(task_id: str) -> Response:
        eng = engine()
        file = request.files.get("file")
        try:
            if file is None or not file.filename:
                raise BadInput(_("Выберите файл."), field="file")
            content = file.read(eng.settings.max_upload_bytes + 1)
            if len(content) > eng.settings.max_upload_bytes:
                raise TooLarge(f"file {file.filename!r}", len(content), eng.settings.max_upload_bytes, field="file")
            record = eng.add_attachment(task_id, me(), file.filename, file.mimetype or "", content)
            flash(_("Документ «%(name)s» прикреплён.", name=record.filename), "success")
        except AggloError as exc:
            flash_error(exc)
        return redirect(url_for("ui.task", task_id=task_id) + "#documents")

    @bp.post("/tasks/<task_id>/extension")
    def request_extension(task_id: str) -> Response:
        try:
            raw = request.form.get("proposed_date") or ""
            try:
                proposed = date.fromisoformat(raw)
            except ValueError:
                raise BadInput(_("Укажите предлагаемую дату."), field="proposed_date") from None
            engine().request_extension(task_id, me(), request.form.get("reason") or "", proposed)
            flash(_("Запрос на продление срока отправлен."), "success")
        except AggloError as exc:
            flash_error(exc)
        return redirect(url_for("ui.task", task_id=task_id) + "#deadline")

    @bp.post("/extension-requests/<request_id>/decide")
    def decide_extension(request_id: str) -> Response:
        try:
            approve = request.form.get("decision") == "approve"
            raw = request.form.get("new_date") or ""
            new_date = date.fromisoformat(raw) if raw else None
            engine().decide_extension(request_id, me(), approve, request.form.get("comment") or None, new_date)
            flash(_("Решение по продлению срока принято.") if approve else _("В продлении срока отказано."), "success")
        except ValueError:
            flash(_("Неверная дата."), "error")
        except AggloError as exc:
            flash_error(exc)
        return back("ui.inbox")
