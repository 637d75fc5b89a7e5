"""Processes one may start, the list of cases (instances) and a case's page with its diagram."""

from __future__ import annotations

import math
import re
from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from engine import access
from engine.errors import AggloError, FieldError, FormInvalid
from engine.ports import DeadlineQuery, InstanceQuery
from engine.records import InstanceStatus

from . import forms
from .common import engine, flash_error, incident_of, me

PER_PAGE = 30
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _back_to(default: str) -> Response:
    """To the form's ``next`` when it is a path on this site, else to ``default`` (no open redirect)."""
    target = request.form.get("next") or ""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return redirect(target)
    return redirect(default)


def install(bp: Blueprint) -> None:
    @bp.get("/processes")
    def processes() -> str:
        who = me()
        eng = engine()
        startable = eng.startable(who)
        return render_template("processes.html", nav="processes", startable=startable, all=eng.definitions())

    @bp.route("/processes/<key>/start", methods=["GET", "POST"])
    def start(key: str) -> Response | str:
        who = me()
        eng = engine()
        compiled = next((c for c in eng.startable(who) if c.record.key == key), None)
        if compiled is None:
            flash(_("Этот процесс вам запускать нельзя или он не найден."), "error")
            return redirect(url_for("ui.processes"))
        schema = compiled.start_schema
        values: dict[str, object] = {}
        errors: list[FieldError] = []
        business_key = ""
        status = 200
        if request.method == "POST":
            values = forms.parse(schema, request.form)
            business_key = (request.form.get("business_key") or "").strip()
            try:
                view = eng.start(key, who, values, business_key or None)
            except FormInvalid as exc:
                errors = list(exc.errors)
                status = 422
                flash(_("Форма заполнена с ошибками — они отмечены у полей."), "error")
            except AggloError as exc:
                flash_error(exc)
                status = 400
            else:
                flash(_("Процесс «%(name)s» запущен.", name=compiled.model.label), "success")
                mine = [t for t in view.tasks if access.can_act_on_task(who, t.task)]
                if mine:
                    return redirect(url_for("ui.task", task_id=mine[0].task.id))
                return redirect(url_for("ui.instance", instance_id=view.instance.id))
        html = render_template(
            "start.html",
            nav="processes",
            compiled=compiled,
            widgets=forms.widgets(schema, values, errors),
            general_errors=forms.form_errors(errors, schema),
            business_key=business_key,
        )
        return Response(html, status=status, mimetype="text/html")

    @bp.get("/instances")
    def instances() -> str:
        who = me()
        eng = engine()
        page = max(1, request.args.get("page", 1, type=int) or 1)
        status = request.args.get("status") or None
        process_key = request.args.get("process") or None
        query = InstanceQuery(
            process_key=process_key,
            status=InstanceStatus(status) if status in {s.value for s in InstanceStatus} else None,
            limit=PER_PAGE,
            offset=(page - 1) * PER_PAGE,
        )
        items, total = eng.instances_page(who, query)
        names = {d.key: d.name or d.key for d in eng.definitions()}
        orgs = {o.code: o.short_name or o.name for o in eng.organisations()}
        return render_template(
            "instances.html",
            nav="instances",
            items=items,
            total=total,
            page=page,
            pages=max(1, math.ceil(total / PER_PAGE)),
            names=names,
            orgs=orgs,
            status=status or "",
            process=process_key or "",
            statuses=[s.value for s in InstanceStatus],
        )

    @bp.get("/instances/<instance_id>")
    def instance(instance_id: str) -> str:
        who = me()
        eng = engine()
        view = eng.instance(instance_id, who)
        state = eng.diagram_state(instance_id, who)
        deadlines = eng.deadlines(who, DeadlineQuery(instance_id=instance_id, status=None))
        files, notes = eng.instance_documents(instance_id, who)
        compiled = eng.definition(view.instance.definition_id)
        names = {e.id: e.name or e.id for e in compiled.model.elements.values()}
        date_variables = (
            {k: v for k, v in view.variables.items() if isinstance(v, str) and ISO_DATE.match(v)}
            if access.sees_all_instances(who)
            else {}
        )
        return render_template(
            "instance.html",
            nav="instances",
            view=view,
            state=state,
            deadlines=deadlines,
            files=files,
            notes=notes,
            names=names,
            now=eng.clock.now(),
            date_variables=date_variables,
            incident=incident_of(view.instance) if view.instance.incident else None,
            can_cancel=not view.instance.status.is_final
            and (who.is_admin or who.has("coordinator") or view.instance.started_by == who.login),
            can_retry=view.instance.status == InstanceStatus.INCIDENT and (who.is_admin or who.has("coordinator")),
        )

    @bp.post("/instances/<instance_id>/cancel")
    def cancel(instance_id: str) -> Response:
        try:
            engine().cancel(instance_id, me(), request.form.get("reason") or None)
            flash(_("Дело отменено."), "info")
        except AggloError as exc:
            flash_error(exc)
        return _back_to(url_for("ui.instance", instance_id=instance_id))

    @bp.post("/instances/<instance_id>/retry")
    def retry(instance_id: str) -> Response:
        try:
            view = engine().retry_incident(instance_id, me())
            if view.instance.status == InstanceStatus.INCIDENT:
                failed = incident_of(view.instance)
                flash(
                    _("Шаг «%(step)s» снова завершился ошибкой: %(e)s", step=failed.step_name or "?", e=failed.error),
                    "error",
                )
            else:
                flash(_("Дело продолжено."), "success")
        except AggloError as exc:
            flash_error(exc)
        return _back_to(url_for("ui.instance", instance_id=instance_id))

    @bp.post("/instances/<instance_id>/dates")
    def move_dates(instance_id: str) -> Response:
        who = me()
        changes: dict[str, object] = {}
        for key, value in request.form.items():
            if key.startswith("var:") and value:
                try:
                    changes[key[4:]] = date.fromisoformat(value).isoformat()
                except ValueError:
                    flash(_("Неверная дата: %(v)s", v=value), "error")
                    return redirect(url_for("ui.instance", instance_id=instance_id))
        try:
            current = engine().instance(instance_id, who).variables
            changed = {k: v for k, v in changes.items() if current.get(k) != v}
            if changed:
                engine().set_variables(instance_id, who, changed)
                flash(_("Даты изменены; зависящие от них сроки пересчитаны."), "success")
            else:
                flash(_("Даты не изменились."), "info")
        except AggloError as exc:
            flash_error(exc)
        return redirect(url_for("ui.instance", instance_id=instance_id) + "#deadlines")
