"""The inbox and the task page: forms from schemas, decisions, comments, documents, extensions."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from engine.clock import VirtualClock
from engine.engine import Engine, InstanceView
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
    snapshot,
    text,
)

DAY = {
    "day_place": "Челябинск, ГБУ ДПО РЦОКИО, ул. Комсомольская, 20",
    "day_form": "in_person",
    "day_order_number": "01/123",
    "day_order_date": "2026-03-01",
}
PROGRAMME = {
    "programme_draft": "Пленарное заседание; секции по МСОКО; круглый стол.",
    "programme_agreement": "Согласовано с МОУО-участниками письмом от 02.03.2026.",
}
APPLICATION = {
    "directions": ["msoko", "training"],
    "aspects": "Совершенствование муниципальной системы оценки качества образования",
    "contact.name": "Иванова Анна Петровна",
    "contact.email": "ivanova@troitsk.example",
    "contact.phone": "+7 (35163) 2-00-00",
    "term_until": "2027-12-31",
    "business_key": "ПД-2026-1",
}


def start_day(engine: Engine, day_date: str, members: tuple[str, ...] = (), key: str | None = None) -> InstanceView:
    variables = {**DAY, "day_date": day_date, "members": list(members)}
    return engine.start("day", engine.actor("ministry"), variables, key)


def to_programme_approval(engine: Engine, day_date: str, key: str) -> tuple[str, str]:
    """A Day whose programme the coordinator has drafted: (instance id, the Ministry's approval task id)."""
    view = start_day(engine, day_date, key=key)
    (draft,) = view.tasks
    assert draft.task.element_id == "Task_DraftProgramme"
    done = engine.complete(draft.task.id, engine.actor("coordinator"), PROGRAMME)
    (approval,) = done.tasks
    assert approval.task.element_id == "Task_ApproveProgramme"
    return view.instance.id, approval.task.id


def field_box(doc: HtmlElement, name: str) -> HtmlElement:
    """The container of the field named ``name``: its div.field or its fieldset."""
    controls = find(doc, f"//form//*[@name='{name}']")
    assert controls, f"no control named {name!r}"
    return controls[0].xpath("ancestor::*[self::fieldset or contains(concat(' ', @class, ' '), ' field ')][1]")[0]


def field_errors(doc: HtmlElement, name: str) -> list[str]:
    return [text(li) for li in field_box(doc, name).xpath(".//ul[contains(@class, 'field-errors')]/li")]


def submit(browser: Client, doc: HtmlElement, form_xpath: str, **changes: Any) -> Any:
    """Submit a form found on ``doc`` with its own fields (hidden ones included) plus ``changes``."""
    form = one(doc, form_xpath)
    data: dict[str, Any] = {}
    for name, value in form.form_values():
        data.setdefault(name, []).append(value)
    data.update(changes)
    action = form.get("action") or ""
    return browser.http.post(action, data=data)


# -- the inbox ------------------------------------------------------------------------------------------------------


def test_inbox_tabs_counts_overdue_first_explanations_and_badges(
    web_engine: Engine, clock: VirtualClock, login: Login
) -> None:
    late = start_day(web_engine, "2026-04-15", key="День-1").instance.id  # programme due 16.03
    later = start_day(web_engine, "2026-06-15", key="День-2").instance.id  # programme due 15.05
    troitsk = login("troitsk-go")
    assert location(troitsk.form("/processes/contract/start", APPLICATION)).startswith("/instances/")
    for _ in range(25):  # to 27.03.2026, the worker sweeping every day
        clock.advance(timedelta(days=1))
        web_engine.sweep_reminders("test")

    coordinator = login("coordinator")
    doc = page(coordinator.get("/"))
    tabs = {a.get("href"): text(a) for a in find(doc, "//nav[.tabs]/a")}
    assert tabs == {
        "/?tab=mine": "Мои задачи 0",
        "/?tab=org": "Задачи организации 3",
        "/?tab=overdue": "Просроченные 1",
    }
    assert one(doc, "//nav[.tabs]/a[@aria-current='page']").get("href") == "/?tab=org"
    assert "tab-alert" in one(doc, "//nav[.tabs]/a[@href='/?tab=overdue']").get("class")

    rows = find(doc, "//table[.tasks]/tbody/tr")
    keys = [text(row.xpath("./td[2]/span[@class='muted']")[0]) for row in rows]
    assert keys == ["День-1", "День-2", "ПД-2026-1"], "the overdue task first; tasks without a due date last"
    first, second, third = rows
    assert "row-late" in first.get("class")
    badges = [text(b) for b in first.xpath(".//span[contains(@class, 'tag')]")]
    assert badges == ["просрочено", "эскалация", "напоминание"]
    assert not second.xpath(".//span[contains(@class, 'tag')]")
    explanation = text(first.xpath(".//details[contains(@class, 'explain')]")[0])
    assert "как рассчитан" in explanation and "15.04.2026 − 30 дней = 16.03.2026" in explanation
    assert explanation.count("DAY 2.8") == 1, explanation
    assert text(first.xpath(".//span[contains(@class, 'due')]")[0]) == "16.03.2026"
    assert text(third.xpath("./td[4]")[0]) == "без срока"
    assert "DAY 2.8" in text(first.xpath(".//span[@class='clause']")[0])
    # The notifications the sweeps produced show as a badge in the menu.
    unread = one(doc, "//nav[@id='nav']//a[@href='/notifications']/span[.badge]")
    assert int(text(unread)) >= 5

    overdue = page(coordinator.get("/?tab=overdue"))
    (late_task,) = web_engine.instance(late, web_engine.actor("admin")).tasks
    assert [a.get("href") for a in find(overdue, "//table[.tasks]/tbody/tr/td[1]/a")] == [f"/tasks/{late_task.task.id}"]

    # Claiming moves a task into "my tasks".
    task_id = rows[1].xpath(".//td[1]/a/@href")[0].rsplit("/", 1)[1]
    assert location(coordinator.form(f"/tasks/{task_id}/claim")) == f"/tasks/{task_id}"
    mine = page(coordinator.get("/?tab=mine"))
    assert text(one(mine, "//nav[.tabs]/a[@href='/?tab=mine']")) == "Мои задачи 1"
    assert [a.get("href") for a in find(mine, "//table[.tasks]/tbody/tr/td[1]/a")] == [f"/tasks/{task_id}"]
    assert text(one(mine, "//table[.tasks]/tbody/tr/td[5]")) == "coordinator"

    # The Ministry has the approval tab (its default) and sees the escalated task among the overdue.
    ministry = login("ministry")
    doc = page(ministry.get("/"))
    assert one(doc, "//nav[.tabs]/a[@aria-current='page']").get("href") == "/?tab=approve"
    assert [a.get("href") for a in find(doc, "//nav[.tabs]/a")] == [
        "/?tab=mine",
        "/?tab=org",
        "/?tab=approve",
        "/?tab=overdue",
    ]
    assert text(one(doc, "//p[.empty]")) == "Здесь пусто: задач нет."
    assert later  # the second Day is not overdue: no reminders yet
    # A МОУО has no approval tab; asking for it shows its organisation's tasks.
    assert location(troitsk.get("/")).startswith("/login"), "25 idle days ended the session"
    doc = page(login("troitsk-go").get("/?tab=approve"))
    assert "/?tab=approve" not in [a.get("href") for a in find(doc, "//nav[.tabs]/a")]
    assert one(doc, "//nav[.tabs]/a[@aria-current='page']").get("href") == "/?tab=org"


# -- a contract through the UI --------------------------------------------------------------------------------------


def test_contract_application_with_errors_then_review_by_the_coordinator(web_engine: Engine, login: Login) -> None:
    troitsk = login("troitsk-go")
    processes = page(troitsk.get("/processes"))
    assert "/processes/contract/start" in processes.xpath("//a/@href")
    doc = page(troitsk.get("/processes/contract/start"))
    assert one(doc, "//h1").text_content().strip() == "Проектный договор МОУО с РЦОКИО"
    options = find(doc, "//fieldset//input[@type='checkbox'][@name='directions']")
    assert [o.get("value") for o in options] == [
        "msoko",
        "model_documents",
        "methodical_products",
        "websites",
        "training",
    ]
    assert one(doc, "//fieldset[.group]/legend").text_content().startswith("Контактное лицо")
    assert one(doc, "//input[@name='contact.email']").get("type") == "email"
    assert one(doc, "//input[@name='term_until']").get("type") == "date"
    assert one(doc, "//input[@name='contact.phone']").get("type") == "text", "a patterned string is one line"
    before = snapshot(web_engine)

    bad = troitsk.form(
        "/processes/contract/start",
        {
            "directions": ["msoko", "no-such-direction"],
            "aspects": "коротко",
            "contact.email": "not-an-e-mail",
            "term_until": "2027-13-45",
        },
    )
    doc = page(bad, 422)
    assert "Форма заполнена с ошибками — они отмечены у полей." in flashes(doc)
    expected = {
        "directions": "Выберите один из предложенных вариантов.",
        "aspects": "Не короче 10 символов.",
        "contact.name": "Заполните это поле.",
        "contact.email": "Укажите адрес электронной почты.",
        "term_until": "Укажите дату.",
    }
    for name, message in expected.items():
        assert field_errors(doc, name) == [message], name
        controls = find(doc, f"//form//*[@name='{name}']")
        assert all(c.get("aria-invalid") == "true" for c in controls), name
        error_id = field_box(doc, name).xpath(".//ul[contains(@class, 'field-errors')]/@id")[0]
        assert error_id in controls[0].get("aria-describedby", "").split(), name
    assert not find(doc, "//form//ul[@role='alert']") and not find(doc, "//section/ul[.alert]"), "no stray errors"
    assert field_errors(doc, "contact.position") == [] and field_errors(doc, "note") == []
    assert one(doc, "//textarea[@name='aspects']").text_content() == "коротко", "what was typed is kept"
    assert [o.get("value") for o in find(doc, "//input[@name='directions'][@checked]")] == ["msoko"]
    assert snapshot(web_engine) == before, "nothing was started"

    # A date typed the Russian way is understood too.
    good = troitsk.form("/processes/contract/start", {**APPLICATION, "term_until": "31.12.2027"})
    instance_url = location(good)
    instance_id = instance_url.rsplit("/", 1)[1]
    doc = page(troitsk.get(instance_url))
    assert "Процесс «Проектный договор МОУО с РЦОКИО» запущен." in flashes(doc)
    assert web_engine.instance(instance_id, web_engine.actor("admin")).variables["term_until"] == "2027-12-31"
    assert web_engine.instance(instance_id, web_engine.actor("admin")).variables["contact"] == {
        "name": "Иванова Анна Петровна",
        "email": "ivanova@troitsk.example",
        "phone": "+7 (35163) 2-00-00",
    }

    coordinator = login("coordinator")
    inbox = page(coordinator.get("/"))
    link = one(inbox, "//table[.tasks]//a[text()='Рассмотреть заявку МОУО']").get("href")
    task_id = link.rsplit("/", 1)[1]
    doc = page(coordinator.get(link))
    assert "REG 5.6" in text(one(doc, "//section[.doc]//span[@class='clause']"))
    assert "рассматривает заявку МОУО" in text(one(doc, "//section[.doc]//p[.documentation]"))
    # The decision is the form's buttons, not a field.
    buttons = find(doc, "//form[@id='task-form']//button[@name='review_decision']")
    assert [(b.get("value"), text(b)) for b in buttons] == [
        ("accept", "Принять заявку"),
        ("return", "Вернуть на доработку"),
    ]
    assert not find(doc, "//form[@id='task-form']//input[@name='review_decision']")

    # Claim, then return without the required comment: the error is at the comment field.
    doc = follow(coordinator, coordinator.form(f"/tasks/{task_id}/claim"))
    assert "Задача закреплена за вами." in flashes(doc)
    assert one(doc, "//form[contains(@action, '/unclaim')]//button").text_content() == "Вернуть в общий список"
    returned = page(coordinator.form(f"/tasks/{task_id}/complete", {"review_decision": "return"}), 422)
    assert field_errors(returned, "review_comment") == ["Заполните это поле."]
    assert one(returned, "//textarea[@name='review_comment']").get("aria-invalid") == "true"

    done = coordinator.form(f"/tasks/{task_id}/complete", {"review_decision": "accept"})
    target = location(done)
    doc = page(coordinator.get(target))
    assert "Задача «Рассмотреть заявку МОУО» выполнена." in flashes(doc)
    assert target.startswith("/tasks/") and "Подготовить проект договора" in text(one(doc, "//h1"))
    history = text(one(page(coordinator.get(instance_url)), "//ol[.timeline]"))
    assert "Задача выполнена: Рассмотреть заявку МОУО" in history

    # Another МОУО sees neither the task nor the case.
    kopeysk = login("kopeysk-go")
    assert kopeysk.get(f"/tasks/{task_id}").status_code == 404
    assert kopeysk.get(instance_url).status_code == 404
    assert kopeysk.form(f"/tasks/{task_id}/comments", {"text": "чужое"}).status_code == 302
    assert not web_engine.comments(task_id, web_engine.actor("admin"))


# -- the Ministry decides -----------------------------------------------------------------------------------------


def test_ministry_approves_one_programme_and_returns_another_with_a_comment(web_engine: Engine, login: Login) -> None:
    approved_id, approve_task = to_programme_approval(web_engine, "2026-05-20", "День-А")
    returned_id, return_task = to_programme_approval(web_engine, "2026-06-10", "День-Б")
    ministry = login("ministry")
    inbox = page(ministry.get("/"))
    assert text(one(inbox, "//nav[.tabs]/a[@href='/?tab=approve']")) == "На утверждение 2"
    links = [a.get("href") for a in find(inbox, "//table[.tasks]/tbody/tr/td[1]/a")]
    assert sorted(links) == sorted([f"/tasks/{approve_task}", f"/tasks/{return_task}"])

    doc = page(ministry.get(f"/tasks/{approve_task}"))
    assert "DAY 1.6" in text(one(doc, "//section[.doc]"))
    buttons = find(doc, "//form[@id='task-form']//button[@name='programme_decision']")
    assert [(b.get("value"), text(b)) for b in buttons] == [
        ("approve", "Утвердить программу приказом"),
        ("return", "Вернуть координатору на доработку"),
    ]
    # Approval needs the order's number and date: both are marked.
    missing = page(ministry.form(f"/tasks/{approve_task}/complete", {"programme_decision": "approve"}), 422)
    assert field_errors(missing, "programme_order_number") == ["Заполните это поле."]
    assert field_errors(missing, "programme_order_date") == ["Заполните это поле."]
    done = ministry.form(
        f"/tasks/{approve_task}/complete",
        {"programme_decision": "approve", "programme_order_number": "01/456", "programme_order_date": "2026-03-02"},
    )
    doc = follow(ministry, done)
    assert "Задача «Утвердить программу Дня приказом» выполнена." in flashes(doc)
    assert "Разместить информацию на сайте Министерства" in text(one(doc, "//h1")), "on to the Ministry's next task"
    variables = web_engine.instance(approved_id, web_engine.actor("admin")).variables
    assert variables["programme_decision"] == "approve" and variables["programme_order_number"] == "01/456"

    # Returning needs a comment.
    doc = page(ministry.form(f"/tasks/{return_task}/complete", {"programme_decision": "return"}), 422)
    assert field_errors(doc, "programme_comment") == ["Заполните это поле."]
    back = ministry.form(
        f"/tasks/{return_task}/complete",
        {
            "programme_decision": "return",
            "programme_comment": "Добавьте секцию по оценке качества дошкольного образования.",
        },
    )
    assert location(back) == "/", "the next task is the coordinator's: back to the inbox"
    view = web_engine.instance(returned_id, web_engine.actor("admin"))
    assert [t.task.element_id for t in view.tasks] == ["Task_DraftProgramme"]
    assert view.variables["programme_comment"].startswith("Добавьте секцию")
    history = text(one(page(ministry.get(f"/instances/{returned_id}")), "//ol[.timeline]"))
    assert "Задача выполнена: Утвердить программу Дня приказом" in history
    left = page(ministry.get("/"))
    assert text(one(left, "//nav[.tabs]/a[@href='/?tab=approve']")) == "На утверждение 1"
    (remaining,) = find(left, "//table[.tasks]/tbody/tr/td[1]/a")
    assert text(remaining).startswith("Разместить информацию на сайте Министерства")
    # A МОУО cannot decide for the Ministry.
    assert login("troitsk-go").get(f"/tasks/{approve_task}").status_code in (403, 404)


# -- the task page: comments, documents, extensions -------------------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"


def test_comments_and_documents_on_a_task(web_engine: Engine, clock: VirtualClock, login: Login) -> None:
    view = start_day(web_engine, "2026-05-20", members=("troitsk-go",), key="День-К")
    (proposal,) = view.tasks
    task_id = proposal.task.id
    troitsk = login("troitsk-go")
    doc = page(troitsk.get(f"/tasks/{task_id}"))
    assert text(one(doc, "//h2[@id='comments-h']")) == "Комментарии 0"
    assert "Комментариев пока нет." in text(one(doc, "//section[@id='comments']"))

    response = troitsk.form(f"/tasks/{task_id}/comments", {"text": "Предложения направим до конца недели."})
    assert location(response) == f"/tasks/{task_id}#comments"
    clock.advance(timedelta(minutes=1))
    troitsk.form(f"/tasks/{task_id}/comments", {"text": "<script>alert(1)</script>"})
    doc = page(troitsk.get(f"/tasks/{task_id}"))
    assert "Комментарий добавлен." in flashes(doc)
    items = find(doc, "//section[@id='comments']//ol[.comments]/li")
    assert [text(li.xpath(".//p[@class='text']")[0]) for li in items] == [
        "Предложения направим до конца недели.",
        "<script>alert(1)</script>",
    ]
    assert not find(doc, "//section[@id='comments']//script"), "comments are escaped"
    assert "troitsk-go" in text(items[0].xpath(".//p[@class='meta']")[0])
    empty = follow(troitsk, troitsk.form(f"/tasks/{task_id}/comments", {"text": "   "}))
    assert flashes(empty) == ["Неверные данные: комментарий пуст"]
    assert len(web_engine.comments(task_id, web_engine.actor("admin"))) == 2

    # Documents: a PDF is accepted, listed and downloadable; a program is refused in Russian.
    upload = troitsk.form(
        f"/tasks/{task_id}/attachments",
        {"file": (io.BytesIO(PDF), "Предложения.pdf", "application/pdf")},
        content_type="multipart/form-data",
    )
    assert location(upload) == f"/tasks/{task_id}#documents"
    doc = page(troitsk.get(f"/tasks/{task_id}"))
    assert "Документ «Предложения.pdf» прикреплён." in flashes(doc)
    (link,) = find(doc, "//section[@id='documents']//ul[.files]//a")
    assert text(link) == "Предложения.pdf"
    download = troitsk.get(link.get("href"))
    assert download.status_code == 200 and download.data == PDF
    assert download.mimetype == "application/pdf"
    assert login("kopeysk-go").get(link.get("href")).status_code == 404

    for name, content, mimetype, expected in [
        (
            "virus.exe",
            b"MZ\x90\x00" + b"\x00" * 60,
            "application/octet-stream",
            "Такой тип файла не принимается: файлы типа «exe» не принимаются; допустимы: csv, doc, docx",
        ),
        (
            "fake.pdf",
            b"<html><script>alert(1)</script></html>",
            "application/pdf",
            "Такой тип файла не принимается: содержимое файла «fake.pdf» не соответствует расширению .pdf",
        ),
        (
            "big.pdf",
            b"%PDF-1.4\n" + b"0" * (1024 * 1024),
            "application/pdf",
            "Файл слишком большой: больше допустимых 1 МБ",
        ),
    ]:
        refused = troitsk.form(
            f"/tasks/{task_id}/attachments",
            {"file": (io.BytesIO(content), name, mimetype)},
            content_type="multipart/form-data",
        )
        (message,) = flashes(follow(troitsk, refused))
        assert message.startswith(expected), message
    nothing = follow(troitsk, troitsk.form(f"/tasks/{task_id}/attachments", {}))
    assert "Выберите файл." in " ".join(flashes(nothing))
    assert [a.filename for a in web_engine.attachments(task_id, web_engine.actor("admin"))] == ["Предложения.pdf"]

    # The instance page lists the documents and the comments of all its tasks.
    case = page(login("coordinator").get(f"/instances/{view.instance.id}"))
    docs = one(case, "//section[@aria-labelledby='docs-h']")
    assert "Предложения.pdf" in text(docs) and "Предложения направим до конца недели." in text(docs)


def test_extension_request_and_decision_through_the_forms(web_engine: Engine, login: Login) -> None:
    view = start_day(web_engine, "2026-05-20", members=("troitsk-go",), key="День-П")
    task_id = view.tasks[0].task.id
    proposal = web_engine.task(task_id, web_engine.actor("admin"))
    assert proposal.deadline is not None
    current = proposal.deadline.final_date
    troitsk = login("troitsk-go")
    doc = page(troitsk.get(f"/tasks/{task_id}"))
    deadline = one(doc, "//section[@id='deadline']")
    assert current.strftime("%d.%m.%Y") in text(deadline)
    assert "DAY 3.1" in text(deadline)
    form = one(deadline, ".//details[.extension]//form")
    assert one(form, ".//input[@name='proposed_date']").get("min") == current.isoformat()

    # Mistakes: no date, a reason too short.
    doc = follow(troitsk, troitsk.form(f"/tasks/{task_id}/extension", {"reason": "нужно больше времени"}))
    assert "Укажите предлагаемую дату." in " ".join(flashes(doc))
    wanted = current + timedelta(days=10)
    doc = follow(
        troitsk, troitsk.form(f"/tasks/{task_id}/extension", {"proposed_date": wanted.isoformat(), "reason": ""})
    )
    assert flashes(doc) == ["Неверные данные: укажите причину продления"]
    doc = follow(
        troitsk, troitsk.form(f"/tasks/{task_id}/extension", {"proposed_date": current.isoformat(), "reason": "так"})
    )
    assert flashes(doc) == [f"Неверные данные: предлагаемая дата должна быть позже текущего срока ({current:%d.%m.%Y})"]

    response = troitsk.form(
        f"/tasks/{task_id}/extension",
        {"proposed_date": wanted.isoformat(), "reason": "Ждём решения муниципальной коллегии"},
    )
    assert location(response) == f"/tasks/{task_id}#deadline"
    doc = page(troitsk.get(f"/tasks/{task_id}"))
    assert "Запрос на продление срока отправлен." in flashes(doc)
    pending = one(doc, "//div[.ext-pending]")
    assert f"Запрос на продление до {wanted:%d.%m.%Y}: на рассмотрении" in text(pending)
    assert not find(doc, "//details[.extension]"), "one request at a time"
    assert not pending.xpath(".//form"), "the requester does not decide"

    # The coordinator decides from the inbox (a МОУО's task page is not theirs to open).
    coordinator = login("coordinator")
    assert coordinator.get(f"/tasks/{task_id}").status_code == 404
    inbox = page(coordinator.get("/"))
    waiting = one(inbox, "//section[@aria-labelledby='decide-h']")
    (item,) = find(waiting, ".//li[.extension-request]")
    assert "Направить предложения в программу Дня" in text(item)
    assert "Троицкий" in text(item)
    assert f"Срок: {current:%d.%m.%Y}." in text(item) and f"{wanted:%d.%m.%Y}" in text(item)
    assert "Ждём решения муниципальной коллегии" in text(item)
    assert one(item, ".//a[contains(@href, '/instances/')]").get("href") == f"/instances/{view.instance.id}#deadlines"
    assert page(coordinator.get(f"/instances/{view.instance.id}")) is not None
    form_xpath = "//li[.extension-request]//form"
    assert one(inbox, form_xpath).xpath(".//button[@name='decision']/@value") == ["approve", "refuse"]
    # A refusal needs a comment.
    refused = submit(coordinator, inbox, form_xpath, decision="refuse")
    assert location(refused) == "/?tab=org"
    assert flashes(page(coordinator.get("/"))) == ["Неверные данные: при отказе нужен комментарий"]
    approved = submit(coordinator, inbox, form_xpath, decision="approve", comment="Согласовано")
    assert location(approved) == "/?tab=org"
    doc = page(coordinator.get("/"))
    assert "Решение по продлению срока принято." in flashes(doc)
    assert not find(doc, "//section[@aria-labelledby='decide-h']")

    doc = page(troitsk.get(f"/tasks/{task_id}"))
    deadline = one(doc, "//section[@id='deadline']")
    assert text(one(deadline, ".//span[.due]")) != current.strftime("%d.%m.%Y")
    assert f"Исходный срок: {current:%d.%m.%Y}" in text(deadline)
    assert "продлено" in [text(t) for t in find(doc, "//h1//span[.tag]")]
    assert f"Запрос на продление до {wanted:%d.%m.%Y}: одобрено" in text(one(doc, "//div[.ext-approved]"))
    assert "Согласовано" in text(one(doc, "//div[.ext-approved]"))
