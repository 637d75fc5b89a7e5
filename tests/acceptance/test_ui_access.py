"""Who may open which page and submit which form in the UI: every route × every caller.

The routes come from the app's URL map (the ``ui`` blueprint and the feeds), so a new route is
covered as soon as it exists: it needs sample addresses here (or a reason to be skipped), else
the first test fails and names it. The objects are troitsk-go's, built as in
``test_api_access.py`` (a returned contract with a comment and documents, its task in a Day with a
deadline and an extension request, an incident, a webhook subscription). ``mouo-other`` is
kopeysk-go by session, ``other-token`` its API token (which the pages accept too).

* Anonymous callers are sent to the login page (never shown the object); public addresses
  (the login page, the health check, the calendar feed whose token is its credential) aside.
* An outsider (kopeysk-go, the expert) gets 404 for troitsk-go's objects — the same page as for
  an id that does not exist — and no page it is shown mentions troitsk-go's ids, business keys,
  comments or file names.
* A refused form writes nothing (every table compared before and after); the same form sent by
  someone allowed does write, so the refusal is not an accident of bad input.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from engine.clock import VirtualClock
from engine.engine import Engine
from tests.acceptance.conftest import CSRF, Client
from tests.acceptance.test_api import PUBLIC_HOOK, Users, changed_tables, db_state, upload
from tests.acceptance.test_api_access import LOGINS, OUTSIDERS, World, fresh_bpmn
from tests.acceptance.test_ui_work import APPLICATION

CALLERS = ["anonymous", "other-token", "mouo-other", "expert", "mouo-own", "coordinator", "ministry", "admin"]
# Columns of EXPECTED (the anonymous caller is checked separately: the login page, or PUBLIC).
COLUMNS = CALLERS[1:]
BLUEPRINTS = ("ui", "feeds")
MISSING = "0" * 32


# -- callers ----------------------------------------------------------------------------------------------------


@dataclass
class Caller:
    """A browser signed in as one demo user, kopeysk-go's API token, or nobody."""

    name: str
    http: FlaskClient
    headers: dict[str, str] = field(default_factory=dict)
    token: str | None = None

    def get(self, url: str) -> TestResponse:
        return self.http.get(url, headers=self.headers)

    def post(self, url: str, data: dict[str, Any], files: dict[str, Any] | None = None) -> TestResponse:
        payload: dict[str, Any] = dict(data)
        if not self.headers:  # a cookie session (or none): send the CSRF token like our forms do
            if self.token is None:
                page = self.http.get("/profile" if self.name != "anonymous" else "/login")
                found = CSRF.search(page.get_data(as_text=True))
                assert found, f"no CSRF token for {self.name}"
                self.token = found.group(1)
            payload["csrf_token"] = self.token
        if files:
            payload.update(files)
            return self.http.post(url, data=payload, headers=self.headers, content_type="multipart/form-data")
        return self.http.post(url, data=payload, headers=self.headers)


def callers(app: Flask, engine: Engine) -> dict[str, Caller]:
    from engine.directory import SYSTEM_ACTOR

    result = {"anonymous": Caller("anonymous", app.test_client())}
    for role, login in LOGINS.items():
        browser = Client(app.test_client())
        assert browser.login(login).status_code == 302, login
        result[role] = Caller(role, browser.http)
    _, secret = engine.create_token(SYSTEM_ACTOR, f"ui-{uuid.uuid4().hex[:8]}", ["mouo"], "kopeysk-go")
    result["other-token"] = Caller("other-token", app.test_client(), {"Authorization": f"Bearer {secret}"})
    return result


# -- troitsk-go's objects ---------------------------------------------------------------------------------------


class UiWorld(World):
    """The API matrix's world, plus what only the pages show: marked words, a calendar token."""

    def __init__(self, users: Users, engine: Engine, clock: VirtualClock) -> None:
        super().__init__(users, engine, clock)
        own, coordinator = users("troitsk-go"), users("coordinator")
        # An extension granted (troitsk-go is notified of it), then another one asked for.
        url = f"/tasks/{self.day_task}/extension-requests"
        body = {"reason": "Согласование с ОО", "proposed_date": "2026-11-30"}
        granted = own.ok("POST", url, body, status=201)["id"]
        coordinator.ok("POST", f"/extension-requests/{granted}/decision", {"approve": True})
        body = {"reason": "Ещё одно согласование", "proposed_date": "2026-12-01"}
        self.extension = str(own.ok("POST", url, body, status=201)["id"])
        self.webhooks()
        self.mark = f"Тайна-{uuid.uuid4().hex[:8]}"
        own.ok("POST", f"/tasks/{self.task}/comments", {"text": f"Комментарий {self.mark}"}, status=201)
        filename = f"{self.mark}.pdf"
        assert upload(own, self.task, filename).status_code == 201
        troitsk = engine.actor("troitsk-go")
        self.business_key = str(engine.instance(self.contract, troitsk).instance.business_key)
        self.notifications = [n.id for n in engine.notifications(troitsk, unread_only=True, limit=50)]
        assert self.notifications, "troitsk-go has notifications to probe with"
        self.calendar = engine.rotate_calendar_token(troitsk)
        deadline = engine.deadline(self.deadline, troitsk)
        self.deadline_month = f"{deadline.final_date:%Y-%m}"
        assert self.extension and self.subscription
        self.revision_form: dict[str, Any] = {}  # filled in as troitsk-go's task page shows it

    def markers(self) -> set[str]:
        """What of troitsk-go's no outsider may see."""
        return self.private_ids() | {self.mark, self.business_key, *self.notifications}


# -- the pages --------------------------------------------------------------------------------------------------

# Sample addresses for every GET route: those with parameters name troitsk-go's objects.
GET_SAMPLES: dict[str, Callable[[UiWorld], list[str]]] = {
    "ui.inbox": lambda w: ["/", "/?tab=mine", "/?tab=org", "/?tab=approve", "/?tab=overdue"],
    "ui.login": lambda w: ["/login"],
    "ui.profile": lambda w: ["/profile"],
    "ui.notifications": lambda w: ["/notifications", "/notifications?unread=1"],
    "ui.processes": lambda w: ["/processes"],
    "ui.start": lambda w: ["/processes/contract/start"],
    "ui.instances": lambda w: [
        "/instances",
        "/instances?status=incident",
        "/instances?process=contract",
        "/instances?process=day",
    ],
    "ui.instance": lambda w: [f"/instances/{w.contract}", f"/instances/{w.day}", f"/instances/{w.incident}"],
    "ui.task": lambda w: [f"/tasks/{w.task}", f"/tasks/{w.day_task}"],
    "ui.deadlines": lambda w: ["/deadlines", f"/deadlines?month={w.deadline_month}"],
    "ui.overdue": lambda w: [
        "/reports/overdue",
        "/reports/overdue?organisation=troitsk-go",
        "/reports/overdue?format=csv",
        "/reports/overdue?format=xlsx",
        "/reports/overdue?format=csv&organisation=troitsk-go",
    ],
    "ui.members": lambda w: ["/members"],
    "ui.admin": lambda w: ["/admin"],
    "ui.deploy": lambda w: ["/admin/deploy"],
    "ui.users": lambda w: ["/admin/users", "/admin/users?edit=troitsk-go"],
    "ui.tokens": lambda w: ["/admin/tokens"],
    "ui.incidents": lambda w: ["/admin/incidents"],
    "ui.webhooks": lambda w: ["/admin/webhooks"],
    "ui.webhook_sources": lambda w: ["/admin/webhooks/sources"],
    "ui.webhook_messages": lambda w: ["/admin/webhooks/messages"],
    "ui.webhook": lambda w: [f"/admin/webhooks/{w.subscription}"],
    "feeds.healthz": lambda w: ["/healthz"],
    "feeds.calendar_feed": lambda w: [f"/calendar/{w.calendar}.ics"],
}
# Anonymous callers may open these; everything else sends them to the login page.
PUBLIC = {"ui.login", "feeds.healthz", "feeds.calendar_feed"}

# Expected status for: other-token, mouo-other, expert, mouo-own, coordinator, ministry, admin.
# As engine/access.py intends: the Ministry and the coordinator see every case but open a МОУО's
# task only when their role is among its candidates; administrators see everything; a МОУО sees its
# own; the administration pages are for administrators only; the calendar feed's token is its
# own credential, whoever sends it.
EXPECTED: dict[str, str] = {
    "ui.inbox": "200 200 200 200 200 200 200",
    "ui.login": "302 302 302 302 302 302 302",
    "ui.profile": "404 200 200 200 200 200 200",
    "ui.notifications": "200 200 200 200 200 200 200",
    "ui.processes": "200 200 200 200 200 200 200",
    "ui.start": "200 200 302 200 302 302 302",
    "ui.instances": "200 200 200 200 200 200 200",
    "ui.instance": "404 404 404 200 200 200 200",
    "ui.task": "404 404 404 200 404 404 200",
    "ui.deadlines": "200 200 200 200 200 200 200",
    "ui.overdue": "200 200 200 200 200 200 200",
    "ui.members": "200 200 200 200 200 200 200",
    "ui.admin": "403 403 403 403 403 403 200",
    "ui.deploy": "403 403 403 403 403 403 200",
    "ui.users": "403 403 403 403 403 403 200",
    "ui.tokens": "403 403 403 403 403 403 200",
    "ui.incidents": "403 403 403 403 403 403 200",
    "ui.webhooks": "403 403 403 403 403 403 200",
    "ui.webhook_sources": "403 403 403 403 403 403 200",
    "ui.webhook_messages": "403 403 403 403 403 403 200",
    "ui.webhook": "403 403 403 403 403 403 200",
    "feeds.healthz": "200 200 200 200 200 200 200",
    "feeds.calendar_feed": "200 200 200 200 200 200 200",
}
# Pages an outsider is shown that show troitsk-go's objects by design: the calendar feed behind
# troitsk-go's own secret URL (whoever holds the URL is troitsk-go for it).
LEAK_EXEMPT = {"feeds.calendar_feed"}


# -- the forms --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Form:
    """One POST route: its address and fields on the world's objects, and who may send it."""

    path: Callable[[UiWorld], str]
    allowed: tuple[str, ...]  # callers for whom it is carried out; everyone else is refused
    data: Callable[[UiWorld], dict[str, Any]] = lambda w: {}
    files: Callable[[], dict[str, Any]] | None = None
    prepare: Callable[[UiWorld, dict[str, Caller]], None] | None = None


def _claim(world: UiWorld, who: dict[str, Caller]) -> None:
    world.claim()


def _revision(world: UiWorld) -> dict[str, Any]:
    """The fields of the revision form (the application again, with a note)."""
    return dict(world.revision_form)


def _read_revision_form(world: UiWorld, who: dict[str, Caller]) -> None:
    page = who["mouo-own"].get(f"/tasks/{world.task}").get_data(as_text=True)
    assert f'action="/tasks/{world.task}/complete"' in page, "troitsk-go is shown the form"
    data: dict[str, Any] = {k: v for k, v in APPLICATION.items() if k != "business_key"}
    data["revision_note"] = "Срок договора уточнён"
    world.revision_form = data


def _decide_pending(world: UiWorld, who: dict[str, Caller]) -> None:
    """No request pending on the Day's deadline, so that troitsk-go may ask for one."""
    world.engine.decide_extension(str(world.extension), world.engine.actor("coordinator"), False, "Нет", None)


ADMIN = ("admin",)
FORMS: dict[str, Form] = {
    "ui.claim": Form(lambda w: f"/tasks/{w.task}/claim", ("mouo-own",)),
    "ui.unclaim": Form(lambda w: f"/tasks/{w.task}/unclaim", ("mouo-own", "admin"), prepare=_claim),
    "ui.complete": Form(lambda w: f"/tasks/{w.task}/complete", ("mouo-own",), _revision, prepare=_read_revision_form),
    "ui.comment": Form(
        lambda w: f"/tasks/{w.task}/comments",
        ("mouo-own", "coordinator", "ministry", "admin"),
        lambda w: {"text": "Чужой комментарий"},
    ),
    "ui.attach": Form(
        lambda w: f"/tasks/{w.task}/attachments",
        ("mouo-own",),
        files=lambda: {"file": (io.BytesIO(b"%PDF-1.4\n%%EOF\n"), "Чужой.pdf", "application/pdf")},
    ),
    "ui.request_extension": Form(
        lambda w: f"/tasks/{w.day_task}/extension",
        ("mouo-own",),
        lambda w: {"reason": "Нужно больше времени", "proposed_date": "2026-12-30"},
        prepare=_decide_pending,
    ),
    "ui.decide_extension": Form(
        lambda w: f"/extension-requests/{w.extension}/decide",
        ("coordinator", "admin"),
        lambda w: {"decision": "approve", "comment": "Согласовано"},
    ),
    "ui.cancel": Form(
        lambda w: f"/instances/{w.contract}/cancel", ("mouo-own", "coordinator", "admin"), lambda w: {"reason": "x"}
    ),
    "ui.retry": Form(lambda w: f"/instances/{w.incident}/retry", ("coordinator", "admin")),
    "ui.move_dates": Form(
        lambda w: f"/instances/{w.contract}/dates",
        ("coordinator", "ministry", "admin"),
        lambda w: {"var:term_until": "2028-01-31"},
    ),
    "ui.start": Form(
        lambda w: "/processes/contract/start",
        ("mouo-own", "mouo-other", "other-token"),
        lambda w: {
            "directions": ["msoko"],
            "aspects": "Оценка качества образования",
            "contact.name": "Иванова Анна Петровна",
            "contact.email": "ivanova@troitsk.example",
            "contact.phone": "+7 (35163) 2-00-00",
            "term_until": "2027-12-31",
        },
    ),
    "ui.notifications": Form(
        lambda w: "/notifications", ("mouo-own",), lambda w: {"id": list(w.notifications)}
    ),  # marks troitsk-go's notifications read: only troitsk-go can
    "ui.profile": Form(
        lambda w: "/profile",
        tuple(LOGINS),
        lambda w: {"action": "calendar"},
    ),
    "ui.deploy": Form(
        lambda w: "/admin/deploy", ADMIN, files=lambda: {"file": (io.BytesIO(fresh_bpmn()), "probe.bpmn")}
    ),
    "ui.users": Form(
        lambda w: "/admin/users",
        ADMIN,
        lambda w: {
            "mode": "create",
            "login": f"user-{uuid.uuid4().hex[:8]}",
            "name": "Новый пользователь",
            "organisation": "kopeysk-go",
            "roles": ["mouo"],
            "password": "a-long-enough-password-1",
        },
    ),
    "ui.tokens": Form(
        lambda w: "/admin/tokens",
        ADMIN,
        lambda w: {"name": f"probe-{uuid.uuid4().hex[:6]}", "roles": ["coordinator"], "organisation": "rcoko"},
    ),
    "ui.webhooks": Form(
        lambda w: "/admin/webhooks", ADMIN, lambda w: {"url": PUBLIC_HOOK, "event_types": ["task.created"]}
    ),
    "ui.webhook_sources": Form(
        lambda w: "/admin/webhooks/sources", ADMIN, lambda w: {"action": "add", "name": f"src-{uuid.uuid4().hex[:6]}"}
    ),
    "ui.webhook": Form(lambda w: f"/admin/webhooks/{w.subscription}", ADMIN, lambda w: {"action": "disable"}),
}
# POST routes that act on no one's objects but the caller's own session (test_ui.py covers them).
SESSION_ROUTES = {"ui.login", "ui.logout"}


# -- the routes -------------------------------------------------------------------------------------------------


def routes(app: Flask, method: str) -> dict[str, str]:
    """endpoint → rule of the UI's and the feeds' routes answering ``method``."""
    found = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".", 1)[0] in BLUEPRINTS and method in (rule.methods or set()):
            found[rule.endpoint] = rule.rule
    return found


def test_every_ui_route_has_samples_expectations_and_forms(app: Flask) -> None:
    gets = routes(app, "GET")
    unsampled = sorted(f"{e} ({r})" for e, r in gets.items() if e not in GET_SAMPLES)
    assert not unsampled, (
        "GET routes without sample addresses in GET_SAMPLES (give ids of troitsk-go's objects for "
        f"their parameters) and a row in EXPECTED: {unsampled}"
    )
    assert set(EXPECTED) == set(GET_SAMPLES), "EXPECTED and GET_SAMPLES name the same routes"
    assert not set(GET_SAMPLES) - set(gets), f"samples for routes that no longer exist: {set(GET_SAMPLES) - set(gets)}"
    assert all(len(row.split()) == len(COLUMNS) for row in EXPECTED.values())
    posts = routes(app, "POST")
    missing = sorted(f"{e} ({r})" for e, r in posts.items() if e not in FORMS and e not in SESSION_ROUTES)
    assert not missing, f"POST routes without a probe in FORMS: {missing}"
    assert not set(FORMS) - set(posts), f"probes for routes that no longer exist: {set(FORMS) - set(posts)}"


# -- pages × callers --------------------------------------------------------------------------------------------


def _expected(endpoint: str, caller: str) -> int:
    if caller == "anonymous":
        return 200 if endpoint in PUBLIC else 302
    return int(dict(zip(COLUMNS, EXPECTED[endpoint].split(), strict=True))[caller])


def _body(response: TestResponse) -> str:
    if (response.mimetype or "").endswith("spreadsheetml.sheet"):
        import zipfile

        with zipfile.ZipFile(io.BytesIO(response.get_data())) as book:
            return "\n".join(book.read(n).decode("utf-8", "replace") for n in book.namelist())
    return response.get_data(as_text=True)


def _without_csrf(text: str) -> str:
    return re.sub(r'(name="csrf[-_]token" (?:content|value)=)"[^"]+"', r'\1""', text)


def _is_login_redirect(response: TestResponse) -> bool:
    return response.status_code == 302 and (response.location or "").split("?", 1)[0].endswith("/login")


@pytest.fixture
def ui_world(app: Flask, web_engine: Engine, clock: VirtualClock) -> UiWorld:
    return UiWorld(Users(app), web_engine, clock)


def test_pages_by_every_caller(app: Flask, web_engine: Engine, ui_world: UiWorld) -> None:
    """Every GET route × every caller: the expected status, the login page for anonymous callers,
    a hidden object looks like a missing one, no outsider sees troitsk-go's objects, nothing written."""
    world = ui_world
    who = callers(app, web_engine)
    markers = world.markers()
    gets = routes(app, "GET")
    before = db_state(web_engine)
    problems: list[str] = []
    probes = 0
    shown_to_insiders: set[str] = set()
    for endpoint in sorted(gets):
        for url in GET_SAMPLES[endpoint](world):
            for name in CALLERS:
                probes += 1
                response = who[name].get(url)
                want, got = _expected(endpoint, name), response.status_code
                where = f"GET {url} as {name}"
                if got != want:
                    problems.append(f"{where}: {got}, expected {want}: {_body(response)[:300]}")
                    continue
                if name == "anonymous" and endpoint not in PUBLIC and not _is_login_redirect(response):
                    problems.append(f"{where}: redirected to {response.location}, not to the login page")
                body = _body(response)
                if name in ("mouo-own", "admin"):
                    shown_to_insiders |= {m for m in markers if m in body and m not in url}
                hidden = next((i for i in world.private_ids() if i in url), None)
                if got == 404 and hidden is not None:  # (asked twice: the first may carry an earlier flash)
                    missing = _without_csrf(_body(who[name].get(url.replace(hidden, MISSING))))
                    again = _without_csrf(_body(who[name].get(url)))
                    if missing.replace(MISSING, hidden) != again:
                        problems.append(f"{where}: the page for a hidden object differs from a missing one")
                if name in OUTSIDERS and endpoint not in LEAK_EXEMPT:
                    leaked = sorted(m for m in markers if m in body and m not in url)
                    if leaked:
                        problems.append(f"{where} ({got}): shows troitsk-go's {leaked}")
    changed = changed_tables(before, db_state(web_engine))
    # The words looked for are ones the pages do show to those who may see them.
    shown = {world.mark, world.business_key, world.contract, world.task, world.day, world.day_task, world.incident}
    assert shown <= shown_to_insiders, f"never shown even to troitsk-go or admin: {shown - shown_to_insiders}"
    assert not problems, f"{len(problems)} of {probes} probes:\n" + "\n".join(problems)
    assert changed == [], f"reading pages wrote to {changed}"


# -- forms × callers --------------------------------------------------------------------------------------------

REFUSED = {302, 400, 403, 404, 409, 422}


@pytest.mark.parametrize(
    "group",
    [
        ("ui.claim", "ui.unclaim", "ui.complete", "ui.comment", "ui.attach"),
        ("ui.request_extension", "ui.decide_extension", "ui.notifications", "ui.profile", "ui.start"),
        ("ui.cancel", "ui.retry", "ui.move_dates"),
        ("ui.deploy", "ui.users", "ui.tokens", "ui.webhooks", "ui.webhook_sources", "ui.webhook"),
    ],
    ids=["tasks", "deadlines-account", "cases", "administration"],
)
def test_refused_forms_write_nothing(
    group: tuple[str, ...], app: Flask, web_engine: Engine, clock: VirtualClock
) -> None:
    """Each form sent by everyone it is not for (with a valid CSRF token): refused and nothing written;
    then by one it is for: written. A fresh world for each form, since a success may use it up."""
    problems: list[str] = []
    for endpoint in group:
        form = FORMS[endpoint]
        world = UiWorld(Users(app), web_engine, clock)
        who = callers(app, web_engine)
        if form.prepare:
            form.prepare(world, who)
        url = form.path(world)
        for name in CALLERS:
            if name in form.allowed:
                continue
            before = db_state(web_engine)
            response = who[name].post(url, form.data(world), form.files() if form.files else None)
            where = f"POST {url} ({endpoint}) as {name}"
            if response.status_code not in REFUSED:
                problems.append(f"{where}: {response.status_code}")
            if name == "anonymous" and not _is_login_redirect(response):
                # Straight to the login page: not back to the form with a message about a password.
                problems.append(f"{where}: {response.status_code} {response.location}, not to the login page")
            changed = changed_tables(before, db_state(web_engine))
            if changed:
                problems.append(f"{where}: refused with {response.status_code} but wrote to {changed}")
            if name in OUTSIDERS:
                body = _body(response)
                leaked = sorted(m for m in world.markers() if m in body and m not in url)
                if leaked:
                    problems.append(f"{where}: shows troitsk-go's {leaked}")
        allowed = form.allowed[0]
        before = db_state(web_engine)
        response = who[allowed].post(url, form.data(world), form.files() if form.files else None)
        if not changed_tables(before, db_state(web_engine)):
            problems.append(f"POST {url} ({endpoint}) as {allowed}, who may: nothing written ({response.status_code})")
    assert not problems, "\n".join(problems)


def test_the_calendar_feed_shows_only_its_owners_deadlines(app: Flask, web_engine: Engine, ui_world: UiWorld) -> None:
    """The feed's secret is its only credential: troitsk-go's URL shows its deadline to whoever has it,
    kopeysk-go's own URL never shows troitsk-go's, and a made-up or rotated-away secret shows nothing."""
    anonymous = app.test_client()
    own = anonymous.get(f"/calendar/{ui_world.calendar}.ics")
    assert own.status_code == 200 and ui_world.deadline in own.get_data(as_text=True)
    other = anonymous.get(f"/calendar/{web_engine.rotate_calendar_token(web_engine.actor('kopeysk-go'))}.ics")
    assert other.status_code == 200 and other.mimetype == "text/calendar"
    assert not [m for m in ui_world.markers() if m in other.get_data(as_text=True)]
    old = ui_world.calendar
    web_engine.rotate_calendar_token(web_engine.actor("troitsk-go"))
    for secret in (old, "agc_" + "x" * 40, MISSING):
        refused = anonymous.get(f"/calendar/{secret}.ics")
        assert refused.status_code in (302, 401, 403, 404), (secret, refused.status_code)
        assert ui_world.deadline not in refused.get_data(as_text=True)
