"""Administration of webhooks: subscriptions to events with their delivery log, sources of incoming
webhooks, and the messages received.

A secret (a subscription's or a source's) is shown once, in the response to the form that made it
(create or rotate): never put in the session, a redirect or another page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from engine import events
from engine.directory import Actor
from engine.engine import SECRET_OVERLAP, Engine
from engine.errors import AggloError, BadInput
from engine.records import DeliveryAttempt, DeliveryRecord, DeliveryStatus, MessageStatus, Subscription

from ..errors import status_for
from .admin import admin_actor
from .common import HEADLINES, engine, problem_text

DELIVERIES_SHOWN = 50
MESSAGES_SHOWN = 200
MAX_OVERLAP_HOURS = 14 * 24

EVENT_SUMMARIES = {
    "instance.started": _l("Дело начато: человеком, сообщением извне или по таймеру."),
    "instance.completed": _l("Дело завершено."),
    "instance.cancelled": _l("Дело отменено."),
    "instance.incident": _l("Автоматический шаг не выполнился; дело ждёт вмешательства."),
    "task.created": _l("Появилась задача: кто может её выполнить и к какому сроку."),
    "task.assigned": _l("Задачу взяли в работу."),
    "task.unassigned": _l("Задачу вернули в общий список."),
    "task.completed": _l("Задача выполнена (передаются имена полей формы, но не их значения)."),
    "task.cancelled": _l("Задача снята: дело пошло дальше или завершилось."),
    "deadline.reminder": _l("Напоминание перед сроком или в день срока."),
    "deadline.overdue": _l("Срок прошёл, а задача не выполнена."),
    "deadline.escalated": _l("Просроченная задача передана контролирующей роли."),
    "deadline.changed": _l("Срок изменился: сдвинулась опорная дата, продлён срок или изменён календарь."),
    "extension.requested": _l("Исполнитель попросил продлить срок."),
    "extension.decided": _l("Решение о продлении срока: одобрено или отклонено."),
    "membership.granted": _l("МОУО стало участником агломерации по зарегистрированному договору."),
}
DELIVERY_STATUS = {
    "queued": _l("в очереди"),
    "sending": _l("отправляется"),
    "sent": _l("доставлено"),
    "retry": _l("будет повтор"),
    "failed": _l("не доставлено"),
    "unconfirmed": _l("не подтверждено"),
}
ATTEMPT_OUTCOME = {
    "sent": _l("доставлено"),
    "retry": _l("ошибка, будет повтор"),
    "failed": _l("ошибка, попытки исчерпаны"),
    "disabled": _l("получатель отказался (410)"),
}
MESSAGE_STATUS = {
    "buffered": _l("ждёт дело"),
    "correlated": _l("передано в дело"),
    "expired": _l("срок хранения истёк"),
}
ADDRESS_KINDS = {
    "loopback": _l("локальный адрес (loopback)"),
    "private": _l("адрес внутренней сети"),
    "link-local": _l("локальный адрес канала (link-local)"),
    "multicast": _l("групповой адрес (multicast)"),
    "unspecified": _l("неопределённый адрес"),
    "reserved": _l("зарезервированный адрес"),
    "shared address space (RFC 6598)": _l("адрес общего пространства провайдера (RFC 6598)"),
    "not globally routable": _l("адрес, недоступный из интернета"),
}

Explain = Callable[[re.Match[str]], str]


def _refused_address(m: re.Match[str]) -> str:
    """The SSRF check's refusal: the host is (or resolves to) an address inside a network."""
    host, address, kind = m[1], m[2], str(ADDRESS_KINDS.get(m[3], m[3]))
    where = host if host == address else f"{host} ({address})"
    return str(
        _(
            "адрес отклонён: %(where)s — %(kind)s. Получателя во внутренней сети может разрешить "
            "администратор сервера в AGGLO_WEBHOOK_ALLOW_HOSTS",
            where=where,
            kind=kind,
        )
    )


# The engine and the SSRF check explain refusals in English; these pages say them in Russian
# (what is not listed falls back to the shared explanations of web.ui.common).
DETAILS: list[tuple[re.Pattern[str], Explain]] = [
    (re.compile(p), f)
    for p, f in [
        (
            r"^the URL must be an absolute http\(s\) URL",
            lambda m: _("адрес должен быть полным URL, начинаться с http:// или https:// и быть до 2000 знаков"),
        ),
        (
            r"^the URL is refused: .*?(\S+) resolves to (\S+), an? (.+?) address;",
            _refused_address,
        ),
        (r"^the URL is refused: .*the host does not resolve", lambda m: _("адрес отклонён: такого имени узла нет")),
        (
            r"^the URL is refused: .*credentials in the URL are not allowed",
            lambda m: _("логин и пароль в адресе не допускаются: получатель проверяет подпись"),
        ),
        (
            r"^the URL is refused: .*only http and https",
            lambda m: _("адрес должен начинаться с http:// или https://"),
        ),
        (r"^the URL is refused: (.*)$", lambda m: _("адрес отклонён проверкой безопасности: %(why)s", why=m[1])),
        (r"^unknown event type\(s\): (.+)$", lambda m: _("неизвестные типы событий: %(t)s", t=m[1])),
        (
            r"^the overlap must be",
            lambda m: _("перекрытие — от 0 до %(n)s часов (14 дней)", n=MAX_OVERLAP_HOURS),
        ),
        (
            r"^a source name is 1-64",
            lambda m: _("имя источника — от 1 до 64 строчных латинских букв, цифр, «_» или «-»"),
        ),
        (
            r"^source '(.+)' exists",
            lambda m: _("источник «%(n)s» уже есть: чтобы выдать ему новый секрет, нажмите «Сменить секрет»", n=m[1]),
        ),
        (r"^delivery \S+ is being sent right now$", lambda m: _("это событие отправляется прямо сейчас")),
        (r"^(subscription|delivery|source) '.+' not found$", lambda m: _("такой записи нет")),
        (r"^unknown action", lambda m: _("неизвестное действие формы")),
    ]
]


def problem(error: AggloError) -> str:
    """The refusal in Russian: a headline and what exactly was wrong."""
    for pattern, explain in DETAILS:
        found = pattern.search(error.message)
        if found:
            return f"{HEADLINES.get(error.code, _('Ошибка'))}: {explain(found)}"
    return problem_text(error)


def refused(error: AggloError) -> int:
    """Flash the refusal; the status code of the page that shows the form again."""
    flash(problem(error), "error")
    return status_for(error)


def disabled_reason(reason: str | None) -> str:
    """Why the worker disabled a subscription, in Russian."""
    if not reason:
        return ""
    found = re.match(r"^(\d+) failed deliveries in a row$", reason)
    if found:
        return str(_("%(n)s неудачных доставок подряд", n=found[1]))
    if reason.startswith("410"):
        return str(_("получатель ответил 410 Gone: просит больше не присылать события"))
    return reason


def event_types() -> list[dict[str, Any]]:
    """The catalogue with each type's summary in the page's language."""
    return [
        {"type": e["type"], "summary": str(EVENT_SUMMARIES.get(e["type"], e["summary"]))} for e in events.catalogue()
    ]


def overlap_of(raw: str | None) -> timedelta:
    try:
        hours = float((raw or "").replace(",", ".")) if raw not in (None, "") else SECRET_OVERLAP.total_seconds() / 3600
    except ValueError:
        raise BadInput("the overlap must be a number of hours", field="overlap_hours") from None
    if not 0 <= hours <= MAX_OVERLAP_HOURS:
        raise BadInput(f"the overlap must be between 0 and {MAX_OVERLAP_HOURS} hours", field="overlap_hours")
    return timedelta(hours=hours)


def inbound_url(name: str) -> str:
    return url_for("inbound.receive", source=name, _external=True)


def _subscription_fields() -> dict[str, Any]:
    form = request.form
    return {
        "url": (form.get("url") or "").strip(),
        "event_types": form.getlist("event_types"),
        "organisation": form.get("organisation") or None,
        "description": form.get("description") or "",
    }


def _deliveries(eng: Engine, who: Actor, sub: Subscription, status: DeliveryStatus | None) -> list[dict[str, Any]]:
    """The most recent deliveries, newest first, each with its attempts (newest first)."""
    found = eng.webhook_deliveries(who, sub.id, status, limit=1000)[-DELIVERIES_SHOWN:]
    shown: list[dict[str, Any]] = []
    for delivery in reversed(found):
        attempts: list[DeliveryAttempt] = eng.delivery_attempts(who, delivery.id)
        shown.append({"delivery": delivery, "attempts": attempts})
    return shown


def _status_filter(raw: str | None, allowed: type[DeliveryStatus] | type[MessageStatus]) -> Any:
    try:
        return allowed(raw) if raw else None
    except ValueError:
        return None


def _render(template: str, status: int = 200, **context: Any) -> Response:
    html = render_template(
        template,
        nav="admin",
        delivery_status=lambda s: str(DELIVERY_STATUS.get(str(getattr(s, "value", s)), s)),
        attempt_outcome=lambda s: str(ATTEMPT_OUTCOME.get(s, s)),
        message_status=lambda s: str(MESSAGE_STATUS.get(str(getattr(s, "value", s)), s)),
        disabled_reason=disabled_reason,
        **context,
    )
    return Response(html, status=status, mimetype="text/html")


def install(bp: Blueprint) -> None:
    @bp.route("/admin/webhooks", methods=["GET", "POST"])
    def webhooks() -> Response:
        who = admin_actor()
        eng = engine()
        created = None
        status = 200
        form: dict[str, Any] = {}
        if request.method == "POST":
            try:
                fields = _subscription_fields()
                sub, secret = eng.create_subscription(who, **fields)
                # The secret is shown in this response only: never stored in the session or a redirect.
                created = {"subscription": sub, "secret": secret}
            except AggloError as exc:
                status = refused(exc)
                form = {**request.form, "event_types": request.form.getlist("event_types")}
        return _render(
            "webhooks.html",
            status,
            subscriptions=eng.subscriptions(who),
            organisations=eng.organisations(),
            event_types=event_types(),
            created=created,
            form=form,
        )

    @bp.route("/admin/webhooks/sources", methods=["GET", "POST"])
    def webhook_sources() -> Response:
        who = admin_actor()
        eng = engine()
        shown = None
        status = 200
        form: dict[str, Any] = {}
        if request.method == "POST":
            action = request.form.get("action")
            name = (request.form.get("name") or "").strip().lower()
            try:
                if action == "add":
                    if any(s.name == name for s in eng.sources(who)):
                        raise BadInput(f"source {name!r} exists; rotate its secret instead", field="name")
                    source, secret = eng.save_source(who, name, request.form.get("description") or "")
                    shown = {"source": source, "secret": secret, "url": inbound_url(source.name), "created": True}
                elif action == "rotate":
                    source, secret = eng.rotate_source_secret(who, name, overlap_of(request.form.get("overlap_hours")))
                    shown = {"source": source, "secret": secret, "url": inbound_url(source.name), "created": False}
                elif action in ("enable", "disable"):
                    eng.set_source_active(who, name, action == "enable")
                    if action == "enable":
                        flash(_("Источник %(n)s включён: его события принимаются.", n=name), "success")
                    else:
                        flash(_("Источник %(n)s отключён: его запросы отклоняются.", n=name), "info")
                    return redirect(url_for("ui.webhook_sources"))
                else:
                    raise BadInput(f"unknown action {action!r}", field="action")
            except AggloError as exc:
                status = refused(exc)
                form = dict(request.form) if action == "add" else {}
        return _render(
            "webhooks_sources.html",
            status,
            sources=eng.sources(who),
            inbound_url=inbound_url,
            shown=shown,
            form=form,
        )

    @bp.get("/admin/webhooks/messages")
    def webhook_messages() -> Response:
        who = admin_actor()
        chosen = _status_filter(request.args.get("status"), MessageStatus)
        return _render(
            "webhooks_messages.html",
            messages=engine().messages(who, chosen, MESSAGES_SHOWN),
            statuses=list(MESSAGE_STATUS),
            chosen=chosen.value if chosen else "",
            limit=MESSAGES_SHOWN,
        )

    @bp.route("/admin/webhooks/<subscription_id>", methods=["GET", "POST"])
    def webhook(subscription_id: str) -> Response:
        who = admin_actor()
        eng = engine()
        sub = eng.subscription(who, subscription_id)
        rotated = None
        status = 200
        form: dict[str, Any] = {}
        if request.method == "POST":
            action = request.form.get("action")
            here = url_for("ui.webhook", subscription_id=sub.id, status=request.args.get("status") or None)
            try:
                if action == "save":
                    eng.update_subscription(who, sub.id, **_subscription_fields())
                    flash(_("Подписка сохранена."), "success")
                    return redirect(here)
                if action in ("enable", "disable"):
                    eng.update_subscription(who, sub.id, active=action == "enable")
                    if action == "enable":
                        flash(_("Подписка включена: счётчик неудач сброшен, недоставленные события уйдут."), "success")
                    else:
                        flash(_("Подписка отключена: события ей больше не отправляются."), "info")
                    return redirect(here)
                if action == "rotate":
                    sub, secret = eng.rotate_subscription_secret(
                        who, sub.id, overlap_of(request.form.get("overlap_hours"))
                    )
                    # Shown in this response only, like the secret of a new subscription.
                    rotated = {"secret": secret, "until": sub.previous_until if sub.previous_secret else None}
                elif action == "redeliver":
                    again: DeliveryRecord = eng.redeliver(who, request.form.get("delivery") or "")
                    flash(_("Событие %(e)s поставлено в очередь на повторную доставку.", e=again.event_id), "success")
                    return redirect(here)
                else:
                    raise BadInput(f"unknown action {action!r}", field="action")
            except AggloError as exc:
                status = refused(exc)
                if action == "save":
                    form = {**request.form, "event_types": request.form.getlist("event_types")}
            sub = eng.subscription(who, sub.id)
        chosen = _status_filter(request.args.get("status"), DeliveryStatus)
        return _render(
            "webhooks_subscription.html",
            status,
            sub=sub,
            organisations=eng.organisations(),
            event_types=event_types(),
            deliveries=_deliveries(eng, who, sub, chosen),
            statuses=list(DELIVERY_STATUS),
            chosen=chosen.value if chosen else "",
            shown_limit=DELIVERIES_SHOWN,
            rotated=rotated,
            form=form,
        )
