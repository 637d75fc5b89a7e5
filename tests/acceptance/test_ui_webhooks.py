"""The webhook pages of the administration: subscriptions (secret shown once, edit, enable and
disable, rotation), the delivery log with each delivery's attempts and redelivery, inbound
sources, and the messages received."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from engine.clock import REGION_TZ, VirtualClock
from engine.directory import SYSTEM_ACTOR
from engine.engine import Engine
from engine.records import DeliveryStatus, MessageStatus
from tests.acceptance.conftest import Client
from tests.acceptance.test_ui import (
    HtmlElement,
    Login,
    find,
    flashes,
    follow,
    location,
    one,
    page,
    post_forms,
    snapshot,
    text,
)
from tests.acceptance.test_ui_pages import check_accessibility
from tests.bpmn import document, flows, user_task
from webhooks import outbound, signing, ssrf
from webhooks.http import HttpResult

RECEIVER = "https://receiver.example/hooks/agglo"
PUBLIC_ADDRESS = "93.184.216.34"

MESSAGE_START = document(
    '<bpmn:startEvent id="start"><bpmn:messageEventDefinition messageRef="m"/></bpmn:startEvent>\n'
    + user_task("check", "Проверить документ", 'camunda:candidateGroups="coordinator"')
    + '\n<bpmn:endEvent id="end"/>\n'
    + flows("start", "check", "end"),
    "doc_arrived",
    name="Документ из СЭД",
    outside='<bpmn:message id="m" name="doc.arrived"/>\n',
)


def local(value: object) -> str:
    """A moment as the pages show it (dd.mm.yyyy HH:MM in the region's time)."""
    return value.astimezone(REGION_TZ).strftime("%d.%m.%Y %H:%M")  # type: ignore[attr-defined]


def facts_of(doc: HtmlElement) -> dict[str, str]:
    """The subscription page's facts: term -> description."""
    terms, values = find(doc, "//dl[.facts]/dt"), find(doc, "//dl[.facts]/dd")
    return {text(t): text(v) for t, v in zip(terms, values, strict=True)}


def subscribe(admin: Client, url: str = RECEIVER, **fields: object) -> tuple[str, str]:
    """Create a subscription through the page: (its id, its secret)."""
    doc = page(admin.form("/admin/webhooks", {"url": url, **fields}))
    secret = one(doc, "//input[@id='secret']").get("value")
    link = one(doc, "//section[@role='status']//a").get("href")
    return link.rsplit("/", 1)[-1], secret


def public(host: str, port: int) -> list[str]:
    return [PUBLIC_ADDRESS]


Sender = Callable[[ssrf.Target, bytes, dict[str, str], float], HttpResult]


def send_due(engine: Engine, clock: VirtualClock, answer: HttpResult, sent: list[dict[str, str]]) -> None:
    """What the worker does: fan outbox events out to deliveries, then send the due ones (answering ``answer``)."""

    def sender(target: ssrf.Target, body: bytes, headers: dict[str, str], timeout: float) -> HttpResult:
        assert target.address == PUBLIC_ADDRESS
        sent.append({**headers, "body": body.decode()})
        return answer

    outbound.dispatch(engine.store, clock, "test-worker")
    outbound.deliver(engine.store, clock, engine.settings, "test-worker", sender=sender, resolver=public, threads=1)


# -- who may open the pages ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["troitsk-go", "coordinator", "ministry"])
def test_only_administrators_open_the_webhook_pages(login: Login, web_engine: Engine, user: str) -> None:
    sub, _ = web_engine.create_subscription(SYSTEM_ACTOR, RECEIVER)
    web_engine.save_source(SYSTEM_ACTOR, "sed")
    browser = login(user)
    for url in ("/admin/webhooks", f"/admin/webhooks/{sub.id}", "/admin/webhooks/sources", "/admin/webhooks/messages"):
        doc = page(browser.get(url), 403)
        assert text(one(doc, "//p[.problem]")) == "Эти страницы — только для администраторов."
    before = snapshot(web_engine)
    for url, fields in [
        ("/admin/webhooks", {"url": "https://intruder.example/"}),
        (f"/admin/webhooks/{sub.id}", {"action": "rotate"}),
        (f"/admin/webhooks/{sub.id}", {"action": "disable"}),
        ("/admin/webhooks/sources", {"action": "add", "name": "intruder"}),
        ("/admin/webhooks/sources", {"action": "rotate", "name": "sed"}),
    ]:
        response = browser.form(url, fields)
        assert response.status_code == 403 and "whsec_" not in response.get_data(as_text=True)
    assert snapshot(web_engine) == before
    assert not find(page(browser.get("/")), "//a[@href='/admin/webhooks']")


def test_the_pages_need_a_session_and_every_form_a_csrf_token(client: Client, login: Login, web_engine: Engine) -> None:
    sub, _ = web_engine.create_subscription(SYSTEM_ACTOR, RECEIVER)
    assert location(client.get("/admin/webhooks")).startswith("/login")
    admin = login("admin")
    before = snapshot(web_engine)
    for url, fields in [
        ("/admin/webhooks", {"url": "https://other.example/"}),
        (f"/admin/webhooks/{sub.id}", {"action": "rotate"}),
        ("/admin/webhooks/sources", {"action": "add", "name": "sed"}),
    ]:
        response = admin.http.post(url, data=fields)
        said = text(one(page(response, 403), "//p[.problem]"))
        assert said == "Обновите страницу и отправьте форму ещё раз.", said
    assert snapshot(web_engine) == before
    for url in ("/admin/webhooks", f"/admin/webhooks/{sub.id}", "/admin/webhooks/sources"):
        for form in post_forms(page(admin.get(url))):
            assert form.xpath(".//input[@name='csrf_token']/@value"), (url, form.get("action"))
            assert form.get("data-busy") is not None, url


def test_the_administration_page_links_to_the_webhooks(login: Login) -> None:
    admin = login("admin")
    doc = page(admin.get("/admin"))
    link = one(doc, "//main//a[@href='/admin/webhooks']")
    assert text(link) == "Вебхуки"
    doc = page(admin.get(link.get("href")))
    assert text(one(doc, "//h1")) == "Вебхуки"
    tabs = [(a.get("href"), text(a), a.get("aria-current")) for a in find(doc, "//nav[.tabs]/a")]
    assert tabs == [
        ("/admin/webhooks", "Подписки на события", "page"),
        ("/admin/webhooks/sources", "Входящие источники", None),
        ("/admin/webhooks/messages", "Полученные сообщения", None),
    ]
    assert text(one(doc, "//p[.empty]")) == "Подписок пока нет."


# -- subscriptions ---------------------------------------------------------------------------------------------------


def test_a_subscription_is_created_and_its_secret_shown_once(login: Login, web_engine: Engine) -> None:
    admin = login("admin")
    doc = page(admin.get("/admin/webhooks"))
    form = one(doc, "//details//form")
    assert form.get("data-busy") is not None
    assert one(form, ".//input[@name='url']").get("type") == "url"
    assert one(form, ".//label[@for='n-url']") is not None and one(form, ".//label[@for='n-org']") is not None
    boxes = form.xpath(".//fieldset//input[@type='checkbox'][@name='event_types']")
    assert [b.get("value") for b in boxes][:2] == ["instance.started", "instance.completed"]
    labels = {b.get("value"): text(b.getparent()) for b in boxes}
    assert labels["task.created"].startswith("Появилась задача: кто может её выполнить")
    assert labels["deadline.overdue"] == "Срок прошёл, а задача не выполнена. deadline.overdue"
    options = form.xpath(".//select[@name='organisation']/option")
    assert (options[0].get("value"), text(options[0])) == ("", "все организации")
    assert "troitsk-go" in [o.get("value") for o in options]

    response = admin.form(
        "/admin/webhooks",
        {
            "url": RECEIVER,
            "event_types": ["task.created", "task.completed"],
            "organisation": "troitsk-go",
            "description": "СЭД Троицка",
        },
    )
    doc = page(response)
    assert "Location" not in response.headers
    assert text(one(doc, "//section[@role='status']/h2")) == "Подписка создана"
    secret_box = one(doc, "//input[@id='secret']")
    secret = secret_box.get("value")
    assert secret.startswith("whsec_") and secret_box.get("readonly") is not None
    assert one(doc, "//label[@for='secret']") is not None
    assert secret not in " ".join(response.headers.getlist("Set-Cookie"))
    [sub] = web_engine.subscriptions(SYSTEM_ACTOR)
    assert sub.secret == secret and sub.event_types == ("task.completed", "task.created")
    assert (sub.organisation, sub.description, sub.active) == ("troitsk-go", "СЭД Троицка", True)
    row = one(doc, "//table[.subscriptions]/tbody/tr")
    cells = [text(td) for td in row.xpath("./td")]
    assert cells == [
        f"{RECEIVER} СЭД Троицка",
        "task.completed, task.created",
        "Троицкий городской округ",
        "включена",
        "0",
        "—",
    ]
    assert row.xpath(".//a/@href") == [f"/admin/webhooks/{sub.id}"]

    for url in ("/admin/webhooks", f"/admin/webhooks/{sub.id}", "/admin"):
        body = admin.get(url).get_data(as_text=True)
        assert secret not in body, url
    assert not find(page(admin.get("/admin/webhooks")), "//input[@id='secret']")


def test_a_refused_subscription_says_why_in_russian_and_writes_nothing(login: Login, web_engine: Engine) -> None:
    admin = login("admin")

    def resolver(host: str, port: int) -> list[str]:
        if host.endswith(".invalid"):
            raise OSError("Name or service not known")
        return [PUBLIC_ADDRESS]

    web_engine.url_guard = lambda url: ssrf.check(url, [], resolver)  # as the application sets it up
    before = snapshot(web_engine)
    fields = {"url": "http://127.0.0.1:8080/hook", "description": "внутренний", "event_types": ["task.created"]}
    doc = page(admin.form("/admin/webhooks", fields), 400)
    assert flashes(doc) == [
        "Неверные данные: адрес отклонён: 127.0.0.1 — локальный адрес (loopback). Получателя во внутренней сети "
        "может разрешить администратор сервера в AGGLO_WEBHOOK_ALLOW_HOSTS"
    ]
    assert not find(doc, "//input[@id='secret']")
    form = one(doc, "//details[@open]//form")
    assert one(form, ".//input[@name='url']").get("value") == fields["url"]
    assert one(form, ".//input[@name='description']").get("value") == "внутренний"
    assert form.xpath(".//input[@name='event_types'][@checked]/@value") == ["task.created"]

    private = page(admin.form("/admin/webhooks", {"url": "http://10.1.2.3/"}), 400)
    assert "10.1.2.3 — адрес внутренней сети" in flashes(private)[0]
    for url, said in [
        ("ftp://example.org/x", "адрес должен быть полным URL, начинаться с http:// или https://"),
        ("https://user:pw@receiver.example/", "логин и пароль в адресе не допускаются"),
        ("https://nowhere.invalid/hook", "адрес отклонён: такого имени узла нет"),
    ]:
        refused = page(admin.form("/admin/webhooks", {"url": url}), 400)
        assert said in flashes(refused)[0], url
    unknown = page(admin.form("/admin/webhooks", {"url": RECEIVER, "event_types": ["task.exploded"]}), 400)
    assert flashes(unknown) == ["Неверные данные: неизвестные типы событий: task.exploded"]
    nowhere = page(admin.form("/admin/webhooks", {"url": RECEIVER, "organisation": "atlantis"}), 400)
    assert flashes(nowhere) == ["Неверные данные: организации «atlantis» нет"]
    assert snapshot(web_engine) == before


def test_a_subscription_is_edited_disabled_enabled_and_its_secret_rotated(
    login: Login, web_engine: Engine, clock: VirtualClock
) -> None:
    admin = login("admin")
    sub_id, first_secret = subscribe(admin)
    url = f"/admin/webhooks/{sub_id}"
    doc = page(admin.get(url))
    assert text(one(doc, "//h1")) == "Подписка на события"
    edit = one(doc, "//details//form[.//input[@name='action'][@value='save']]")
    assert one(edit, ".//input[@name='url']").get("value") == RECEIVER
    assert not edit.xpath(".//input[@name='event_types'][@checked]")

    done = admin.form(
        url,
        {
            "action": "save",
            "url": "https://receiver.example/v2",
            "event_types": ["deadline.overdue", "deadline.escalated"],
            "organisation": "kopeysk-go",
            "description": "Контроль сроков",
        },
    )
    assert location(done) == url
    doc = page(admin.get(url))
    assert flashes(doc) == ["Подписка сохранена."]
    facts = facts_of(doc)
    assert facts["События"] == "deadline.escalated, deadline.overdue"
    assert facts["Организация"] == "Копейский городской округ"
    assert facts["Описание"] == "Контроль сроков" and facts["Состояние"] == "включена"
    assert text(one(doc, "//p/code[.big]")) == "https://receiver.example/v2"
    sub = web_engine.subscription(SYSTEM_ACTOR, sub_id)
    assert (sub.url, sub.organisation) == ("https://receiver.example/v2", "kopeysk-go")
    # A refused change keeps what was typed, in an open form.
    bad = page(admin.form(url, {"action": "save", "url": "not a url", "description": "x"}), 400)
    assert flashes(bad)[0].startswith("Неверные данные: адрес должен быть полным URL")
    assert one(bad, "//details[@open]//input[@name='url']").get("value") == "not a url"

    follow(admin, admin.form(url, {"action": "disable"}))
    assert not web_engine.subscription(SYSTEM_ACTOR, sub_id).active
    # The worker disables a subscription after a run of failures: the pages say why, in Russian.
    with web_engine.store.transaction() as tx:
        tx.update_subscription(
            sub_id, disabled_at=clock.now(), disabled_reason="50 failed deliveries in a row", consecutive_failures=50
        )
    listing = page(admin.get("/admin/webhooks"))
    row = one(listing, "//table[.subscriptions]/tbody/tr")
    assert [text(td) for td in row.xpath("./td")][3:] == [
        "отключена",
        "50",
        f"50 неудачных доставок подряд ({local(clock.now())})",
    ]
    doc = page(admin.get(url))
    assert text(one(doc, "//dd[@id='state']")) == f"отключена {local(clock.now())}: 50 неудачных доставок подряд"
    enable = one(doc, "//form[.//button[@value='enable']]")
    assert enable.get("data-busy") is not None
    doc = follow(admin, admin.form(url, {"action": "enable"}))
    assert flashes(doc) == ["Подписка включена: счётчик неудач сброшен, недоставленные события уйдут."]
    sub = web_engine.subscription(SYSTEM_ACTOR, sub_id)
    assert sub.active and sub.consecutive_failures == 0 and sub.disabled_reason is None
    assert find(doc, "//form//button[@value='disable']")

    # Rotation: the new secret once, and until when the old one still signs.
    rotate = one(doc, "//form[.//input[@name='action'][@value='rotate']]")
    assert rotate.get("data-confirm") and rotate.get("data-busy") is not None
    assert one(rotate, ".//input[@name='overlap_hours']").get("value") == "24"
    response = admin.form(url, {"action": "rotate", "overlap_hours": "24"})
    doc = page(response)
    new_secret = one(doc, "//input[@id='secret']").get("value")
    assert new_secret.startswith("whsec_") and new_secret != first_secret
    until = local(clock.now() + timedelta(hours=24))
    assert text(one(doc, "//p[@id='rotation']")) == (
        f"Прежний секрет тоже подписывает события до {until}: за это время получатель должен перейти на новый."
    )
    sub = web_engine.subscription(SYSTEM_ACTOR, sub_id)
    assert sub.secrets(clock.now()) == [new_secret, first_secret]
    reloaded = page(admin.get(url))
    assert new_secret not in admin.get(url).get_data(as_text=True) and not find(reloaded, "//input[@id='secret']")
    facts = facts_of(reloaded)
    assert facts["Прежний секрет"] == f"подписывает события до {until}"

    at_once = page(admin.form(url, {"action": "rotate", "overlap_hours": "0"}))
    assert text(one(at_once, "//p[@id='rotation']")) == "Прежний секрет больше не действует."
    latest = one(at_once, "//input[@id='secret']").get("value")
    assert web_engine.subscription(SYSTEM_ACTOR, sub_id).secrets(clock.now()) == [latest]
    too_long = page(admin.form(url, {"action": "rotate", "overlap_hours": "1000"}), 400)
    assert flashes(too_long) == ["Неверные данные: перекрытие — от 0 до 336 часов (14 дней)"]
    assert not find(too_long, "//input[@id='secret']")
    assert page(admin.get("/admin/webhooks/nope"), 404) is not None


def test_the_delivery_log_shows_attempts_and_a_delivery_is_sent_again(
    login: Login, web_engine: Engine, clock: VirtualClock
) -> None:
    web_engine.deploy(MESSAGE_START, "doc-arrived.bpmn", SYSTEM_ACTOR)
    admin = login("admin")
    sub_id, secret = subscribe(admin, event_types=["instance.started"])
    url = f"/admin/webhooks/{sub_id}"
    assert text(one(page(admin.get(url)), "//p[.empty]")) == "Доставок пока не было."
    started = web_engine.receive_message(SYSTEM_ACTOR, name="doc.arrived", variables={"n": 1}, key="t:1")
    assert started.status == "started"

    requests: list[dict[str, str]] = []
    send_due(web_engine, clock, HttpResult(503, 12.4, "busy, come back later"), requests)
    [delivery] = web_engine.webhook_deliveries(SYSTEM_ACTOR, sub_id)
    assert delivery.status == DeliveryStatus.RETRY
    doc = page(admin.get(url))
    row = one(doc, "//tr[.delivery]")
    assert row.get("data-delivery") == delivery.id
    cells = [text(td) for td in row.xpath("./td")]
    assert cells[0] == f"instance.started {local(delivery.created_at)} · дело"
    assert row.xpath("./td[1]//a/@href") == [f"/instances/{started.instance_id}"]
    assert cells[1:6] == [
        "будет повтор",
        "1",
        local(delivery.next_attempt_at),
        "HTTP 503",
        "503 busy, come back later",
    ]
    attempts = one(doc, "//tr[.attempts]//details")
    assert text(one(attempts, "./summary")) == "Попытки: 1"
    assert [text(td) for td in one(attempts, ".//tr[.attempt]").xpath("./td")] == [
        local(clock.now()),
        "ошибка, будет повтор",
        "503",
        "12 мс",
        "busy, come back later",
        "—",
    ]
    again = one(row, ".//form")
    assert again.get("data-busy") is not None
    button = one(again, ".//button")
    assert (button.get("name"), button.get("value"), text(button)) == ("delivery", delivery.id, "Доставить повторно")
    assert button.get("aria-label") == f"Доставить повторно событие instance.started от {local(delivery.created_at)}"

    clock.advance(timedelta(seconds=1))
    done = admin.form(url, {"action": "redeliver", "delivery": delivery.id})
    assert location(done) == url
    doc = page(admin.get(url))
    assert flashes(doc) == [f"Событие {delivery.event_id} поставлено в очередь на повторную доставку."]
    assert text(one(doc, "//tr[.delivery]/td[2]")) == "в очереди"
    assert web_engine.webhook_deliveries(SYSTEM_ACTOR, sub_id)[0].status == DeliveryStatus.QUEUED

    send_due(web_engine, clock, HttpResult(200, 8.0, "ok"), requests)
    doc = page(admin.get(url + "?status=sent"))
    row = one(doc, "//tr[.delivery]")
    assert [text(td) for td in row.xpath("./td")][1:6] == [f"доставлено {local(clock.now())}", "2", "—", "—", "200 ok"]
    outcomes = [text(tr.xpath("./td[2]")[0]) for tr in find(doc, "//tr[.attempt]")]
    assert outcomes == ["доставлено", "ошибка, будет повтор"], "newest first"
    assert one(doc, "//select[@id='status']/option[@selected]").get("value") == "sent"
    assert not find(page(admin.get(url + "?status=failed")), "//tr[.delivery]")
    # Both tries carried the same webhook-id and a signature by the subscription's secret.
    assert len(requests) == 2 and requests[0]["webhook-id"] == requests[1]["webhook-id"] == delivery.event_id
    signing.verify([secret], requests[1], requests[1]["body"].encode(), clock.now())
    assert json.loads(requests[1]["body"])["instance"]["id"] == started.instance_id

    refused = page(admin.form(url, {"action": "redeliver", "delivery": "nope"}), 404)
    assert flashes(refused) == ["Не найдено: такой записи нет"]


# -- inbound sources and messages ------------------------------------------------------------------------------------


def test_sources_are_added_rotated_disabled_and_enabled(login: Login, web_engine: Engine, clock: VirtualClock) -> None:
    web_engine.deploy(MESSAGE_START, "doc-arrived.bpmn", SYSTEM_ACTOR)
    admin = login("admin")
    doc = page(admin.get("/admin/webhooks/sources"))
    form = one(doc, "//details[@open]//form")
    assert one(form, ".//input[@name='action']").get("value") == "add"
    assert one(form, ".//label[@for='s-name']") is not None and form.get("data-busy") is not None

    response = admin.form("/admin/webhooks/sources", {"action": "add", "name": "sed", "description": "СЭД Минобра"})
    doc = page(response)
    assert text(one(doc, "//section[@role='status']/h2")) == "Источник «sed» добавлен"
    secret = one(doc, "//input[@id='secret']").get("value")
    assert secret.startswith("whsec_")
    assert one(doc, "//input[@id='inbound-url']").get("value") == "http://localhost/webhooks/in/sed"
    assert not find(doc, "//p[@id='rotation']")
    row = one(doc, "//table[.sources]/tbody/tr")
    assert [text(td) for td in row.xpath("./td")][:5] == [
        "sed",
        "http://localhost/webhooks/in/sed",
        "СЭД Минобра",
        "включён",
        local(clock.now()),
    ]
    reloaded = admin.get("/admin/webhooks/sources").get_data(as_text=True)
    assert secret not in reloaded and 'id="secret"' not in reloaded

    def post_event(key: str, with_secret: str) -> int:
        body = json.dumps({"type": "doc.arrived", "data": {"number": key}}).encode()
        headers = signing.headers([with_secret], f"msg_{key}", clock.now(), body).as_dict()
        answer = admin.http.application.test_client().post(  # type: ignore[attr-defined]
            "/webhooks/in/sed", data=body, headers={**headers, "Content-Type": "application/json"}
        )
        return int(answer.status_code)

    assert post_event("1", secret) == 200

    taken = page(admin.form("/admin/webhooks/sources", {"action": "add", "name": "sed"}), 400)
    assert flashes(taken) == [
        "Неверные данные: источник «sed» уже есть: чтобы выдать ему новый секрет, нажмите «Сменить секрет»"
    ]
    assert not find(taken, "//input[@id='secret']")
    bad = page(admin.form("/admin/webhooks/sources", {"action": "add", "name": "Плохое имя"}), 400)
    assert flashes(bad) == ["Неверные данные: имя источника — от 1 до 64 строчных латинских букв, цифр, «_» или «-»"]
    assert one(bad, "//input[@id='s-name']").get("value") == "Плохое имя"

    rotate = one(row, ".//form[.//button[@value='rotate']]")
    assert rotate.get("data-confirm") and rotate.get("data-busy") is not None
    doc = page(admin.form("/admin/webhooks/sources", {"action": "rotate", "name": "sed", "overlap_hours": "24"}))
    assert text(one(doc, "//section[@role='status']/h2")) == "Новый секрет источника «sed»"
    newer = one(doc, "//input[@id='secret']").get("value")
    assert newer != secret
    until = local(clock.now() + timedelta(hours=24))
    assert text(one(doc, "//p[@id='rotation']")) == f"Прежний секрет принимается до {until}."
    assert post_event("2", newer) == 200 and post_event("3", secret) == 200, "both during the overlap"

    done = admin.form("/admin/webhooks/sources", {"action": "disable", "name": "sed"})
    doc = follow(admin, done)
    assert flashes(doc) == ["Источник sed отключён: его запросы отклоняются."]
    assert "отключён" in text(one(doc, "//table[.sources]/tbody/tr/td[4]"))
    assert post_event("4", newer) == 404
    doc = follow(admin, admin.form("/admin/webhooks/sources", {"action": "enable", "name": "sed"}))
    assert flashes(doc) == ["Источник sed включён: его события принимаются."]
    assert post_event("5", newer) == 200
    missing = page(admin.form("/admin/webhooks/sources", {"action": "rotate", "name": "nope"}), 404)
    assert flashes(missing) == ["Не найдено: такой записи нет"]


def test_received_messages_are_listed_with_their_instances(
    login: Login, web_engine: Engine, clock: VirtualClock
) -> None:
    web_engine.deploy(MESSAGE_START, "doc-arrived.bpmn", SYSTEM_ACTOR)
    admin = login("admin")
    assert text(one(page(admin.get("/admin/webhooks/messages")), "//p[.empty]")) == "Сообщений нет."
    started = web_engine.receive_message(
        SYSTEM_ACTOR, name="doc.arrived", variables={"n": 1}, key="sed:1", source="sed"
    )
    clock.advance(timedelta(minutes=5))
    waiting = web_engine.receive_message(
        SYSTEM_ACTOR,
        name="contract.registered",
        correlation={"business_key": "ПД-ТРО-2026"},
        key="sed:2",
        source="sed",
        ttl=timedelta(days=2),
    )
    assert (started.status, waiting.status) == ("started", "buffered")

    doc = page(admin.get("/admin/webhooks/messages"))
    rows = find(doc, "//table[.messages]/tbody/tr")
    assert [[text(td) for td in r.xpath("./td")] for r in rows] == [
        [
            local(clock.now()),
            f"ждёт дело хранится до {local(clock.now() + timedelta(days=2))}",
            "contract.registered",
            "sed",
            "business_key=ПД-ТРО-2026",
            "—",
        ],
        [
            local(clock.now() - timedelta(minutes=5)),
            f"передано в дело {local(clock.now() - timedelta(minutes=5))}",
            "doc.arrived",
            "sed",
            "—",
            "открыть дело",
        ],
    ]
    assert rows[1].xpath(".//a/@href") == [f"/instances/{started.instance_id}"]
    assert page(admin.get(f"/instances/{started.instance_id}")) is not None

    buffered = page(admin.get("/admin/webhooks/messages?status=buffered"))
    assert [text(r.xpath("./td[3]")[0]) for r in find(buffered, "//table[.messages]/tbody/tr")] == [
        "contract.registered"
    ]
    assert one(buffered, "//select[@id='status']/option[@selected]").get("value") == MessageStatus.BUFFERED.value
    anything = page(admin.get("/admin/webhooks/messages?status=whatever"))
    assert len(find(anything, "//table[.messages]/tbody/tr")) == 2, "an unknown filter shows everything"


def test_the_webhook_pages_in_english(login: Login, web_engine: Engine) -> None:
    sub, _ = web_engine.create_subscription(SYSTEM_ACTOR, RECEIVER)
    admin = login("admin")
    doc = page(admin.get("/admin/webhooks?lang=en"))
    assert text(one(doc, "//h1")) == "Webhooks"
    assert [text(a) for a in find(doc, "//nav[.tabs]/a")] == [
        "Event subscriptions",
        "Inbound sources",
        "Messages received",
    ]
    labels = {b.get("value"): text(b.getparent()) for b in find(doc, "//input[@name='event_types']")}
    assert labels["deadline.overdue"] == "A deadline has passed and the task is still open. deadline.overdue"
    assert text(one(page(admin.get(f"/admin/webhooks/{sub.id}")), "//h2[@id='log-h']")) == "Delivery log"
    assert text(one(page(admin.get("/admin/webhooks/sources")), "//h1")) == "Inbound sources"
    assert text(one(page(admin.get("/admin/webhooks/messages")), "//h1")) == "Messages received 0"


def test_every_webhook_page_is_accessible_and_every_form_protected(
    login: Login, web_engine: Engine, clock: VirtualClock
) -> None:
    """The checks of test_ui_pages' crawl, on every webhook page in each of its states."""
    web_engine.deploy(MESSAGE_START, "doc-arrived.bpmn", SYSTEM_ACTOR)
    admin = login("admin")
    sub_id, _ = subscribe(admin, event_types=["instance.started"], description="СЭД")
    gone, _ = subscribe(admin, url=RECEIVER + "/old")
    with web_engine.store.transaction() as tx:
        tx.update_subscription(gone, active=False, disabled_at=clock.now(), disabled_reason="410 Gone")
    web_engine.receive_message(SYSTEM_ACTOR, name="doc.arrived", key="t:1")
    web_engine.receive_message(SYSTEM_ACTOR, name="nobody.waits", correlation={"business_key": "x"}, key="t:2")
    send_due(web_engine, clock, HttpResult(None, 5000.0, "", "timed out"), [])
    web_engine.save_source(SYSTEM_ACTOR, "sed", "СЭД")
    web_engine.rotate_source_secret(SYSTEM_ACTOR, "sed", timedelta(hours=24))
    assert page(admin.get("/admin/webhooks")) is not None
    assert "получатель ответил 410 Gone" in text(one(page(admin.get("/admin/webhooks")), "//table"))

    sub = f"/admin/webhooks/{sub_id}"
    views = [
        ("/admin", admin.get("/admin"), 200),
        ("/admin/webhooks", admin.get("/admin/webhooks"), 200),
        (sub, admin.get(sub), 200),
        (sub, admin.get(sub + "?status=retry"), 200),
        (f"/admin/webhooks/{gone}", admin.get(f"/admin/webhooks/{gone}"), 200),
        ("/admin/webhooks/sources", admin.get("/admin/webhooks/sources"), 200),
        ("/admin/webhooks/messages", admin.get("/admin/webhooks/messages"), 200),
        ("/admin/webhooks/messages", admin.get("/admin/webhooks/messages?status=buffered"), 200),
        ("/admin/webhooks", admin.form("/admin/webhooks", {"url": RECEIVER + "/new"}), 200),
        ("/admin/webhooks", admin.form("/admin/webhooks", {"url": "nope"}), 400),
        (sub, admin.form(sub, {"action": "rotate", "overlap_hours": "24"}), 200),
        (sub, admin.form(sub, {"action": "save", "url": "nope"}), 400),
        ("/admin/webhooks/sources", admin.form("/admin/webhooks/sources", {"action": "add", "name": "reg"}), 200),
        ("/admin/webhooks/sources", admin.form("/admin/webhooks/sources", {"action": "add", "name": "Я"}), 400),
    ]
    forms: dict[str, dict[str, list[str]]] = {}
    token = admin.csrf()
    for url, response, status in views:
        doc = page(response, status)
        check_accessibility(f"admin {url}", url, doc, error_page=False)
        for form in post_forms(doc):
            assert form.get("data-busy") is not None, url
            [csrf] = form.xpath(".//input[@name='csrf_token']")
            assert csrf.get("type") == "hidden" and csrf.get("value") == token, url
            values: dict[str, list[str]] = {}
            for name, value in form.form_values():
                if name != "csrf_token":
                    values.setdefault(name, []).append(value)
            forms.setdefault(f"{form.get('action') or url}#{sorted(values.items())}", values)
    delivery = web_engine.webhook_deliveries(SYSTEM_ACTOR, sub_id)[0]
    assert delivery.status == DeliveryStatus.RETRY and delivery.last_error == "timed out"
    assert len(forms) >= 8
    before = snapshot(web_engine)
    for key, values in forms.items():
        action = key.split("#", 1)[0]
        for forged in ({}, {"csrf_token": "x" * 43}):
            response = admin.http.post(action, data={**values, **forged})
            assert response.status_code == 403, (action, values, response.status_code)
    # Each button of a form is a separate action: try them all without the token too.
    for action, button in [(sub, "disable"), (sub, "redeliver"), ("/admin/webhooks/sources", "disable")]:
        assert admin.http.post(action, data={"action": button, "name": "sed"}).status_code == 403
    assert snapshot(web_engine) == before, "a refused form wrote something"
