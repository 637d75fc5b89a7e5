"""The main journeys in a real headless Chromium: what people type, press and see.

* a МОУО applies for a project contract and the coordinator accepts the application;
* the Ministry approves one Day programme and returns another to the coordinator;
* the instance page draws the diagram with the done and active steps marked;
* the menu works on a phone-sized screen, and the login works from the keyboard alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from engine.engine import Engine
from tests.browser.conftest import Console, sign_in, sign_out, unavailable_at_import

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:
    unavailable_at_import("the Python package playwright is not installed (pip install -e '.[dev]')")

Shot = Callable[[str], Path]


def marker(page: Page, css: str, element_id: str) -> Locator:
    """The diagram element ``element_id`` carrying the marker class ``css`` (agglo-active, agglo-done…)."""
    return page.locator(f'#diagram g.djs-element.{css}[data-element-id="{element_id}"]')


def wait_for_diagram(page: Page) -> None:
    diagram = page.locator("#diagram")
    expect(diagram).to_have_attribute("data-state", "ready")
    expect(diagram.locator("svg").first).to_be_visible()


# -- a project contract: the МОУО applies, the coordinator accepts -------------------------------


def test_mouo_applies_for_a_contract_and_the_coordinator_accepts(page: Page, shot: Shot, web_engine: Engine) -> None:
    sign_in(page, "troitsk-go")
    expect(page.get_by_role("heading", name="Входящие", level=1)).to_be_visible()

    page.get_by_role("navigation", name="Основное меню").get_by_role("link", name="Процессы").click()
    contract = page.locator("li.card").filter(has=page.get_by_role("heading", name=re.compile("Проектный договор")))
    contract.get_by_role("link", name="Начать").click()
    expect(page).to_have_url(re.compile(r"/processes/contract/start$"))
    expect(page.get_by_role("heading", name=re.compile("Заявка МОУО на заключение"))).to_be_visible()

    page.get_by_label("Совершенствование муниципальной системы оценки качества образования").check()
    page.get_by_label("Повышение квалификации муниципальной команды").check()
    page.get_by_label("Актуальные аспекты развития МСОКО").fill(
        "Мониторинг качества подготовки обучающихся 9 классов и модельные документы по ВПР."
    )
    page.get_by_label("ФИО").fill("Иванова Мария Петровна")
    page.get_by_label("Электронная почта").fill("ivanova@troitsk.example")
    page.get_by_label("Срок действия договора (по)").fill("2028-12-31")
    page.get_by_label("Номер дела").fill("ПД-ТРО-2026")
    shot("1-application")
    page.get_by_role("button", name="Отправить").click()

    # The review is the coordinator's: the applicant lands on the case with the review highlighted.
    expect(page).to_have_url(re.compile(r"/instances/[^/]+$"))
    instance_url = page.url
    expect(page.locator(".flash-success")).to_contain_text("запущен")
    expect(page.get_by_role("heading", level=1)).to_contain_text("ПД-ТРО-2026")
    wait_for_diagram(page)
    expect(marker(page, "agglo-active", "Task_ReviewApplication")).to_have_count(1)
    expect(page.locator(".active-step")).to_have_text(["Рассмотреть заявку МОУО"])
    shot("2-submitted")
    sign_out(page)

    sign_in(page, "coordinator")
    row = page.locator("table.tasks tbody tr").filter(has_text="ПД-ТРО-2026")
    expect(row).to_have_count(1)
    row.get_by_role("link", name="Рассмотреть заявку МОУО").click()
    expect(page).to_have_url(re.compile(r"/tasks/[^/]+$"))
    page.get_by_role("button", name="Взять в работу").click()
    expect(page.locator(".flash-success")).to_have_text("Задача закреплена за вами.")
    expect(page.get_by_role("button", name="Вернуть в общий список")).to_be_visible()
    shot("3-review")
    page.get_by_role("button", name="Принять заявку").click()

    # The next step is the coordinator's too: the page moves on to it.
    expect(page.locator(".flash-success")).to_have_text("Задача «Рассмотреть заявку МОУО» выполнена.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Подготовить проект договора")
    shot("4-accepted")

    page.goto(instance_url)
    wait_for_diagram(page)
    expect(marker(page, "agglo-done", "Task_ReviewApplication")).to_have_count(1)
    expect(marker(page, "agglo-active", "Task_PrepareContract")).to_have_count(1)
    expect(marker(page, "agglo-active", "Task_ReviewApplication")).to_have_count(0)
    expect(page.locator(".active-step")).to_have_text(["Подготовить проект договора"])
    shot("5-instance")

    # What the browser sent is what the engine recorded.
    instance_id = instance_url.rsplit("/", 1)[1]
    variables = web_engine.instance(instance_id, web_engine.actor("coordinator")).variables
    assert variables["directions"] == ["msoko", "training"]
    assert variables["contact"] == {"name": "Иванова Мария Петровна", "email": "ivanova@troitsk.example"}
    assert variables["term_until"] == "2028-12-31"
    assert variables["review_decision"] == "accept"


# -- the Day programme: the Ministry approves one and returns another ---------------------------


def day_awaiting_approval(engine: Engine, business_key: str, place: str) -> str:
    """Drive a Day (no МОУО proposals) through the coordinator's draft to the Ministry's approval."""
    ministry, coordinator = engine.actor("ministry"), engine.actor("coordinator")
    started = engine.start(
        "day",
        ministry,
        {
            "day_date": "2026-10-15",
            "day_place": place,
            "day_form": "in_person",
            "day_order_number": "01/1234",
            "day_order_date": "2026-03-02",
            "members": [],
        },
        business_key,
    )
    [draft] = [t for t in started.tasks if t.task.element_id == "Task_DraftProgramme"]
    drafted = engine.complete(
        draft.task.id,
        coordinator,
        {"programme_draft": f"Пленарное заседание и секции, {place}.", "programme_agreement": "Согласовано с МОУО."},
    )
    assert [t.task.element_id for t in drafted.tasks] == ["Task_ApproveProgramme"]
    return started.instance.id


def test_ministry_approves_one_day_programme_and_returns_another(
    page: Page, shot: Shot, web_engine: Engine, console: Console
) -> None:
    approved = day_awaiting_approval(web_engine, "ДЕНЬ-2026-А", "Троицк, МОУ СОШ № 1")
    returned = day_awaiting_approval(web_engine, "ДЕНЬ-2026-Б", "Копейск, дистанционная площадка")

    sign_in(page, "ministry")
    tasks = page.locator("table.tasks tbody tr").filter(has_text="Утвердить программу Дня приказом")
    expect(tasks).to_have_count(2)
    shot("1-inbox")

    # Approve the first: the order's number and date are typed in, then «Утвердить программу приказом».
    tasks.filter(has_text="ДЕНЬ-2026-А").get_by_role("link", name="Утвердить программу Дня приказом").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Утвердить программу Дня приказом")
    page.get_by_label("Номер приказа об утверждении программы").fill("01/2345")
    page.get_by_label("Дата приказа").fill("2026-03-10")
    shot("2-approve")
    page.get_by_role("button", name="Утвердить программу приказом").click()
    expect(page.locator(".flash-success")).to_have_text("Задача «Утвердить программу Дня приказом» выполнена.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Разместить информацию на сайте Министерства")

    page.goto(f"/instances/{approved}")
    wait_for_diagram(page)
    expect(marker(page, "agglo-done", "Task_ApproveProgramme")).to_have_count(1)
    expect(marker(page, "agglo-active", "Task_PublishMinistry")).to_have_count(1)
    expect(marker(page, "agglo-active", "Task_PublishCoordinator")).to_have_count(1)
    expect(marker(page, "agglo-active", "Task_DraftProgramme")).to_have_count(0)
    shot("3-approved-instance")

    # Return the second: without remarks the form says what is missing; with them it goes back.
    page.goto("/")
    page.get_by_role("link", name="Утвердить программу Дня приказом").click()
    expect(page.get_by_role("navigation", name="Навигация")).to_contain_text("ДЕНЬ-2026-Б")
    console.expect(r"status of 422 .*/tasks/[^/]+/complete\)$")  # a refused form comes back as 422
    page.get_by_role("button", name="Вернуть координатору на доработку").click()
    expect(page.locator(".flash-error")).to_contain_text("Форма заполнена с ошибками")
    comment = page.get_by_label("Замечания")
    expect(comment).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-programme_comment-err")).to_be_visible()
    assert any("status of 422" in e for e in console.errors), "the console is watched"
    shot("4-return-refused")
    comment.fill("Добавьте секцию для педагогов дополнительного образования и время выступлений.")
    page.get_by_role("button", name="Вернуть координатору на доработку").click()
    expect(page.locator(".flash-success")).to_have_text("Задача «Утвердить программу Дня приказом» выполнена.")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("table.tasks")).not_to_contain_text("Утвердить программу Дня приказом")

    page.goto(f"/instances/{returned}")
    wait_for_diagram(page)
    expect(marker(page, "agglo-active", "Task_DraftProgramme")).to_have_count(1)
    expect(marker(page, "agglo-done", "Task_ApproveProgramme")).to_have_count(1)
    expect(marker(page, "agglo-active", "Task_PublishMinistry")).to_have_count(0)
    shot("5-returned-instance")

    ministry = web_engine.actor("ministry")
    first = web_engine.instance(approved, ministry).variables
    assert first["programme_decision"] == "approve"
    assert (first["programme_order_number"], first["programme_order_date"]) == ("01/2345", "2026-03-10")
    second = web_engine.instance(returned, ministry).variables
    assert second["programme_decision"] == "return"
    assert second["programme_comment"].startswith("Добавьте секцию")


# -- a phone-sized screen and the keyboard ---------------------------------------------------


def test_the_menu_opens_on_a_narrow_screen(page: Page, shot: Shot) -> None:
    page.set_viewport_size({"width": 375, "height": 812})
    sign_in(page, "coordinator")
    nav = page.get_by_role("navigation", name="Основное меню")
    toggle = page.get_by_role("button", name="Меню")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(nav).to_be_hidden()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone: {width}px wide"
    shot("1-closed")

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(nav).to_be_visible()
    expect(nav.get_by_role("link", name="Дела")).to_be_visible()
    shot("2-open")

    nav.get_by_role("link", name="Процессы").click()
    expect(page).to_have_url(re.compile(r"/processes$"))
    expect(page.get_by_role("heading", name="Процессы", level=1)).to_be_visible()
    expect(nav).to_be_hidden()  # a new page starts with the menu closed
    shot("3-processes")


def test_tab_reaches_the_skip_link_first_and_the_login_needs_no_mouse(page: Page, shot: Shot, console: Console) -> None:
    page.goto("/login")
    skip = page.get_by_role("link", name="Перейти к содержанию")
    login, password = page.get_by_label("Логин"), page.get_by_label("Пароль")
    # The login page puts the focus in the login field (autofocus); going back from it, the first stop
    # of the page's tab order is the skip link (before the site name's link).
    expect(login).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Образовательная агломерация")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()  # hidden until focused, then shown
    shot("1-login-skip-link")
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()

    # Keyboard only: Tab into the form, type, Enter to submit; a wrong password is reported in the form.
    page.keyboard.press("Tab")
    expect(login).to_be_focused()
    page.keyboard.type("ministry")
    page.keyboard.press("Tab")
    expect(password).to_be_focused()
    page.keyboard.type("wrong-password")
    console.expect(r"status of 401 .*/login\)$")  # the refused login comes back as 401
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(login).to_have_value("ministry")
    expect(login).to_have_attribute("aria-invalid", "true")
    expect(login).to_be_focused()  # the form comes back with the focus in it
    shot("2-wrong-password")
    page.keyboard.press("Tab")
    expect(password).to_be_focused()
    page.keyboard.type("agglo-demo")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name="Входящие", level=1)).to_be_visible()

    # A signed-in page: the very first Tab stop is the skip link, and it leads past the menu.
    page.keyboard.press("Tab")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    shot("3-inbox-skip-link")
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()
    page.keyboard.press("Tab")
    inside = page.evaluate("document.activeElement.closest('main') !== null")
    assert inside, "after the skip link the next Tab stop should be inside the main content, not the menu"
