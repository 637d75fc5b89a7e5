"""Helpers the UI's pages share."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from engine.directory import Actor
from engine.engine import Engine
from engine.errors import AggloError, NotAuthenticated
from engine.records import InstanceRecord

from ..auth import current_actor, engine, require_actor

__all__ = ["Actor", "Engine", "back", "engine", "me", "org_name", "problem_text", "unread_count"]


def me() -> Actor:
    return require_actor()


def unread_count() -> int:
    """Unread notifications of the signed-in user (once per request)."""
    if "unread" not in g:
        actor = current_actor()
        g.unread = engine().count_notifications(actor, unread_only=True) if actor else 0
    value: int = g.unread
    return value


def org_name(code: str | None) -> str:
    """An organisation's short name for the page (its code when unknown); once per request."""
    if not code:
        return ""
    if "org_names" not in g:
        g.org_names = {o.code: o.short_name or o.name for o in engine().organisations()}
    names: dict[str, str] = g.org_names
    return names.get(code, code)


STEP_FAILED = re.compile(r"^step '([^']+)' failed: (.*)$", re.DOTALL)


@dataclass(frozen=True)
class Incident:
    """What stopped a case, for people: the process, the step by its name, the technical error."""

    instance: InstanceRecord
    process_name: str
    step_id: str | None
    step_name: str | None
    error: str


def incident_of(instance: InstanceRecord) -> Incident:
    eng = engine()
    compiled = eng.definition(instance.definition_id)
    found = STEP_FAILED.match(instance.incident or "")
    step_id, error = (found.group(1), found.group(2)) if found else (None, instance.incident or "")
    element = compiled.model.elements.get(step_id) if step_id else None
    step_name = element.label if element is not None else step_id
    return Incident(instance, compiled.model.label, step_id, step_name, error)


def back(default: str, **values: Any) -> Response:
    """Redirect to the page the form came from when it is ours, else to ``default``."""
    target = request.form.get("next") or ""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return redirect(target)
    return redirect(url_for(default, **values))


HEADLINES = {
    "not_found": _l("Не найдено"),
    "not_permitted": _l("Действие не разрешено"),
    "csrf_failed": _l("Форма устарела — обновите страницу и повторите"),
    "concurrency_conflict": _l("Данные изменил кто-то другой — обновите страницу"),
    "stale_version": _l("Данные устарели — обновите страницу"),
    "invalid_state": _l("Действие невозможно в текущем состоянии"),
    "bad_input": _l("Неверные данные"),
    "invalid_request": _l("Неверные данные"),
    "too_large": _l("Файл слишком большой"),
    "unsupported_type": _l("Такой тип файла не принимается"),
    "form_invalid": _l("Форма заполнена с ошибками"),
    "definition_invalid": _l("Процесс не принят"),
    "unsafe_xml": _l("Небезопасный XML отклонён"),
    "step_failed": _l("Автоматический шаг процесса завершился ошибкой"),
    "not_authenticated": _l("Неверный логин или пароль"),
    "too_many_attempts": _l("Слишком много неудачных попыток входа — подождите минуту"),
}


Explain = Callable[[re.Match[str]], str]


def _mb(size: str) -> str:
    return f"{int(size) / 1048576:.1f}".rstrip("0").rstrip(".")


# The engine explains its refusals in English (for logs and API clients); the pages say the same in
# Russian. Messages not listed here are shown as they are, after the Russian headline.
DETAILS: list[tuple[re.Pattern[str], Explain]] = [
    (re.compile(p), f)
    for p, f in [
        (r"^the comment is empty$", lambda m: _("комментарий пуст")),
        (r"^the comment is longer than (\d+) characters$", lambda m: _("комментарий длиннее %(n)s символов", n=m[1])),
        (r"^the file has no name$", lambda m: _("у файла нет имени")),
        (r"^the file name is longer than 255 bytes$", lambda m: _("имя файла слишком длинное")),
        (r"^file '(.+)' is empty$", lambda m: _("файл «%(f)s» пуст", f=m[1])),
        (
            r"is (\d+) bytes, over the limit of (\d+) bytes$",
            lambda m: _("больше допустимых %(limit)s МБ", limit=_mb(m[2])),
        ),
        (
            r"^files of type '(.+)' are not accepted; allowed: (.+)$",
            lambda m: _("файлы типа «%(t)s» не принимаются; допустимы: %(allowed)s", t=m[1], allowed=m[2]),
        ),
        (
            r"^file '(.+)' is declared as '.+', which does not match \.(\w+)$",
            lambda m: _("тип файла «%(f)s» не соответствует расширению .%(ext)s", f=m[1], ext=m[2]),
        ),
        (r"^file '(.+)' is not UTF-8 text$", lambda m: _("файл «%(f)s» — не текст в кодировке UTF-8", f=m[1])),
        (
            r"^the content of '(.+)' is not a \.(\w+) file$",
            lambda m: _("содержимое файла «%(f)s» не соответствует расширению .%(ext)s", f=m[1], ext=m[2]),
        ),
        (r"documents are attached to open tasks$", lambda m: _("документы прикрепляются только к открытым задачам")),
        (r"^give the reason for the extension$", lambda m: _("укажите причину продления")),
        (
            r"^the proposed date must be later than the current deadline (.+)$",
            lambda m: _("предлагаемая дата должна быть позже текущего срока (%(d)s)", d=m[1]),
        ),
        (r"^the new date must be later than (.+)$", lambda m: _("новая дата должна быть позже %(d)s", d=m[1])),
        (r"^a refusal needs a comment$", lambda m: _("при отказе нужен комментарий")),
        (
            r"^an extension request for this deadline is already waiting for a decision$",
            lambda m: _("запрос на продление этого срока уже ждёт решения"),
        ),
        (r"^extension request \S+ is already \w+$", lambda m: _("по этому запросу решение уже принято")),
        (r"^the task's deadline is no longer open$", lambda m: _("срок задачи уже закрыт")),
        (r"^task \S+ has no open deadline$", lambda m: _("у задачи нет открытого срока")),
        (r": it is claimed by (\S+)$", lambda m: _("задачу уже взял(а) в работу %(u)s", u=m[1])),
        (
            r": the task is not assigned to your role or organisation$",
            lambda m: _("задача назначена не вашей роли или организации"),
        ),
        (r"^task \S+ is (completed|cancelled)", lambda m: _("задача уже закрыта")),
        (
            r"^the password must have at least (\d+) characters$",
            lambda m: _("пароль должен быть не короче %(n)s символов", n=m[1]),
        ),
        (r"^the password must have at most (\d+) characters$", lambda m: _("пароль слишком длинный")),
        (r"^the password must not contain the login$", lambda m: _("пароль не должен содержать логин")),
        (
            r"^the password is too simple",
            lambda m: _("пароль слишком простой: используйте хотя бы 4 разных символа"),
        ),
        (r"^the current password is wrong$", lambda m: _("текущий пароль указан неверно")),
        (
            r"^the new password must differ from the current one$",
            lambda m: _("новый пароль должен отличаться от текущего"),
        ),
        (
            r"^a login is 2-64 lower-case letters",
            lambda m: _("логин — от 2 до 64 строчных латинских букв, цифр, «.», «_» или «-»"),
        ),
        (r"^a new user needs (.+)$", lambda m: _("для нового пользователя укажите: %(what)s", what=m[1])),
        (r"^organisation '(.+)' does not exist$", lambda m: _("организации «%(o)s» нет", o=m[1])),
        (r"^the name must not be empty$", lambda m: _("укажите ФИО")),
        (r"^you cannot deactivate yourself$", lambda m: _("нельзя заблокировать самого себя")),
        (r"^at least one role is needed$", lambda m: _("нужна хотя бы одна роль")),
        (r"^unknown role\(s\) (.+?);", lambda m: _("неизвестные роли: %(r)s", r=m[1])),
        (
            r"^a token name is 1-60 lower-case letters",
            lambda m: _("имя токена — от 1 до 60 строчных латинских букв, цифр, «.», «_» или «-»"),
        ),
        (
            r"^an active token named '(.+)' exists; revoke it first$",
            lambda m: _("действующий токен «%(n)s» уже есть: сначала отзовите его", n=m[1]),
        ),
        (r"may not open the administration pages", lambda m: _("эти страницы — только для администраторов")),
        (r"the CSRF token is missing or stale", lambda m: _("обновите страницу и отправьте форму ещё раз")),
        (r"^no such address: ", lambda m: _("такой страницы нет")),
        (
            r"^(task|instance|process|attachment|extension request|user|token) '.+' not found$",
            lambda m: _("такого объекта нет или он вам недоступен"),
        ),
    ]
]


def russian_detail(message: str) -> str | None:
    """The engine's English explanation said in Russian, when we know how to say it."""
    for pattern, explain in DETAILS:
        found = pattern.search(message)
        if found:
            return explain(found)
    return None


def problem_text(error: AggloError) -> str:
    """A Russian headline for the error's code, with the engine's precise explanation."""
    headline = str(HEADLINES.get(error.code, _("Ошибка")))
    if error.code in ("not_authenticated", "too_many_attempts", "form_invalid"):
        return headline + "."
    return f"{headline}: {russian_detail(error.message) or error.message}"


def flash_error(error: AggloError) -> None:
    """Show a refused action on the page it came from; a visitor who is not logged in goes to the
    login page instead (the app's handler), not back with a message about a wrong password."""
    if isinstance(error, NotAuthenticated):
        raise error
    flash(problem_text(error), "error")
