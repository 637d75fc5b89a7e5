"""Every page, crawled as each kind of user with real data behind it: accessibility basics, a
narrow screen, and CSRF — every POST form carries the token, and a POST without it is refused
with nothing written."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest

from engine.clock import VirtualClock
from engine.engine import Engine
from engine.records import InstanceStatus
from tests.acceptance.conftest import Client
from tests.acceptance.test_ui import HtmlElement, Login, one, page, post_forms, snapshot, text
from tests.acceptance.test_ui_cases import SCRIPTED
from tests.acceptance.test_ui_work import APPLICATION, PDF, start_day, to_programme_approval


@dataclass
class World:
    """Demo data with something on every page: open tasks, a pending extension, an incident ..."""

    contract: str = ""
    review_task: str = ""
    day: str = ""
    proposal_task: str = ""
    approval_task: str = ""
    incident: str = ""
    pages: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture
def world(web_engine: Engine, clock: VirtualClock, login: Login) -> World:
    w = World()
    troitsk_actor = web_engine.actor("troitsk-go")
    contract = web_engine.start(
        "contract",
        troitsk_actor,
        {
            "directions": ["msoko"],
            "aspects": APPLICATION["aspects"],
            "contact": {"name": "Иванова Анна", "email": "ivanova@troitsk.example"},
            "term_until": "2027-12-31",
        },
        "ПД-1",
    )
    w.contract, w.review_task = contract.instance.id, contract.tasks[0].task.id
    day = start_day(web_engine, "2026-04-20", members=("troitsk-go",), key="День-1")
    w.day, w.proposal_task = day.instance.id, day.tasks[0].task.id
    web_engine.add_comment(w.proposal_task, troitsk_actor, "Готовим предложения")
    web_engine.add_attachment(w.proposal_task, troitsk_actor, "план.pdf", "application/pdf", PDF)
    web_engine.request_extension(w.proposal_task, troitsk_actor, "Ждём решения коллегии", date(2026, 3, 20))
    _, w.approval_task = to_programme_approval(web_engine, "2026-06-10", "День-2")
    admin = web_engine.actor("admin")
    web_engine.deploy(SCRIPTED, "scripted.bpmn", admin)
    w.incident = web_engine.start("scripted", web_engine.actor("coordinator"), {"divisor": 0}, "Доля").instance.id
    web_engine.create_token(admin, "sync", ["coordinator"], "rcoko")
    clock.advance(timedelta(days=8))  # the proposal (due 06.03) is overdue; reminders fire
    assert web_engine.fire_timers(w.incident).instance.status == InstanceStatus.INCIDENT
    web_engine.sweep_reminders("test")

    common = ["/", "/?tab=mine", "/?tab=overdue", "/processes", "/instances", "/deadlines", "/reports/overdue"]
    common += ["/members", "/members?year=2017", "/notifications", "/profile"]
    w.pages = {
        "troitsk-go": [
            *common,
            "/processes/contract/start",
            f"/instances/{w.contract}",
            f"/instances/{w.day}",
            f"/tasks/{w.proposal_task}",
        ],
        "coordinator": [*common, f"/tasks/{w.review_task}", f"/instances/{w.day}", f"/instances/{w.incident}"],
        "ministry": [
            *common,
            "/?tab=approve",
            "/processes/day/start",
            f"/tasks/{w.approval_task}",
            f"/instances/{w.day}",
        ],
        "admin": [
            *common,
            "/admin",
            "/admin/deploy",
            "/admin/users",
            "/admin/users?edit=troitsk-go",
            "/admin/tokens",
            "/admin/incidents",
            f"/instances/{w.incident}",
            f"/tasks/{w.review_task}",
        ],
        "expert": common,
    }
    return w


def crawl(world: World, login: Login) -> Iterator[tuple[str, Client, str, str, HtmlElement]]:
    """(user, browser, url, what, parsed page) for every page of every user, plus pages with errors."""
    for user, urls in world.pages.items():
        browser = login(user)
        for url in urls:
            yield user, browser, url, "", page(browser.get(url))
    anonymous = Client(browser.http.application.test_client())
    yield "anonymous", anonymous, "/login", "", page(anonymous.get("/login"))
    failed = page(anonymous.login("troitsk-go", "wrong-password"), 401)
    yield "anonymous", anonymous, "/login", "failed", failed
    troitsk = login("troitsk-go")
    yield "troitsk-go", troitsk, "/admin", "403", page(troitsk.get("/admin"), 403)
    yield "troitsk-go", troitsk, "/no-such-page", "404", page(troitsk.get("/no-such-page"), 404)
    start = troitsk.form("/processes/contract/start", {"aspects": "коротко", "contact.email": "x"})
    yield "troitsk-go", troitsk, "/processes/contract/start", "errors", page(start, 422)
    admin = login("admin")
    broken = admin.form(
        "/admin/deploy",
        {"file": (io.BytesIO(b"<bpmn:definitions/>"), "x.bpmn")},
        content_type="multipart/form-data",
    )
    yield "admin", admin, "/admin/deploy", "problems", page(broken, 422)
    created = admin.form("/admin/tokens", {"name": "shown-once", "organisation": "rcoko", "roles": ["coordinator"]})
    yield "admin", admin, "/admin/tokens", "created", page(created)


def nav_item(path: str) -> str | None:
    """The menu item a page belongs to."""
    for prefix, item in [
        ("/tasks/", "/"),
        ("/processes", "/processes"),
        ("/instances", "/instances"),
        ("/admin", "/admin"),
    ]:
        if path.startswith(prefix):
            return item
    if path in ("/", "/deadlines", "/reports/overdue", "/members", "/notifications", "/profile"):
        return path
    return None


def labelled(control: HtmlElement, doc: HtmlElement) -> bool:
    """Whether a form control has an accessible name: a label, a fieldset's legend, aria-label(ledby)."""
    if control.get("aria-label") or control.get("aria-labelledby"):
        return True
    ident = control.get("id")
    if ident and doc.xpath("//label[@for=$i]", i=ident):
        return True
    if control.xpath("ancestor::label"):
        return True
    return bool(control.get("type") in ("checkbox", "radio") and control.xpath("ancestor::fieldset[legend]"))


def check_accessibility(where: str, url: str, doc: HtmlElement, error_page: bool) -> None:
    assert doc.get("lang") == "ru", where
    viewport = doc.xpath("//meta[@name='viewport']/@content")
    assert viewport == ["width=device-width, initial-scale=1"], where
    assert doc.xpath("//title") and text(doc.xpath("//title")[0]), where
    # A skip link first, to the main content.
    first_link = doc.xpath("//body//a")[0]
    assert first_link.get("href") == "#main" and "skip" in first_link.get("class"), where
    assert one(doc, "//main[@id='main']") is not None
    assert len(doc.xpath("//h1")) == 1, f"{where}: one h1"
    # Ids are unique; what aria attributes point at exists.
    ids = doc.xpath("//@id")
    assert len(ids) == len(set(ids)), f"{where}: duplicate ids {sorted({i for i in ids if ids.count(i) > 1})}"
    for attr in ("aria-describedby", "aria-labelledby", "aria-controls"):
        for value in doc.xpath(f"//@{attr}"):
            for ref in value.split():
                assert ref in ids, f"{where}: {attr}={ref!r} points nowhere"
    for anchor in doc.xpath("//a[starts-with(@href, '#') and string-length(@href) > 1]/@href"):
        assert anchor[1:] in ids, f"{where}: link to missing #{anchor[1:]}"
    # Every control has a name; every button says what it does.
    for control in doc.xpath("//input[not(@type='hidden') and not(@type='submit')] | //select | //textarea"):
        assert labelled(control, doc), f"{where}: unlabelled {lxml_repr(control)}"
    for button in doc.xpath("//button"):
        assert text(button) or button.get("aria-label"), f"{where}: empty button"
    for image in doc.xpath("//*[@role='img']"):
        assert image.get("aria-label") or image.get("aria-labelledby"), where
    for table in doc.xpath("//table[thead]"):
        assert table.xpath("./thead//th[@scope='col']"), f"{where}: table headers without scope"
    # The menu marks the current page.
    nav = doc.xpath("//nav[@id='nav']")
    if nav:
        toggle = one(doc, "//button[@aria-controls='nav']")
        assert toggle.get("aria-expanded") == "false"
        current = nav[0].xpath(".//a[@aria-current='page']/@href")
        expected = nav_item(url.split("?")[0])
        if expected is not None and not error_page:
            assert current == [expected], f"{where}: aria-current {current} != {expected}"
        assert len(current) <= 1, where


def lxml_repr(element: HtmlElement) -> str:
    return f"<{element.tag} " + " ".join(f'{k}="{v}"' for k, v in element.attrib.items()) + ">"


def test_every_page_is_accessible_and_every_form_is_protected(world: World, login: Login, web_engine: Engine) -> None:
    seen_forms: dict[tuple[str, str], tuple[Client, dict[str, Any], bool]] = {}
    pages = 0
    for user, browser, url, what, doc in crawl(world, login):
        pages += 1
        where = f"{user} {url} {what}"
        check_accessibility(where, url, doc, what in ("403", "404"))
        token = browser.csrf() if user != "anonymous" else None
        for form in post_forms(doc):
            assert form.get("data-busy") is not None, f"{where}: {form.get('action')} shows no progress"
            tokens = form.xpath(".//input[@name='csrf_token']")
            assert len(tokens) == 1 and tokens[0].get("type") == "hidden", f"{where}: form without csrf_token"
            if token is not None:
                assert tokens[0].get("value") == token, f"{where}: stale csrf_token"
            action = form.get("action") or url
            assert action.startswith("/"), where
            values: dict[str, Any] = {}
            for name, value in form.form_values():
                if name != "csrf_token":
                    values.setdefault(name, []).append(value)
            multipart = form.get("enctype") == "multipart/form-data"
            seen_forms.setdefault((user, action), (browser, values, multipart))
        for form in doc.forms:
            assert (form.get("method") or "get").lower() in ("get", "post"), where
    assert pages >= 80
    actions = {action for _, action in seen_forms}
    for expected in ("/logout", "/login", "/profile", "/notifications", "/admin/users", "/admin/tokens"):
        assert expected in actions, expected
    for fragment in ("/claim", "/complete", "/comments", "/attachments", "/extension", "/decide", "/cancel"):
        assert any(fragment in a for a in actions), fragment
    assert any(a.endswith("/retry") for a in actions) and any(a.endswith("/dates") for a in actions)

    # Now every one of those forms, without its token: refused, and nothing written anywhere.
    before = snapshot(web_engine)
    for (user, action), (browser, values, multipart) in sorted(seen_forms.items(), key=lambda kv: kv[0]):
        for forged in ({}, {"csrf_token": "x" * 43}):
            data: dict[str, Any] = {**values, **forged}
            if multipart and "file" in values:
                data["file"] = (io.BytesIO(PDF), "x.pdf")
            kwargs = {"content_type": "multipart/form-data"} if multipart else {}
            response = browser.http.post(action, data=data, **kwargs)
            assert response.status_code == 403, f"{user} POST {action} without a token: {response.status_code}"
            assert "Форма устарела" in response.get_data(as_text=True) or response.status_code == 403
    assert snapshot(web_engine) == before, "a refused form wrote something"
    # Still signed in: the refused logouts did nothing.
    assert login("troitsk-go").get("/").status_code == 200


def test_pages_fit_a_narrow_screen_and_the_script_only_enhances(client: Client) -> None:
    """The CSS has a narrow-screen layout (the menu collapses, tables become cards) and no page
    needs the script: forms are plain HTML forms."""
    css = client.get("/static/app.css").get_data(as_text=True)
    assert "@media" in css and "max-width" in css
    assert ".menu-toggle" in css and "data-label" in css, "tables show their labels on a narrow screen"
    assert ":focus-visible" in css or ":focus" in css, "keyboard focus is visible"
    assert ".js .nav { display: none; }" in css, "without the script the menu stays open on a narrow screen"
    js = client.get("/static/app.js").get_data(as_text=True)
    assert "aria-expanded" in js and "aria-busy" in js, "the menu toggles; slow submissions show progress"
    assert 'classList.add("js")' in js
