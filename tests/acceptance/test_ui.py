"""The browser UI, through the test client and parsed HTML: signing in and out, sessions, CSRF.

The helpers at the top are shared by the other ``test_ui_*.py`` modules.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import lxml.html
import pytest
from flask import Flask
from sqlalchemy import MetaData, select
from sqlalchemy.exc import SAWarning
from werkzeug.test import TestResponse

from engine.clock import VirtualClock
from engine.engine import Engine
from tests.acceptance.conftest import DEMO_PASSWORD, WEB_SETTINGS, Client

Login = Callable[[str], Client]
HtmlElement = lxml.html.HtmlElement

# -- helpers shared by the UI tests ------------------------------------------------------------------------------


def page(response: TestResponse, status: int = 200) -> HtmlElement:
    """The response's HTML, parsed, after checking its status."""
    body = response.get_data(as_text=True)
    assert response.status_code == status, f"{response.status_code} != {status}: {body[:1500]}"
    assert response.mimetype == "text/html", response.mimetype
    return lxml.html.document_fromstring(body)


def text(element: HtmlElement | None) -> str:
    """An element's visible text with white space collapsed."""
    assert element is not None
    return " ".join(element.text_content().split())


def has_class(name: str) -> str:
    """An XPath predicate body: the element has the CSS class ``name``."""
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


def find(doc: HtmlElement, xpath: str) -> list[HtmlElement]:
    """Elements matching an XPath (relative paths start at ``doc``); ``.name`` is shorthand for a class."""
    expr = re.sub(r"\[\.([\w-]+)\]", lambda m: f"[{has_class(m.group(1))}]", xpath)
    found: list[HtmlElement] = doc.xpath(expr)
    return found


def one(doc: HtmlElement, xpath: str) -> HtmlElement:
    found = find(doc, xpath)
    assert len(found) == 1, f"{len(found)} elements match {xpath!r}"
    return found[0]


ENGLISH = re.compile(r"\b[a-z]{2,}(?: [a-z']+){3,}")


def russian(message: str) -> str:
    """``message``, after checking that no English sentence slipped into it."""
    assert not ENGLISH.search(message), f"English in a Russian page: {message!r}"
    return message


def flashes(doc: HtmlElement) -> list[str]:
    """The page's flash messages (each checked to be Russian)."""
    return [russian(text(p)) for p in find(doc, "//*[.flashes]//*[.flash]")]


def post_forms(doc: HtmlElement) -> list[HtmlElement]:
    return [f for f in doc.forms if (f.get("method") or "get").lower() == "post"]


def follow(client: Client, response: TestResponse) -> HtmlElement:
    """Follow a redirect (the page after a form) and parse it."""
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:1500]
    return page(client.get(response.headers["Location"]))


def location(response: TestResponse) -> str:
    assert response.status_code in (301, 302, 303), (response.status_code, response.get_data(as_text=True)[:500])
    return response.headers["Location"]


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: to prove a refused request wrote nothing."""
    database = engine.store.engine  # type: ignore[attr-defined]
    meta = MetaData()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # expression indexes are not reflected: not needed here
        meta.reflect(database)
    result: dict[str, list[tuple[Any, ...]]] = {}
    with database.connect() as conn:
        for name, table in meta.tables.items():
            result[name] = sorted((tuple(map(repr, row)) for row in conn.execute(select(table))), key=repr)
    return result


# -- signing in ------------------------------------------------------------------------------------------------------


def test_login_page_then_success_goes_to_the_inbox(client: Client) -> None:
    doc = page(client.get("/login"))
    assert doc.get("lang") == "ru"
    form = one(doc, "//form[@action='/login']")
    assert form.get("method") == "post"
    assert form.inputs["csrf_token"].value
    assert one(doc, "//label[@for='login']") is not None and one(doc, "//label[@for='password']") is not None
    assert one(doc, "//*[@id='password']").get("type") == "password"

    response = client.login("troitsk-go")
    assert location(response) == "/"
    inbox = page(client.get("/"))
    assert "Входящие" in text(one(inbox, "//h1"))
    assert "Специалист МОУО" in text(one(inbox, "//*[.nav-user]"))


def test_login_failure_is_a_401_in_russian_with_no_hint_which_part_was_wrong(client: Client) -> None:
    wrong_password = client.login("troitsk-go", "not-the-password")
    unknown_user = client.login("nobody-here", DEMO_PASSWORD)
    empty = client.login("", "")
    messages = []
    for response in (wrong_password, unknown_user, empty):
        doc = page(response, 401)
        alert = one(doc, "//*[@role='alert']")
        messages.append(text(alert))
        assert one(doc, "//*[@id='login']").get("aria-invalid") == "true"
    assert messages[0] == messages[1] == messages[2] == "Неверный логин или пароль."
    # The login typed is kept, the password is not.
    doc = page(client.login("troitsk-go", "not-the-password"), 401)
    assert one(doc, "//*[@id='login']").get("value") == "troitsk-go"
    assert not one(doc, "//*[@id='password']").get("value")
    assert client.get("/").status_code == 302


def test_login_is_rate_limited_then_allowed_again_a_minute_later(client: Client, clock: VirtualClock) -> None:
    limit = WEB_SETTINGS.login_rate_limit_per_minute
    for _ in range(limit):
        page(client.login("kopeysk-go", "wrong-password"), 401)
    # Even the right password is refused now, without checking it.
    refused = client.login("kopeysk-go", DEMO_PASSWORD)
    doc = page(refused, 429)
    assert "Слишком много неудачных попыток входа" in text(one(doc, "//*[@role='alert']"))
    assert client.get("/").status_code == 302

    clock.advance(timedelta(seconds=61))
    assert location(client.login("kopeysk-go", DEMO_PASSWORD)) == "/"
    assert client.get("/").status_code == 200


def test_logout_ends_the_session(login: Login) -> None:
    browser = login("coordinator")
    assert browser.get("/").status_code == 200
    doc = page(browser.get("/"))
    logout = one(doc, "//form[@action='/logout']")
    assert logout.get("method") == "post" and logout.inputs["csrf_token"].value
    assert browser.http.get("/logout").status_code == 405  # never by a GET (a link or an image could do that)
    response = browser.form("/logout")
    assert location(response) == "/login"
    assert "Вы вышли из системы." in flashes(page(browser.get("/login")))
    assert location(browser.get("/")).startswith("/login")


def _set_cookies(response: TestResponse) -> list[str]:
    return [v for k, v in response.headers.items() if k.lower() == "set-cookie" and v.startswith("agglo_session=")]


def test_session_cookie_flags_over_http_and_https(app: Flask) -> None:
    plain = Client(app.test_client())
    cookies = _set_cookies(plain.login("troitsk-go"))
    assert cookies, "login must set the session cookie"
    flags = [part.strip().lower() for part in cookies[-1].split(";")]
    assert "httponly" in flags and "samesite=lax" in flags and "secure" not in flags

    http = app.test_client()
    first = http.get("/login", base_url="https://localhost")
    token = re.search(r'name="csrf-token" content="([^"]+)"', first.get_data(as_text=True))
    assert token
    response = http.post(
        "/login",
        data={"login": "troitsk-go", "password": DEMO_PASSWORD, "csrf_token": token.group(1)},
        base_url="https://localhost",
    )
    assert response.status_code == 302
    cookies = _set_cookies(response)
    flags = [part.strip().lower() for part in cookies[-1].split(";")]
    assert "httponly" in flags and "samesite=lax" in flags and "secure" in flags
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_a_login_starts_a_fresh_session_and_pages_are_not_cached(client: Client) -> None:
    before = client.csrf()
    client.login("troitsk-go")
    after = client.csrf()
    assert before != after, "the CSRF token changes at login (no session fixation)"
    response = client.get("/")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "evil.example",
    ],
)
def test_next_never_leaves_the_site(client: Client, target: str) -> None:
    token = client.csrf()
    response = client.http.post(
        "/login", data={"login": "expert", "password": DEMO_PASSWORD, "csrf_token": token, "next": target}
    )
    assert location(response) == "/"
    # Signed in already: the login page sends on, but still only within the site.
    assert location(client.get("/login", query_string={"next": target})) == "/"


def test_next_within_the_site_is_followed(client: Client) -> None:
    response = client.get("/members?year=2025")
    assert location(response) == "/login?next=/members?year%3D2025"
    doc = page(client.get(location(response)))
    assert one(doc, "//input[@name='next']").get("value") == "/members?year=2025"
    token = client.csrf()
    done = client.http.post(
        "/login", data={"login": "expert", "password": DEMO_PASSWORD, "csrf_token": token, "next": "/members?year=2025"}
    )
    assert location(done) == "/members?year=2025"


def test_password_change_ends_the_other_sessions(login: Login, web_engine: Engine) -> None:
    here = login("kopeysk-go")
    elsewhere = login("kopeysk-go")
    assert elsewhere.get("/").status_code == 200

    # Mistakes are shown at their fields, in Russian, and change nothing.
    doc = page(
        here.form(
            "/profile",
            {"action": "password", "old_password": DEMO_PASSWORD, "new_password": "x1", "repeat_password": "x2"},
        ),
        400,
    )
    field = one(doc, "//*[@id='repeat_password']")
    assert field.get("aria-invalid") == "true"
    assert "Новые пароли не совпадают" in text(field.getparent())
    doc = page(
        here.form(
            "/profile",
            {
                "action": "password",
                "old_password": "wrong-old-pass",
                "new_password": "n3w-Secret!",
                "repeat_password": "n3w-Secret!",
            },
        ),
        400,
    )
    assert one(doc, "//*[@id='old_password']").get("aria-invalid") == "true"
    assert elsewhere.get("/").status_code == 200

    response = here.form(
        "/profile",
        {
            "action": "password",
            "old_password": DEMO_PASSWORD,
            "new_password": "n3w-Secret!",
            "repeat_password": "n3w-Secret!",
        },
    )
    assert location(response) == "/profile"
    assert "Пароль изменён. Другие сеансы завершены." in flashes(page(here.get("/profile")))
    assert here.get("/").status_code == 200, "the session that changed the password goes on"
    assert location(elsewhere.get("/")).startswith("/login"), "every other session has ended"

    fresh = Client(elsewhere.http)
    assert fresh.login("kopeysk-go", DEMO_PASSWORD).status_code == 401
    assert location(fresh.login("kopeysk-go", "n3w-Secret!")) == "/"


def test_a_deactivated_user_is_signed_out_at_once(login: Login) -> None:
    user = login("troitsk-go")
    admin = login("admin")
    assert user.get("/").status_code == 200
    doc = page(admin.get("/admin/users?edit=troitsk-go"))
    form = one(doc, "//tr[.editing]//form")
    data = {k: v for k, v in form.form_values() if k not in ("csrf_token", "active", "roles")}
    data["roles"] = [v for k, v in form.form_values() if k == "roles"]
    assert data["mode"] == "edit" and data["login"] == "troitsk-go" and data["roles"] == ["mouo"]
    response = admin.form("/admin/users", data)
    assert location(response) == "/admin/users"
    listing = page(admin.get("/admin/users"))
    row = next(tr for tr in find(listing, "//tbody/tr") if "troitsk-go" in text(tr))
    assert "заблокирован" in text(row)

    assert location(user.get("/")).startswith("/login")
    assert Client(user.http).login("troitsk-go").status_code == 401


# -- CSRF --------------------------------------------------------------------------------------------------------------


def test_a_post_without_the_token_is_refused_and_writes_nothing(login: Login, web_engine: Engine) -> None:
    browser = login("troitsk-go")
    before = snapshot(web_engine)
    for data in ({}, {"csrf_token": "forged-" + "x" * 30}):
        for url, fields in [
            ("/processes/contract/start", {"aspects": "x" * 20}),
            ("/profile", {"action": "calendar"}),
            ("/notifications", {}),
            ("/logout", {}),
        ]:
            response = browser.http.post(url, data={**fields, **data})
            doc = page(response, 403)
            assert "Форма устарела" in text(doc) or "Недостаточно прав" in text(doc)
    assert snapshot(web_engine) == before
    assert browser.get("/").status_code == 200, "still signed in: the refused logout did nothing"
    # The login form is protected too (login CSRF).
    anonymous = Client(browser.http.application.test_client())
    assert anonymous.http.post("/login", data={"login": "troitsk-go", "password": DEMO_PASSWORD}).status_code == 403
