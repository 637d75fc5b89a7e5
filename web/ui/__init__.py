"""The server-rendered Russian UI (ready for other languages through Flask-Babel)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Blueprint, Response, request
from flask_babel import lazy_gettext as _l

from engine.clock import REGION_TZ

from . import account, admin, cases, deadlines, i18n, members, webhooks, work
from .common import HEADLINES, org_name, russian_detail, unread_count

LANGUAGES = ("ru", "en")
LANGUAGE_COOKIE = "agglo_lang"  # read by web.app.select_locale
STATUS_NAMES = {
    "running": _l("в работе"),
    "waiting": _l("ожидает"),
    "completed": _l("завершено"),
    "cancelled": _l("отменено"),
    "incident": _l("сбой"),
    "open": _l("открыта"),
    "met": _l("выполнен"),
    "pending": _l("на рассмотрении"),
    "approved": _l("одобрено"),
    "refused": _l("отклонено"),
}
ACTIONS = {
    "instance.started": _l("Дело начато"),
    "instance.completed": _l("Дело завершено"),
    "instance.cancelled": _l("Дело отменено"),
    "instance.incident": _l("Сбой автоматического шага"),
    "instance.incident_resolved": _l("Сбой устранён"),
    "instance.retried": _l("Повтор после сбоя"),
    "instance.variables_changed": _l("Изменены данные дела"),
    "task.created": _l("Новая задача"),
    "task.claimed": _l("Задача взята в работу"),
    "task.unclaimed": _l("Задача возвращена в общий список"),
    "task.completed": _l("Задача выполнена"),
    "task.cancelled": _l("Задача снята"),
    "task.commented": _l("Комментарий"),
    "task.attachment_added": _l("Прикреплён документ"),
    "element.completed": _l("Шаг выполнен"),
    "deadline.reminder": _l("Напоминание о сроке"),
    "deadline.overdue": _l("Срок пропущен"),
    "deadline.escalated": _l("Эскалация"),
    "deadline.changed": _l("Срок пересчитан"),
    "deadline.reminder_failed": _l("Напоминание не доставлено"),
    "extension.requested": _l("Запрошено продление срока"),
    "extension.decided": _l("Решение о продлении срока"),
}
ROLE_NAMES = {
    "ministry": _l("Министерство"),
    "coordinator": _l("Координатор (РЦОКИО)"),
    "mouo": _l("МОУО"),
    "expert": _l("Эксперт"),
    "admin": _l("Администратор"),
}


def _d(value: date | datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.astimezone(REGION_TZ).date()
    return value.strftime("%d.%m.%Y")


def _dt(value: datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(REGION_TZ).strftime("%d.%m.%Y %H:%M")


def action_label(action: str) -> str:
    return str(ACTIONS.get(action, action))


def explain_problem(problem: dict[str, Any]) -> str:
    """The error page's sentence in Russian: the detail when we know how to say it, else the headline."""
    detail = str(problem.get("detail") or "")
    said = russian_detail(detail)
    if said:
        return said[:1].upper() + said[1:] + "."
    headline = HEADLINES.get(str(problem.get("code")))
    return str(headline) + "." if headline else detail


def create_ui() -> Blueprint:
    bp = Blueprint("ui", __name__)
    for module in (account, work, cases, deadlines, members, admin, webhooks):
        module.install(bp)
    bp.record_once(lambda state: i18n.install(state.app))

    @bp.after_app_request
    def remember_language(response: Response) -> Response:
        """``?lang=en`` switches the language for the following pages too (a cookie, a year)."""
        chosen = request.args.get("lang")
        if chosen in LANGUAGES and request.cookies.get(LANGUAGE_COOKIE) != chosen:
            response.set_cookie(
                LANGUAGE_COOKIE,
                chosen,
                max_age=365 * 24 * 3600,
                httponly=True,
                samesite="Lax",
                secure=request.is_secure,
            )
        return response

    @bp.app_template_filter("d")
    def filter_date(value: Any) -> str:
        return _d(value)

    @bp.app_template_filter("dt")
    def filter_datetime(value: Any) -> str:
        return _dt(value)

    @bp.app_template_filter("status")
    def filter_status(value: Any) -> str:
        text = getattr(value, "value", value)
        return str(STATUS_NAMES.get(str(text), str(text)))

    @bp.app_template_filter("role")
    def filter_role(value: Any) -> str:
        return str(ROLE_NAMES.get(str(value), str(value)))

    @bp.app_context_processor
    def globals_() -> dict[str, Any]:
        return {
            "unread_count": unread_count,
            "org_name": org_name,
            "ROLE_NAMES": ROLE_NAMES,
            "action_label": action_label,
            "explain_problem": explain_problem,
        }

    return bp
