"""The deadlines calendar, the execution-discipline report with its CSV and XLSX exports, the members registry."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from openpyxl import load_workbook

from engine.clock import VirtualClock
from engine.engine import Engine
from tests.acceptance.test_ui import Login, find, location, one, page, text
from tests.acceptance.test_ui_work import start_day


def day_cell(doc: object, day: int) -> object:
    """The calendar cell of ``day`` in the month shown (not the neighbouring months' days)."""
    cells = [
        td
        for td in find(doc, "//table[.month]/tbody//td")  # type: ignore[arg-type]
        if "other" not in (td.get("class") or "").split() and text(td.xpath("./span[@class='dnum']")[0]) == str(day)
    ]
    assert len(cells) == 1
    return cells[0]


def test_the_month_shows_deadlines_on_their_dates_and_marks_days_off(
    web_engine: Engine, clock: VirtualClock, login: Login
) -> None:
    view = start_day(web_engine, "2026-04-20", members=("troitsk-go", "kopeysk-go"), key="День-М")
    clock.advance(timedelta(days=10))  # 12.03.2026: the proposals (due 06.03) are late
    coordinator = login("coordinator")
    doc = page(coordinator.get("/deadlines?month=2026-03"))
    assert text(one(doc, "//nav[.month-nav]/h2")).startswith("Март 2026")
    assert one(doc, "//a[@rel='prev']").get("href") == "/deadlines?month=2026-02"
    assert one(doc, "//a[@rel='next']").get("href") == "/deadlines?month=2026-04"
    assert [text(th) for th in find(doc, "//table[.month]/thead//th")] == ["Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс"]

    sixth = day_cell(doc, 6)
    entries = sixth.xpath(".//li")
    assert len(entries) == 2 and all("late" in li.get("class") for li in entries)
    assert {text(li.xpath("./span[@class='muted']")[0]) for li in entries} == {
        "Троицкий городской округ",
        "Копейский городской округ",
    }
    assert all("просрочено" in text(li) for li in entries)
    assert "20.04.2026 − 45 дней = 06.03.2026" in entries[0].xpath("./a/@title")[0]
    assert not day_cell(doc, 5).xpath(".//li")

    # Days off: weekends and holidays, marked for the eye and for screen readers.
    for day in (7, 8, 9, 14, 15):
        assert "off" in day_cell(doc, day).get("class").split(), day
    assert day_cell(doc, 8).get("title") == "Международный женский день"
    assert "Международный женский день (выходной)" in text(day_cell(doc, 9))
    assert "выходной" in text(day_cell(doc, 7))
    for day in (2, 6, 10, 12):
        assert "off" not in day_cell(doc, day).get("class").split(), day
    today = day_cell(doc, 12)
    assert "today" in today.get("class") and today.get("aria-current") == "date"

    # The coordinator may not open a МОУО's task: the link leads to the case instead.
    by_org = {text(li.xpath("./span[@class='muted']")[0]): li.xpath("./a/@href")[0] for li in entries}
    link = by_org["Троицкий городской округ"]
    assert location(coordinator.get(link)) == f"/instances/{view.instance.id}#deadlines"
    # A МОУО sees only its own deadline, and its link opens its task.
    troitsk = login("troitsk-go")
    own = day_cell(page(troitsk.get("/deadlines?month=2026-03")), 6).xpath(".//li")
    assert len(own) == 1 and "Копейский" not in text(own[0])
    assert page(troitsk.get(own[0].xpath("./a/@href")[0])) is not None
    # Another МОУО of the same Day may open the case, not the task; a МОУО outside it, neither.
    kopeysk = login("kopeysk-go")
    assert kopeysk.get(link.split("?")[0]).status_code == 404
    assert location(kopeysk.get(link)) == f"/instances/{view.instance.id}#deadlines"
    outsider = login("chelyabinsk-go")
    assert outsider.get(link).status_code == 404
    # Another month; a nonsense month falls back to this one.
    assert not find(page(coordinator.get("/deadlines?month=2026-04")), "//table[.month]//li")
    assert text(one(page(coordinator.get("/deadlines?month=13-2026")), "//nav[.month-nav]/h2")).startswith("Март 2026")


def test_the_overdue_report_groups_by_organisation_and_exports(
    web_engine: Engine, clock: VirtualClock, login: Login
) -> None:
    start_day(web_engine, "2026-04-20", members=("troitsk-go", "kopeysk-go"), key='=HYPERLINK("http://x")')
    start_day(web_engine, "2026-04-24", members=("troitsk-go",), key="День-2")  # due 10.03
    clock.advance(timedelta(days=10))
    coordinator = login("coordinator")
    doc = page(coordinator.get("/reports/overdue"))
    assert "На 12.03.2026. Всего просрочено: 3." in text(one(doc, "//main/p[.muted]"))
    groups = {
        text(one(section, ".//h2")): section
        for section in find(doc, "//section[.card][starts-with(@aria-labelledby, 'org-')]")
    }
    assert list(groups) == ["Троицкий городской округ 2", "Копейский городской округ 1"], "the most overdue first"
    rows = groups["Троицкий городской округ 2"].xpath(".//tbody/tr")
    first = [text(td) for td in rows[0].xpath("./td")]
    assert first[0] == "Направить предложения в программу Дня"
    assert first[2].startswith("06.03.2026") and "20.04.2026 − 45 дней" in first[2]
    assert first[3] == "6 дн. (3 раб.)"
    assert first[4] == "DAY 3.1"
    second = [text(td) for td in rows[1].xpath("./td")]
    assert second[2].startswith("10.03.2026") and second[3] == "2 дн. (2 раб.)" and "День-2" in second[1]
    # Filtered to one organisation.
    doc = page(coordinator.get("/reports/overdue?organisation=kopeysk-go"))
    assert [text(h) for h in find(doc, "//section//h2")] == ["Копейский городской округ 1"]
    assert one(doc, "//a[text()='CSV']").get("href") == "/reports/overdue?format=csv&organisation=kopeysk-go"
    assert one(doc, "//select[@id='organisation']/option[@selected]").get("value") == "kopeysk-go"

    # CSV for Russian Excel: a BOM, ';', Russian headers, formulas neutralised.
    exported = coordinator.get("/reports/overdue?format=csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert exported.headers["Content-Disposition"] == 'attachment; filename="overdue-2026-03-12.csv"'
    assert exported.data.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(exported.data.decode("utf-8-sig")), delimiter=";"))
    assert table[0][:6] == ["Организация", "Процесс", "Задача", "Номер дела", "Исполнитель", "Срок"]
    assert len(table) == 4
    assert [r[0] for r in table[1:]] == [
        "Троицкий городской округ",
        "Троицкий городской округ",
        "Копейский городской округ",
    ]
    keys = {r[3] for r in table[1:]}
    assert '\'=HYPERLINK("http://x")' in keys and not any(k.startswith("=") for k in keys)
    assert table[1][5] == "06.03.2026" and table[1][7] == "6" and table[1][8] == "3"

    # XLSX: a real workbook with the same rows and dates as dates.
    workbook = coordinator.get("/reports/overdue?format=xlsx")
    assert workbook.status_code == 200
    assert workbook.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = load_workbook(io.BytesIO(workbook.data))
    assert book.sheetnames == ["Просрочки", "По организациям"]
    sheet = book["Просрочки"]
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "Просроченные задачи на 12.03.2026"
    assert values[2][:3] == ("Организация", "Процесс", "Задача")
    data = values[3:]
    assert len(data) == 3 and data[0][0] == "Троицкий городской округ"
    assert data[0][5].date().isoformat() == "2026-03-06"
    formula = next(c for row in sheet.iter_rows(min_row=4) for c in row if "HYPERLINK" in str(c.value))
    assert formula.data_type == "s" and str(formula.value).startswith("'")
    summary = list(book["По организациям"].iter_rows(values_only=True))
    assert summary[1:] == [("Троицкий городской округ", 2, 6), ("Копейский городской округ", 1, 6)]

    # A МОУО sees only its own organisation, without the filter.
    troitsk = login("troitsk-go")
    doc = page(troitsk.get("/reports/overdue"))
    assert [text(h) for h in find(doc, "//section//h2")] == ["Троицкий городской округ 2"]
    assert not find(doc, "//select[@id='organisation']")
    own = list(
        csv.reader(io.StringIO(troitsk.get("/reports/overdue?format=csv").data.decode("utf-8-sig")), delimiter=";")
    )
    assert {r[0] for r in own[1:]} == {"Троицкий городской округ"}
    assert "Копейский" not in text(page(troitsk.get("/reports/overdue?organisation=kopeysk-go")))


def test_the_members_registry_by_year_with_its_chart(web_engine: Engine, login: Login) -> None:
    series = web_engine.membership_dynamics(None, 2026)
    assert [c for _, c in series[:3]] == [9, 15, 21], "the demo data: 9 → 15 → 21"
    expert = login("expert")
    doc = page(expert.get("/members?year=2017"))
    svg = one(doc, "//*[local-name()='svg']")
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "chart-title chart-desc"
    bars = svg.xpath(".//*[local-name()='a']")
    assert len(bars) == len(series)
    assert [b.get("aria-label") for b in bars] == [f"{y}: {c}" for y, c in series]
    values = [int(b.xpath("./*[local-name()='text'][contains(@class, 'val')]")[0].text) for b in bars]
    assert values == [c for _, c in series]
    heights = [float(b.xpath("./*[local-name()='rect']/@height")[0]) for b in bars]
    assert heights[0] < heights[1] < heights[2] == max(heights)
    selected = [b for b in bars if "selected" in b.xpath("./*[local-name()='rect']/@class")[0]]
    assert [b.get("href") for b in selected] == ["/members?year=2017"]
    assert "2016 — 9 → 2017 — 15 → 2018 — 21" in text(one(doc, "//figcaption"))

    heading = text(one(doc, "//h2[@id='list-h']"))
    assert heading == "Участники в 2017 году 15"
    rows = find(doc, "//section[@aria-labelledby='list-h']//tbody/tr")
    members = web_engine.members(2017)
    assert len(rows) == len(members) == 15
    assert {text(r.xpath("./td[1]")[0]) for r in rows} == {m.organisation.name for m in members}
    assert one(doc, "//input[@id='year']").get("value") == "2017"
    # Before the agglomeration: an empty year, said so.
    assert text(one(page(expert.get("/members?year=2010")), "//p[.empty]")) == "В этом году участников нет."
