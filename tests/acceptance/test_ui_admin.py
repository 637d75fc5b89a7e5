"""Administration (deploy with the problems shown in the source, users, API tokens) and the profile's calendar link."""

from __future__ import annotations

import io

import pytest

from engine.engine import Engine
from tests.acceptance.conftest import DEMO_PASSWORD, Client
from tests.acceptance.test_ui import Login, find, flashes, follow, location, one, page, snapshot, text
from tests.bpmn import document, flows, sequential

ADMIN_PAGES = ["/admin", "/admin/deploy", "/admin/users", "/admin/tokens", "/admin/incidents"]

BROKEN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="http://agglo.test">\n'
    '  <bpmn:process id="broken" name="Сломанный процесс" isExecutable="true">\n'
    '    <bpmn:startEvent id="start"/>\n'
    '    <bpmn:scriptTask id="js" scriptFormat="javascript"><bpmn:script>1</bpmn:script></bpmn:scriptTask>\n'
    '    <bpmn:endEvent id="end"/>\n'
    '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="js"/>\n'
    '    <bpmn:sequenceFlow id="f2" sourceRef="js" targetRef="end"/>\n'
    "  </bpmn:process>\n"
    "</bpmn:definitions>\n"
).encode()


def upload(browser: Client, source: bytes, filename: str, **extra: object) -> object:
    return browser.form(
        "/admin/deploy",
        {"file": (io.BytesIO(source), filename), **extra},
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize("user", ["troitsk-go", "coordinator", "ministry"])
def test_only_administrators_open_the_administration(login: Login, user: str) -> None:
    browser = login(user)
    for url in ADMIN_PAGES:
        doc = page(browser.get(url), 403)
        assert text(one(doc, "//h1")) == "Недостаточно прав (403)"
        assert text(one(doc, "//p[.problem]")) == "Эти страницы — только для администраторов."
    assert page(upload(browser, sequential(1), "x.bpmn"), 403) is not None  # type: ignore[arg-type]
    assert browser.form("/admin/users", {"mode": "create", "login": "intruder", "name": "X"}).status_code == 403
    assert browser.form("/admin/tokens", {"name": "x", "organisation": "rcoko", "roles": "admin"}).status_code == 403
    assert not find(page(browser.get("/")), "//nav//a[@href='/admin']"), "no menu item either"


def test_deploying_a_good_process_then_a_broken_one(login: Login, web_engine: Engine) -> None:
    admin = login("admin")
    doc = page(admin.get("/admin/deploy"))
    form = one(doc, "//main//form")
    assert form.get("enctype") == "multipart/form-data" and form.get("data-busy") is not None
    assert one(form, ".//input[@id='file']").get("accept") == ".bpmn,.xml"

    good = sequential(2, pid="two_steps")
    doc = follow(admin, upload(admin, good, "two-steps.bpmn"))  # type: ignore[arg-type]
    assert flashes(doc) == ["Развёрнуто: 2 tasks in sequence (v1)."]
    assert "two_steps" in [text(c) for c in find(doc, "//table//td/code")]
    again = follow(admin, upload(admin, good, "two-steps.bpmn"))  # type: ignore[arg-type]
    assert flashes(again) == ["Этот файл уже развёрнут — ничего не изменилось."]

    before = snapshot(web_engine)
    response = upload(admin, BROKEN, "broken.bpmn")
    doc = page(response, 422)  # type: ignore[arg-type]
    assert "Процесс не принят: broken.bpmn" in text(one(doc, "//h2[@id='problems-h']"))
    problems = find(doc, "//ol[.problems]/li")
    script = next(li for li in problems if "javascript" in text(li))
    assert text(script).startswith("строка 5 js:")
    assert script.xpath("./a/@href") == ["#L5"]
    # The annotated source: every line numbered, the bad one marked with its problem.
    bad = one(doc, "//div[.source]//tr[@id='L5']")
    assert "bad" in bad.get("class").split()
    assert "<bpmn:scriptTask" in text(bad.xpath(".//pre")[0])
    assert "javascript" in text(find(bad, ".//p[.note]")[0])
    assert "bad" not in (one(doc, "//tr[@id='L4']").get("class") or "")
    assert len(find(doc, "//div[.source]//tr")) == BROKEN.count(b"\n")
    assert one(doc, "//div[.source]").get("tabindex") == "0"
    assert snapshot(web_engine) == before, "nothing deployed"

    for source, name, fragment in [
        (b"<html><body>not bpmn</body></html>", "page.bpmn", "BPMN"),
        (b"\xff\xfe garbage", "garbage.bpmn", ""),
    ]:
        doc = page(upload(admin, source, name), 422)  # type: ignore[arg-type]
        assert find(doc, "//ol[.problems]/li"), name
        assert fragment in text(one(doc, "//ol[.problems]"))
    nothing = page(admin.form("/admin/deploy", {}, content_type="multipart/form-data"), 400)
    assert flashes(nothing) == ["Неверные данные: Выберите файл BPMN."]


def test_deploying_a_process_with_its_form_schemas(login: Login, web_engine: Engine) -> None:
    body = (
        '<bpmn:startEvent id="s"/>'
        '<bpmn:userTask id="t" name="Заполнить" camunda:candidateGroups="coordinator" '
        'camunda:formKey="schema:form.schema.json"/><bpmn:endEvent id="e"/>' + flows("s", "t", "e")
    )
    source = document(body, "with_form", name="С формой")
    admin = login("admin")
    missing = page(upload(admin, source, "with-form.bpmn"), 422)  # type: ignore[arg-type]
    assert "form.schema.json" in text(one(missing, "//ol[.problems]"))
    schema = '{"type": "object", "properties": {"x": {"type": "string", "title": "Икс"}}}'.encode()
    done = upload(admin, source, "with-form.bpmn", resources=(io.BytesIO(schema), "form.schema.json"))
    assert flashes(follow(admin, done)) == ["Развёрнуто: С формой (v1)."]  # type: ignore[arg-type]
    assert [d.key for d in web_engine.definitions() if d.key == "with_form"] == ["with_form"]


def test_users_are_created_edited_and_deactivated(login: Login, web_engine: Engine, app: object) -> None:
    admin = login("admin")
    doc = page(admin.get("/admin/users"))
    create = one(doc, "//details//form[.//input[@name='mode'][@value='create']]")
    assert {i.get("name") for i in create.xpath(".//input | .//select")} >= {"login", "name", "organisation", "roles"}
    fields = {
        "mode": "create",
        "login": "ivanova",
        "name": "Иванова Мария",
        "organisation": "kopeysk-go",
        "roles": ["mouo"],
        "email": "ivanova@kopeysk.example",
        "password": "Kopeysk-2026!",
    }
    done = admin.form("/admin/users", fields)
    assert location(done) == "/admin/users"
    doc = page(admin.get("/admin/users"))
    assert "Пользователь ivanova сохранён." in flashes(doc)
    row = next(r for r in find(doc, "//tbody/tr") if "ivanova" in text(r))
    assert [text(td) for td in row.xpath("./td")][:5] == [
        "ivanova",
        "Иванова Мария",
        "Копейский городской округ",
        "МОУО",
        "активен",
    ]
    newcomer = Client(admin.http.application.test_client())  # type: ignore[attr-defined]
    assert location(newcomer.login("ivanova", "Kopeysk-2026!")) == "/"

    # A taken login, a bad one: refused in Russian, the form kept open with what was typed.
    taken = page(admin.form("/admin/users", {**fields, "login": "troitsk-go"}), 400)
    assert flashes(taken) == ["Неверные данные: Логин «troitsk-go» уже занят."]
    assert one(taken, "//details[.//input[@name='mode'][@value='create']]").get("open") is not None
    assert one(taken, "//input[@id='n-name']").get("value") == "Иванова Мария"
    invalid = page(admin.form("/admin/users", {**fields, "login": "Иванова"}), 400)
    assert flashes(invalid) == ["Неверные данные: логин — от 2 до 64 строчных латинских букв, цифр, «.», «_» или «-»"]
    no_role = page(admin.form("/admin/users", {**fields, "login": "petrov", "roles": []}), 400)
    assert flashes(no_role) == ["Неверные данные: нужна хотя бы одна роль"]

    # Edit: new name, an extra role; the row's form starts filled in.
    doc = page(admin.get("/admin/users?edit=ivanova"))
    edit = one(doc, "//tr[.editing]//form")
    assert one(edit, ".//input[@id='e-name']").get("value") == "Иванова Мария"
    assert edit.xpath(".//input[@name='roles'][@checked]/@value") == ["mouo"]
    assert edit.xpath(".//input[@name='active']/@checked")
    changed = admin.form(
        "/admin/users",
        {
            "mode": "edit",
            "login": "ivanova",
            "name": "Иванова Мария Ивановна",
            "organisation": "kopeysk-go",
            "roles": ["mouo", "expert"],
            "active": "on",
        },
    )
    assert location(changed) == "/admin/users"
    user = next(u for u in web_engine.users() if u.login == "ivanova")
    assert user.name == "Иванова Мария Ивановна" and set(user.roles) == {"mouo", "expert"} and user.active

    # Deactivate: the session ends and the login is refused; the administrator cannot lock themself out.
    admin.form("/admin/users", {"mode": "edit", "login": "ivanova", "roles": ["mouo"]})
    assert location(newcomer.get("/")).startswith("/login")
    assert Client(newcomer.http).login("ivanova", "Kopeysk-2026!").status_code == 401
    myself = page(admin.form("/admin/users", {"mode": "edit", "login": "admin", "roles": ["admin"]}), 400)
    assert flashes(myself) == ["Неверные данные: нельзя заблокировать самого себя"]
    assert admin.get("/admin").status_code == 200


def test_api_tokens_show_their_secret_once_and_can_be_revoked(login: Login, app: object) -> None:
    admin = login("admin")
    created = admin.form("/admin/tokens", {"name": "registry-sync", "organisation": "rcoko", "roles": ["coordinator"]})
    doc = page(created)
    assert text(one(doc, "//section[@role='status']/h2")) == "Токен «registry-sync» создан"
    secret = one(doc, "//input[@id='secret']").get("value")
    assert secret.startswith("agt_") and one(doc, "//input[@id='secret']").get("readonly") is not None
    assert one(doc, "//label[@for='secret']") is not None
    row = next(r for r in find(doc, "//tbody/tr") if "registry-sync" in text(r))
    prefix = text(row.xpath("./td[2]")[0])
    assert prefix.endswith("…") and secret.startswith(prefix[:-1]) and secret not in text(row)

    reloaded = page(admin.get("/admin/tokens"))
    assert secret not in reloaded.text_content() and not find(reloaded, "//input[@id='secret']")
    assert secret not in admin.get("/admin").get_data(as_text=True)

    api = admin.http.application.test_client()  # type: ignore[attr-defined]
    works = api.get("/api/v1/tasks", headers={"Authorization": f"Bearer {secret}"})
    assert works.status_code == 200

    duplicate = page(
        admin.form("/admin/tokens", {"name": "registry-sync", "organisation": "rcoko", "roles": ["coordinator"]})
    )
    assert flashes(duplicate) == ["Неверные данные: действующий токен «registry-sync» уже есть: сначала отзовите его"]
    assert not find(duplicate, "//input[@id='secret']")

    row = next(r for r in find(reloaded, "//tbody/tr") if "registry-sync" in text(r))
    revoke = row.xpath(".//form")[0]
    assert revoke.get("data-confirm")
    token_id = revoke.xpath(".//button[@name='revoke']/@value")[0]
    done = admin.form("/admin/tokens", {"revoke": token_id})
    doc = follow(admin, done)
    assert "Токен отозван." in flashes(doc)
    row = next(r for r in find(doc, "//tbody/tr") if "registry-sync" in text(r))
    assert "отозван" in text(row) and not row.xpath(".//form")
    assert api.get("/api/v1/tasks", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_the_calendar_link_is_shown_once_and_works(login: Login, web_engine: Engine) -> None:
    from tests.acceptance.test_ui_work import start_day

    start_day(web_engine, "2026-05-20", members=("troitsk-go",))
    troitsk = login("troitsk-go")
    doc = page(troitsk.get("/profile"))
    assert not find(doc, "//input[@id='feed-url']")
    assert text(one(doc, "//dl[.facts]/dd[2]")) == "Троицкий городской округ"
    doc = page(troitsk.form("/profile", {"action": "calendar"}))
    assert "Создана новая ссылка на календарь; прежняя больше не работает." in flashes(doc)
    url = one(doc, "//input[@id='feed-url']").get("value")
    assert url.startswith("http://localhost/calendar/agc_") and url.endswith(".ics")
    assert one(doc, "//label[@for='feed-url']") is not None
    assert not find(page(troitsk.get("/profile")), "//input[@id='feed-url']"), "shown once"

    anonymous = troitsk.http.application.test_client()
    feed = anonymous.get(url.removeprefix("http://localhost"))
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"
    body = feed.get_data(as_text=True)
    assert body.startswith("BEGIN:VCALENDAR") and "BEGIN:VEVENT" in body
    assert "Направить предложения в программу Дня" in body.replace("\r\n ", "")

    # A new link replaces the old one.
    doc = page(troitsk.form("/profile", {"action": "calendar"}))
    newer = one(doc, "//input[@id='feed-url']").get("value")
    assert newer != url
    assert anonymous.get(url.removeprefix("http://localhost")).status_code in (401, 404)
    assert anonymous.get(newer.removeprefix("http://localhost")).status_code == 200
    assert DEMO_PASSWORD not in body
