"""A case's page (the diagram, its history, deadlines and documents) and incidents: retry and cancel."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from lxml import etree

from engine.clock import VirtualClock
from engine.engine import Engine
from engine.records import InstanceStatus
from engine.services import ServiceContext
from tests.acceptance.test_ui import Login, find, flashes, follow, location, one, page, text
from tests.acceptance.test_ui_work import APPLICATION, start_day
from tests.bpmn import document, flows, user_task

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"

TIMER = (
    '<bpmn:intermediateCatchEvent id="wait" name="Пауза"><bpmn:timerEventDefinition><bpmn:timeDuration>PT5M'
    "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
)
SCRIPTED = document(
    '<bpmn:startEvent id="start"/>' + TIMER + '<bpmn:scriptTask id="calc" name="Рассчитать долю" scriptFormat="python">'
    "<bpmn:script>share = 100 / divisor</bpmn:script></bpmn:scriptTask>"
    + user_task("use", "Использовать долю", 'camunda:candidateGroups="coordinator"')
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "wait", "calc", "use", "end"),
    "scripted",
    name="Расчёт доли",
    attrs='camunda:candidateStarterGroups="coordinator"',
)


SYNCED = document(
    '<bpmn:startEvent id="start"/>'
    + TIMER
    + '<bpmn:serviceTask id="sync" name="Выгрузить в реестр" camunda:type="external" camunda:topic="registry"/>'
    + user_task("use", "Проверить выгрузку", 'camunda:candidateGroups="coordinator"')
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "wait", "sync", "use", "end"),
    "synced",
    name="Выгрузка в реестр",
    attrs='camunda:candidateStarterGroups="coordinator"',
)


def diagram_data(doc: etree._Element, name: str) -> list[str]:
    value: list[str] = json.loads(one(doc, "//div[@id='diagram']").get(name))
    return value


def test_the_instance_page_shows_the_diagram_history_deadlines_and_moves_dates(
    web_engine: Engine, clock: VirtualClock, login: Login
) -> None:
    view = start_day(web_engine, "2026-04-15", key="День-Д")
    instance_id = view.instance.id
    coordinator = login("coordinator")
    doc = page(coordinator.get(f"/instances/{instance_id}"))
    assert "День образовательной агломерации · День-Д" in text(one(doc, "//h1"))
    assert text(one(doc, "//h1/span[.status]")) == "в работе"

    # The diagram: bpmn-js draws the definition's XML with the elements marked.
    box = one(doc, "//div[@id='diagram']")
    assert box.get("data-xml") == f"/api/v1/definitions/{view.instance.definition_id}/xml"
    assert diagram_data(doc, "data-active") == ["Task_DraftProgramme"]
    assert "StartEvent_Day" in diagram_data(doc, "data-completed")
    assert diagram_data(doc, "data-overdue") == []
    assert box.get("role") == "img" and box.get("aria-label")
    assert text(one(doc, "//strong[.active-step]")) == "Разработать проект программы и направить организатору"
    scripts = doc.xpath("//script/@src")
    assert "/static/diagram.js" in scripts
    assert any(s.endswith("bpmn-navigated-viewer.production.min.js") for s in scripts)
    assert coordinator.get("/static/diagram.js").status_code == 200
    xml = coordinator.get(box.get("data-xml"))
    assert xml.status_code == 200
    tree = etree.fromstring(xml.data)
    assert tree.xpath("//b:userTask[@id='Task_DraftProgramme']", namespaces={"b": BPMN_NS})

    # Deadlines: the date, how it was computed, the clause.
    (row,) = find(doc, "//section[@id='deadlines']//tbody/tr")
    cells = [text(td) for td in row.xpath("./td")]
    assert cells[0] == "Разработать проект программы и направить организатору"
    assert cells[1] == "16.03.2026"
    assert "15.04.2026 − 30 дней = 16.03.2026" in cells[2] and "DAY 2.8" in cells[2]
    assert cells[3] == "открыта"

    # The history, newest first, with machine-readable times.
    events = find(doc, "//ol[.timeline]/li")
    assert "Дело начато" in text(events[-1]) and "ministry" in text(events[-1])
    assert "Новая задача: Разработать проект программы" in text(events[0])
    assert all(li.xpath("./time/@datetime") for li in events)

    # Later: the task is overdue, so is its element on the diagram.
    clock.advance(timedelta(days=20))
    coordinator = login("coordinator")
    doc = page(coordinator.get(f"/instances/{instance_id}"))
    assert diagram_data(doc, "data-overdue") == ["Task_DraftProgramme"]
    assert "row-late" in one(doc, "//section[@id='deadlines']//tbody/tr").get("class")

    # The Ministry moves the Day: the deadline that hangs on its date moves too.
    ministry = login("ministry")
    doc = page(ministry.get(f"/instances/{instance_id}"))
    form = one(doc, "//details[.move-dates]//form")
    assert one(form, ".//input[@name='var:day_date']").get("value") == "2026-04-15"
    assert one(form, ".//label[@for='var-day_date']") is not None
    moved = ministry.form(f"/instances/{instance_id}/dates", {"var:day_date": "2026-05-20"})
    assert location(moved) == f"/instances/{instance_id}#deadlines"
    doc = page(ministry.get(f"/instances/{instance_id}"))
    assert "Даты изменены; зависящие от них сроки пересчитаны." in flashes(doc)
    cells = [text(td) for td in one(doc, "//section[@id='deadlines']//tbody/tr").xpath("./td")]
    assert cells[1].startswith("20.04.2026") and "было 16.03.2026" in cells[1]
    assert "Изменены данные дела" in text(one(doc, "//ol[.timeline]"))
    same = follow(ministry, ministry.form(f"/instances/{instance_id}/dates", {"var:day_date": "2026-05-20"}))
    assert "Даты не изменились." in flashes(same)
    bad = follow(ministry, ministry.form(f"/instances/{instance_id}/dates", {"var:day_date": "20.05"}))
    assert "Неверная дата: 20.05" in flashes(bad)
    # A МОУО cannot move the Ministry's dates.
    troitsk = login("troitsk-go")
    assert troitsk.get(f"/instances/{instance_id}").status_code == 404
    refused = troitsk.form(f"/instances/{instance_id}/dates", {"var:day_date": "2026-06-01"})
    assert location(refused) == f"/instances/{instance_id}#deadlines"
    assert web_engine.instance(instance_id, web_engine.actor("admin")).variables["day_date"] == "2026-05-20"


def test_the_starter_cancels_a_case_and_other_municipalities_do_not_see_it(web_engine: Engine, login: Login) -> None:
    troitsk = login("troitsk-go")
    instance_url = location(troitsk.form("/processes/contract/start", APPLICATION))
    doc = page(troitsk.get(instance_url))
    assert diagram_data(doc, "data-active") == ["Task_ReviewApplication"]
    assert text(one(doc, "//dl[.facts]/dd[2]")) == "Троицкий городской округ"
    listing = page(troitsk.get("/instances"))
    assert instance_url in listing.xpath("//table//a/@href")
    assert instance_url not in page(login("kopeysk-go").get("/instances")).xpath("//table//a/@href")
    assert login("kopeysk-go").get(instance_url).status_code == 404

    cancel = one(doc, "//form[contains(@action, '/cancel')]")
    assert cancel.get("data-confirm"), "an irreversible action asks first"
    response = troitsk.form(instance_url + "/cancel", {"reason": "заявка подана ошибочно"})
    assert location(response) == instance_url
    doc = page(troitsk.get(instance_url))
    assert "Дело отменено." in flashes(doc)
    assert text(one(doc, "//h1/span[.status]")) == "отменено"
    assert not find(doc, "//form[contains(@action, '/cancel')]")
    assert diagram_data(doc, "data-active") == []
    assert "Дело отменено" in text(one(doc, "//ol[.timeline]"))


def test_incidents_are_retried_and_cancelled_from_the_admin_page(
    web_engine: Engine, clock: VirtualClock, login: Login
) -> None:
    admin_actor = web_engine.actor("admin")
    registry = {"up": False}

    def export(context: ServiceContext) -> dict[str, Any]:
        if not registry["up"]:
            raise ConnectionError("registry unavailable")
        return {"exported": 42}

    web_engine.services.register("external:registry", export)
    web_engine.deploy(SYNCED, "synced.bpmn", admin_actor)
    web_engine.deploy(SCRIPTED, "scripted.bpmn", admin_actor)
    coordinator = web_engine.actor("coordinator")
    first = web_engine.start("synced", coordinator, {}, "Выгрузка-1").instance.id
    second = web_engine.start("scripted", coordinator, {"divisor": 0}, "Доля-2").instance.id
    clock.advance(timedelta(minutes=6))
    for iid in (first, second):
        failed = web_engine.fire_timers(iid, background=True)
        assert failed.instance.status == InstanceStatus.INCIDENT

    admin = login("admin")
    overview = page(admin.get("/admin"))
    incidents_card = one(overview, "//li[.card][.//a[@href='/admin/incidents']]")
    assert "attention" in incidents_card.get("class") and text(find(incidents_card, ".//span[.count]")[0]) == "2"
    doc = page(admin.get("/admin/incidents"))
    rows = find(doc, "//tbody/tr")
    assert len(rows) == 2
    cells = {text(r.xpath("./td[1]/a")[0]): [text(td) for td in r.xpath("./td[2] | ./td[3]")] for r in rows}
    assert cells == {
        "Выгрузка в реестр · Выгрузка-1": ["Выгрузить в реестр", "ConnectionError: registry unavailable"],
        "Расчёт доли · Доля-2": ["Рассчитать долю", "ZeroDivisionError: division by zero (line 1)"],
    }

    # The case page says what failed, in the diagram and the history too.
    case = page(admin.get(f"/instances/{first}"))
    assert text(one(case, "//h1/span[.status]")) == "сбой"
    assert text(one(case, "//p[@role='alert']")) == (
        "Сбой автоматического шага «Выгрузить в реестр»: ConnectionError: registry unavailable"
    )
    assert "Сбой автоматического шага: Выгрузить в реестр" in text(one(case, "//ol[.timeline]"))

    # Retry while the cause is still there: the incident stays, and the page says so.
    row = next(r for r in rows if "Выгрузка-1" in text(r))
    retry = row.xpath(".//form[contains(@action, '/retry')]")[0]
    data = dict(retry.form_values())
    assert data["next"] == "/admin/incidents" and data["csrf_token"]
    again = admin.http.post(retry.get("action"), data=data)
    assert location(again) == "/admin/incidents"
    doc = page(admin.get("/admin/incidents"))
    (message,) = flashes(doc)
    assert message == "Шаг «Выгрузить в реестр» снова завершился ошибкой: ConnectionError: registry unavailable"
    assert len(find(doc, "//tbody/tr")) == 2

    # The cause removed, a retry runs on to the next task.
    registry["up"] = True
    response = admin.form(f"/instances/{first}/retry", {"next": "/admin/incidents"})
    doc = page(admin.get(location(response)))
    assert "Дело продолжено." in flashes(doc)
    assert len(find(doc, "//tbody/tr")) == 1
    resumed = web_engine.instance(first, admin_actor)
    assert resumed.variables["exported"] == 42 and [t.task.element_id for t in resumed.tasks] == ["use"]

    # Cancel the other one.
    row = one(doc, "//tbody/tr")
    cancel = row.xpath(".//form[contains(@action, '/cancel')]")[0]
    assert cancel.get("data-confirm")
    response = admin.http.post(cancel.get("action"), data=dict(cancel.form_values()))
    doc = page(admin.get(location(response)))
    assert "Дело отменено." in flashes(doc)
    assert text(one(doc, "//p[.empty]")) == "Сбоев нет."
    assert web_engine.instance(second, admin_actor).instance.status == InstanceStatus.CANCELLED
    assert "отменено администратором после сбоя" in json.dumps(
        [e.details for e in web_engine.instance(second, admin_actor).history], ensure_ascii=False
    )

    # Only administrators open the incidents page; the coordinator may retry from the case page.
    assert login("coordinator").get("/admin/incidents").status_code == 403
