"""The REST API under /api/v1, operation by operation, as its clients use it.

Every test names the operations it exercises with :func:`covers`; the test fails unless each of
them answered with a 2xx at least once, and :func:`test_every_operation_has_a_functional_test`
fails when an operation of the registry has no test. Bad input must give a clear 4xx and write
nothing: :func:`db_state` fingerprints every table before and after.

The helpers here (callers, the demo scenario builders, :func:`db_state`) are shared with
``test_api_access.py``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask, request_finished
from flask import request as flask_request
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from engine.clock import VirtualClock
from engine.engine import Engine
from engine.records import TaskQuery
from engine.settings import Settings
from tests.acceptance.conftest import DEMO_PASSWORD, Client, offline_resolver
from tests.bpmn import document, flows, user_task
from tests.conftest import COORDINATOR, TROITSK
from webhooks import signing, ssrf
from webhooks.http import HttpResult

API = "/api/v1"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
PROBLEM = "application/problem+json"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

APPLICATION: dict[str, Any] = {
    "directions": ["msoko", "model_documents"],
    "aspects": "Развитие муниципальной системы оценки качества образования",
    "contact": {"name": "Иванова Анна Петровна", "email": "ivanova@troitsk.example"},
    "term_until": "2026-12-31",
}
REVISION = {**APPLICATION, "term_until": "2027-12-31", "revision_note": "Срок договора уточнён"}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

# A process whose three parallel tasks differ in name, priority and due date (for sorting).
SORTING = document(
    '<bpmn:startEvent id="start"/>'
    '<bpmn:parallelGateway id="fork"/>'
    + user_task(
        "t_beta", "Бета", 'camunda:candidateGroups="coordinator" camunda:priority="10" camunda:dueDate="2026-03-20"'
    )
    + user_task(
        "t_alpha", "Альфа", 'camunda:candidateGroups="coordinator" camunda:priority="90" camunda:dueDate="2026-03-25"'
    )
    + user_task("t_gamma", "Гамма", 'camunda:candidateGroups="coordinator" camunda:priority="50"')
    + '<bpmn:parallelGateway id="join"/><bpmn:endEvent id="end"/>'
    + flows("start", "fork")
    + flows("fork", "t_beta", "join", prefix="b")
    + flows("fork", "t_alpha", "join", prefix="a")
    + flows("fork", "t_gamma", "join", prefix="g")
    + flows("join", "end"),
    "api-sorting",
    name="Сортировка задач",
    attrs='camunda:candidateStarterGroups="coordinator"',
)

# A timer, then a script that divides by ``divisor``: with 0 the instance falls into an incident.
SCRIPTED = document(
    '<bpmn:startEvent id="start"/>'
    '<bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition><bpmn:timeDuration>PT5M'
    "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
    '<bpmn:scriptTask id="calc" scriptFormat="python"><bpmn:script>share = 100 / divisor</bpmn:script>'
    "</bpmn:scriptTask>"
    + user_task("use", "Использовать долю", 'camunda:candidateGroups="coordinator"')
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "wait", "calc", "use", "end"),
    "api-scripted",
    attrs='camunda:candidateStarterGroups="mouo,coordinator"',
)

# A sequence flow to nowhere (line 6) and a script with an import (line 7).
BROKEN = document(
    '<bpmn:startEvent id="start"/>\n'
    + user_task("t1", "T", 'camunda:candidateGroups="coordinator"')
    + '\n<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="nowhere"/>\n'
    '<bpmn:scriptTask id="s" scriptFormat="python"><bpmn:script>import os</bpmn:script></bpmn:scriptTask>',
    "api-broken",
)

XXE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE definitions [<!ENTITY secret SYSTEM "file:///etc/passwd">]>\n'
    b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">'
    b'<bpmn:process id="xxe" isExecutable="true"><bpmn:documentation>&secret;</bpmn:documentation>'
    b'<bpmn:startEvent id="s"/></bpmn:process></bpmn:definitions>'
)


# -- callers --------------------------------------------------------------------------------------


class Caller:
    """Calls the API as one client: a logged-in browser session (sending the CSRF header like our
    pages do), a bearer token, or nobody. Paths are relative to /api/v1 unless they start with /api/."""

    def __init__(self, http: FlaskClient, *, csrf: str | None = None, token: str | None = None, name: str = "") -> None:
        self.http = http
        self.csrf = csrf
        self.token = token
        self.name = name

    @classmethod
    def session(cls, app: Flask, login: str, password: str = DEMO_PASSWORD) -> Caller:
        browser = Client(app.test_client())
        response = browser.login(login, password)
        assert response.status_code == 302, (login, response.status_code)
        return cls(browser.http, csrf=browser.csrf(), name=login)

    def __call__(self, method: str, url: str, json: Any = None, **kw: Any) -> TestResponse:
        headers = dict(kw.pop("headers", None) or {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        if self.csrf and method.upper() in UNSAFE:
            headers.setdefault("X-CSRF-Token", self.csrf)
        target = url if url.startswith(("/api/", "http")) else API + url
        return self.http.open(target, method=method.upper(), json=json, headers=headers, **kw)

    def ok(self, method: str, url: str, json: Any = None, status: int = 200, **kw: Any) -> Any:
        """Call and insist on ``status``; the JSON body."""
        response = self(method, url, json, **kw)
        assert response.status_code == status, (self.name, method, url, response.status_code, response.get_data()[:800])
        return response.json

    def get(self, url: str, **kw: Any) -> Any:
        return self.ok("GET", url, **kw)


class Users:
    """``users("troitsk-go")``: that demo user's session, logged in once per test."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._sessions: dict[str, Caller] = {}

    def __call__(self, login: str) -> Caller:
        if login not in self._sessions:
            self._sessions[login] = Caller.session(self.app, login)
        return self._sessions[login]

    def forget(self) -> None:
        """Drop the sessions (after the clock jumped past the idle limit they have ended anyway)."""
        self._sessions.clear()

    def anonymous(self) -> Caller:
        return Caller(self.app.test_client(), name="anonymous")

    def bearer(self, engine: Engine, roles: list[str], organisation: str) -> Caller:
        from engine.directory import SYSTEM_ACTOR

        name = f"t-{uuid.uuid4().hex[:8]}"
        _, secret = engine.create_token(SYSTEM_ACTOR, name, roles, organisation)
        return Caller(self.app.test_client(), token=secret, name=f"api:{name}")


@pytest.fixture
def users(app: Flask) -> Users:
    return Users(app)


# -- what was written ---------------------------------------------------------------------------------

# Written by reading or authenticating, not by the operation under test.
_IGNORED_TABLES = {"login_attempts"}
_VOLATILE = {"api_tokens": {"last_used_at"}}


def db_state(engine: Engine) -> dict[str, tuple[int, str]]:
    """Every table's row count and a digest of its rows: equal before and after means nothing was written."""
    from storage.tables import metadata

    state: dict[str, tuple[int, str]] = {}
    database = engine.store.engine  # type: ignore[attr-defined]
    with database.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in _IGNORED_TABLES:
                continue
            columns = [c for c in table.columns if c.name not in _VOLATILE.get(table.name, set())]
            rows = sorted(repr(tuple(row)) for row in conn.execute(select(*columns)))
            state[table.name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16])
    return state


def changed_tables(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> list[str]:
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def problem(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """Insist on an RFC 9457 problem document with this status (and code); return it."""
    assert response.status_code == status, (response.status_code, response.get_data()[:800])
    assert response.mimetype == PROBLEM, response.mimetype
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    assert body["status"] == status and body["title"] and body["detail"], body
    if code is not None:
        assert body["code"] == code, body
    return body


def fields_of(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body.get("errors", [])}


# -- scenario builders --------------------------------------------------------------------------------


def start_contract(mouo: Caller, business_key: str | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"variables": {**APPLICATION, **changes}}
    if business_key:
        body["business_key"] = business_key
    result: dict[str, Any] = mouo.ok("POST", "/processes/contract/start", body, status=201)
    return result


def start_day(
    ministry: Caller, day_date: str = "2026-06-01", members: tuple[str, ...] = ("troitsk-go",)
) -> dict[str, Any]:
    variables = {
        "day_date": day_date,
        "day_place": "Троицк, МОУ СОШ № 1",
        "day_form": "in_person",
        "day_order_number": "01/123",
        "day_order_date": "2026-03-01",
        "members": list(members),
    }
    result: dict[str, Any] = ministry.ok("POST", "/processes/day/start", {"variables": variables}, status=201)
    return result


def open_task(call: Caller, instance_id: str, element_id: str) -> dict[str, Any]:
    page = call.get(f"/tasks?instance_id={instance_id}&per_page=200")
    found = [t for t in page["items"] if t["element_id"] == element_id]
    assert len(found) == 1, (element_id, [t["element_id"] for t in page["items"]])
    return found[0]


def return_for_revision(coordinator: Caller, mouo: Caller, instance_id: str) -> str:
    """The coordinator returns the application; the id of the МОУО's revision task."""
    review = open_task(coordinator, instance_id, "Task_ReviewApplication")
    coordinator.ok(
        "POST",
        f"/tasks/{review['id']}/complete",
        {"data": {"review_decision": "return", "review_comment": "Уточните срок договора"}},
    )
    return str(open_task(mouo, instance_id, "Task_ReviseApplication")["id"])


def upload(
    call: Caller,
    task_id: str,
    filename: str = "Заявка.pdf",
    content: bytes = PDF,
    content_type: str = "application/pdf",
) -> TestResponse:
    return call(
        "POST",
        f"/tasks/{task_id}/attachments",
        data={"file": (io.BytesIO(content), filename, content_type)},
        content_type="multipart/form-data",
    )


def deploy(call: Caller, source: bytes, filename: str = "process.bpmn", **resources: bytes) -> TestResponse:
    data: dict[str, Any] = {"file": (io.BytesIO(source), filename)}
    if resources:
        data["resources"] = [(io.BytesIO(content), name) for name, content in resources.items()]
    return call("POST", "/definitions", data=data, content_type="multipart/form-data")


def into_incident(admin: Caller, starter: Caller, engine: Engine, clock: VirtualClock) -> str:
    """An instance ``starter`` started whose background step failed."""
    assert deploy(admin, SCRIPTED, "scripted.bpmn").status_code in (200, 201)
    iid = str(starter.ok("POST", "/processes/api-scripted/start", {"variables": {"divisor": 0}}, status=201)["id"])
    clock.advance(timedelta(minutes=6))
    engine.fire_timers(iid)
    assert admin.get(f"/instances/{iid}")["status"] == "incident"
    return iid


REGISTERED = {"contract_number": "ПД-17/2026", "contract_date": "2026-03-11"}
TO_REGISTRATION = [
    (COORDINATOR, "Task_ReviewApplication", {"review_decision": "accept"}),
    (COORDINATOR, "Task_PrepareContract", {"contract_subject": "Развитие МСОКО Троицкого городского округа"}),
    (TROITSK, "Task_SignMouo", {"mouo_signatory": "Петров П.П.", "mouo_signed_on": "2026-03-06"}),
    (COORDINATOR, "Task_SignCoordinator", {"coordinator_signatory": "Директор", "coordinator_signed_on": "2026-03-10"}),
]


def to_registration(engine: Engine, business_key: str) -> str:
    """A troitsk-go contract, driven through the engine to its registration (where it waits for
    the document system's ``contract.registered`` message)."""
    iid = engine.start("contract", TROITSK, APPLICATION, business_key=business_key).instance.id
    for actor, element_id, data in TO_REGISTRATION:
        [task] = [v.task for v in engine.tasks(actor, TaskQuery(instance_id=iid)) if v.task.element_id == element_id]
        engine.complete(task.id, actor, data)
    assert engine.instance(iid, COORDINATOR).instance.waiting_messages == ("contract.registered",)
    return iid


class FakeReceiver:
    """A webhook receiver for :func:`send_webhooks` without a network: records each request and
    answers with the next of ``statuses`` (the last one repeats)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses or (200,))
        self.got: list[tuple[str, dict[str, str], bytes]] = []  # (path, headers, body)

    def __call__(self, target: ssrf.Target, body: bytes, headers: dict[str, str], timeout: float) -> HttpResult:
        self.got.append((target.path, headers, body))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return HttpResult(status, 1.5, "ok" if status < 300 else "busy")

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, body in self.got]


class LoopbackReceiver:
    """A real HTTP receiver on 127.0.0.1 (reach it as http://localhost:<port>/… with localhost allowed)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses or (200,))
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                reply = b"ok" if status < 300 else b"busy"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackReceiver:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def send_webhooks(engine: Engine, sender: Any = None, settings: Settings | None = None) -> None:
    """The worker's two webhook sweeps: outbox events to deliveries, then send what is due."""
    from webhooks import outbound

    outbound.dispatch(engine.store, engine.clock, "test-worker")
    extra = {"sender": sender} if sender is not None else {}
    outbound.deliver(
        engine.store, engine.clock, settings or engine.settings, "test-worker", resolver=offline_resolver, **extra
    )


# -- every operation has a test ------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def covers(*operation_ids: str) -> Callable[[F], F]:
    """Declare the operations a test exercises; each must answer 2xx at least once during the test."""

    def mark(test: F) -> F:
        test.covers = frozenset(operation_ids)  # type: ignore[attr-defined]
        return test

    return mark


@pytest.fixture(autouse=True)
def _declared_operations_answered(request: pytest.FixtureRequest) -> Iterator[None]:
    declared: frozenset[str] = getattr(request.function, "covers", frozenset())
    if not declared:
        yield
        return
    app: Flask = request.getfixturevalue("app")
    answered: set[str] = set()

    def record(sender: Flask, response: Any, **extra: Any) -> None:
        endpoint = flask_request.endpoint or ""
        if endpoint.startswith("api.") and 200 <= response.status_code < 300:
            answered.add(endpoint.removeprefix("api."))

    failed_before = request.session.testsfailed
    request_finished.connect(record, app)
    yield
    request_finished.disconnect(record, app)
    if request.session.testsfailed > failed_before:
        return  # the test itself failed: that is the report
    assert declared <= answered, f"declared but never answered with a 2xx: {sorted(declared - answered)}"


def test_every_operation_has_a_functional_test() -> None:
    from web.api import create_api

    registered = {op.operation_id for op in create_api().operations}
    declared: set[str] = set()
    for name, value in globals().items():
        if name.startswith("test_") and callable(value):
            declared |= getattr(value, "covers", frozenset())
    assert sorted(registered - declared) == [], "operations without a functional test"
    assert sorted(declared - registered) == [], "tests declare operations that do not exist"


# -- meta --------------------------------------------------------------------------------------------


@covers("openapi")
def test_the_openapi_document_describes_every_operation(users: Users, app: Flask) -> None:
    response = users.anonymous()("GET", "/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    doc = response.json
    assert doc["openapi"] == "3.1.0" and doc["servers"][0]["url"].endswith("/api/v1")
    for op in app.extensions["agglo.api"].operations:
        entry = doc["paths"][op.path][op.method.lower()]
        assert entry["operationId"] == op.operation_id
        if op.public:
            assert entry["security"] == []
        else:
            assert {"400", "401", "403"} <= set(entry["responses"]), op.operation_id
        if op.path_params:
            assert "404" in entry["responses"], op.operation_id
    assert set(doc["components"]["schemas"]) >= {"Problem", "Task", "InstanceDetail", "Deadline", "Attachment"}


def test_unknown_addresses_and_methods_are_problems(users: Users) -> None:
    admin = users("admin")
    problem(admin("GET", "/no-such-thing"), 404, "not_found")
    response = admin("PUT", "/tasks")
    problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
    problem(users.anonymous()("GET", "/tasks"), 401, "not_authenticated")


def test_cookie_sessions_need_the_csrf_header_for_unsafe_methods(users: Users, web_engine: Engine) -> None:
    troitsk = users("troitsk-go")
    before = db_state(web_engine)
    body = {"variables": APPLICATION}
    for headers in ({"X-CSRF-Token": ""}, {"X-CSRF-Token": "forged-token-forged-token"}):
        problem(troitsk("POST", "/processes/contract/start", body, headers=headers), 403, "csrf_failed")
    assert changed_tables(before, db_state(web_engine)) == []
    assert troitsk("POST", "/processes/contract/start", body).status_code == 201
    # A bearer token needs no CSRF token: browsers never send that header on their own.
    machine = users.bearer(web_engine, ["mouo"], "troitsk-go")
    assert machine("POST", "/processes/contract/start", body).status_code == 201


# -- definitions ---------------------------------------------------------------------------------------


@covers("deploy", "list_definitions", "get_definition", "get_definition_xml")
def test_deploy_list_and_read_definitions(users: Users, web_engine: Engine) -> None:
    admin = users("admin")
    first = deploy(admin, SORTING, "sorting.bpmn")
    assert first.status_code == 201, first.json
    deployed = first.json
    assert deployed["created"] is True and deployed["deployed_by"] == "admin" and deployed["filename"] == "sorting.bpmn"
    [definition] = deployed["definitions"]
    assert definition["key"] == "api-sorting" and definition["version"] == 1
    assert first.headers["Location"] == f"{API}/definitions/{definition['id']}"

    again = deploy(admin, SORTING, "sorting.bpmn")
    assert again.status_code == 200 and again.json["created"] is False
    assert [d["id"] for d in again.json["definitions"]] == [definition["id"]]

    renamed = SORTING.replace("Сортировка задач".encode(), "Сортировка задач, версия 2".encode())
    second = deploy(admin, renamed, "sorting.bpmn")
    assert second.status_code == 201 and second.json["definitions"][0]["version"] == 2

    before = db_state(web_engine)
    broken = problem(deploy(admin, BROKEN, "broken.bpmn"), 422, "definition_invalid")
    assert {(e["field"], e["line"], e["file"]) for e in broken["errors"]} == {
        ("f1", 6, "broken.bpmn"),
        ("s", 7, "broken.bpmn"),
    }
    assert "nowhere" in broken["detail"]
    xxe = problem(deploy(admin, XXE, "xxe.bpmn"), 422, "unsafe_xml")
    assert "root:x:0" not in str(xxe) and xxe["errors"][0]["line"] == 2
    problem(deploy(admin, b"x" * (2 * 1024 * 1024), "huge.bpmn"), 413)
    problem(admin("POST", "/definitions", {"file": "<definitions/>"}), 415, "unsupported_type")
    missing = problem(admin("POST", "/definitions", data={}, content_type="multipart/form-data"), 400)
    assert fields_of(missing) == {"file"}
    problem(deploy(users("coordinator"), renamed + b" ", "sorting.bpmn"), 403, "not_permitted")
    assert changed_tables(before, db_state(web_engine)) == []

    latest = admin.get("/definitions?key=api-sorting")
    assert latest["total"] == 1 and [d["version"] for d in latest["items"]] == [2]
    every = admin.get("/definitions?key=api-sorting&all_versions=true")
    assert every["total"] == 2 and [d["version"] for d in every["items"]] == [2, 1]
    paged = admin.get("/definitions?all_versions=true&per_page=2&page=2")
    assert paged["total"] == 5 and paged["page"] == 2 and paged["per_page"] == 2 and len(paged["items"]) == 2
    everything = admin.get("/definitions?all_versions=true&per_page=200")["items"]
    assert paged["items"] == everything[2:4]
    assert {d["key"] for d in users("troitsk-go").get("/definitions")["items"]} == {
        "annual-results",
        "contract",
        "day",
        "api-sorting",
    }

    detail = users("coordinator").get(f"/definitions/{definition['id']}")
    assert detail["key"] == "api-sorting" and detail["startable"] is True and detail["start_form"] is None
    names = {e["id"]: e["name"] for e in detail["elements"] if e["kind"] == "userTask"}
    assert names == {"t_alpha": "Альфа", "t_beta": "Бета", "t_gamma": "Гамма"}
    assert users("troitsk-go").get(f"/definitions/{definition['id']}")["startable"] is False
    contract = admin.get("/definitions?key=contract")["items"][0]
    contract_detail = users("troitsk-go").get(f"/definitions/{contract['id']}")
    assert contract_detail["startable"] is True and contract_detail["start_form"]["required"]

    xml = admin("GET", f"/definitions/{definition['id']}/xml")
    assert xml.status_code == 200 and xml.mimetype == "application/xml" and xml.data == SORTING
    problem(admin("GET", "/definitions/no-such-definition"), 404, "not_found")
    problem(admin("GET", "/definitions/no-such-definition/xml"), 404, "not_found")


# -- instances -----------------------------------------------------------------------------------------


@covers("start_process")
def test_start_a_process(users: Users, web_engine: Engine) -> None:
    troitsk = users("troitsk-go")
    before = db_state(web_engine)
    bad = problem(
        troitsk(
            "POST",
            "/processes/contract/start",
            {"variables": {"directions": [], "aspects": 5, "contact": {"name": "И"}, "term_until": "скоро", "x": 1}},
        ),
        422,
        "form_invalid",
    )
    assert fields_of(bad) == {"directions", "aspects", "contact.name", "contact.email", "term_until", "x"}
    missing = problem(troitsk("POST", "/processes/contract/start", {"variables": {}}), 422, "form_invalid")
    assert fields_of(missing) == {"directions", "aspects", "contact", "term_until"}
    problem(troitsk("POST", "/processes/no-such-process/start", {"variables": APPLICATION}), 404, "not_found")
    problem(users("coordinator")("POST", "/processes/contract/start", {"variables": APPLICATION}), 403)
    wrong = problem(troitsk("POST", "/processes/contract/start", {"variables": [], "business_key": ""}), 400)
    assert fields_of(wrong) == {"variables", "business_key"}
    assert changed_tables(before, db_state(web_engine)) == []

    response = troitsk("POST", "/processes/contract/start", {"variables": APPLICATION, "business_key": "troitsk-2026"})
    assert response.status_code == 201
    started = response.json
    assert response.headers["Location"] == f"{API}/instances/{started['id']}"
    assert started["organisation"] == "troitsk-go" and started["started_by"] == "troitsk-go"
    assert started["business_key"] == "troitsk-2026" and started["status"] == "running" and started["version"] == 1
    assert started["variables"]["contact"] == APPLICATION["contact"]
    assert [t["element_id"] for t in started["tasks"]] == ["Task_ReviewApplication"]
    history = troitsk.get(f"/instances/{started['id']}")["history"]
    assert [h["action"] for h in history][:2] == ["instance.started", "element.completed"]


@covers("list_instances")
def test_list_instances_with_filters_and_paging(users: Users, clock: VirtualClock) -> None:
    troitsk, kopeysk, admin = users("troitsk-go"), users("kopeysk-go"), users("admin")
    ids = []
    for n in (1, 2, 3):
        ids.append(start_contract(troitsk, f"troitsk-{n}")["id"])
        clock.advance(timedelta(minutes=1))
    other = start_contract(kopeysk, "kopeysk-1")["id"]
    clock.advance(timedelta(minutes=1))
    day = start_day(users("ministry"))["id"]
    admin.ok("POST", f"/instances/{ids[2]}/cancel", {"reason": "дубликат"})

    everything = admin.get("/instances")
    assert [i["id"] for i in everything["items"]] == [day, other, ids[2], ids[1], ids[0]], "newest first"
    assert everything["total"] == 5
    contracts = admin.get("/instances?process_key=contract")
    assert contracts["total"] == 4 and day not in {i["id"] for i in contracts["items"]}
    assert {i["id"] for i in admin.get("/instances?organisation=troitsk-go")["items"]} == set(ids)
    assert [i["id"] for i in admin.get("/instances?business_key=troitsk-2")["items"]] == [ids[1]]
    assert [i["id"] for i in admin.get("/instances?status=cancelled")["items"]] == [ids[2]]
    assert admin.get("/instances?status=running")["total"] == 4
    assert admin.get("/instances?status=completed") == {"items": [], "total": 0, "page": 1, "per_page": 50}

    pages = [admin.get(f"/instances?per_page=2&page={p}") for p in (1, 2, 3, 4)]
    assert [len(p["items"]) for p in pages] == [2, 2, 1, 0] and {p["total"] for p in pages} == {5}
    assert [i["id"] for p in pages for i in p["items"]] == [i["id"] for i in everything["items"]]

    # A МОУО sees what its organisation started or has tasks in; the totals agree.
    mine = troitsk.get("/instances")
    assert {i["id"] for i in mine["items"]} == {*ids, day} and mine["total"] == 4
    assert troitsk.get("/instances?organisation=kopeysk-go") == {"items": [], "total": 0, "page": 1, "per_page": 50}
    theirs = kopeysk.get("/instances")
    assert [i["id"] for i in theirs["items"]] == [other] and theirs["total"] == 1


@covers("get_instance", "cancel_instance")
def test_get_an_instance_and_cancel_it_with_if_match(users: Users, web_engine: Engine) -> None:
    troitsk, coordinator = users("troitsk-go"), users("coordinator")
    iid = start_contract(troitsk)["id"]
    response = troitsk("GET", f"/instances/{iid}")
    assert response.status_code == 200 and response.headers["ETag"] == '"1"' and response.json["version"] == 1
    return_for_revision(coordinator, troitsk, iid)
    current = troitsk("GET", f"/instances/{iid}")
    assert current.headers["ETag"] == '"2"'
    assert [t["element_id"] for t in current.json["tasks"]] == ["Task_ReviseApplication"]
    assert [h["action"] for h in current.json["history"]].count("task.completed") == 1

    before = db_state(web_engine)
    stale = problem(
        troitsk("POST", f"/instances/{iid}/cancel", {"reason": "передумали"}, headers={"If-Match": '"1"'}),
        412,
        "stale_version",
    )
    assert stale["expected_version"] == 1 and stale["current_version"] == 2
    bad = problem(troitsk("POST", f"/instances/{iid}/cancel", {}, headers={"If-Match": "yesterday"}), 400)
    assert fields_of(bad) == {"If-Match"}
    problem(users("ministry")("POST", f"/instances/{iid}/cancel", {}), 403, "not_permitted")
    problem(users("kopeysk-go")("POST", f"/instances/{iid}/cancel", {}), 404, "not_found")
    problem(troitsk("POST", "/instances/no-such-instance/cancel", {}), 404, "not_found")
    assert changed_tables(before, db_state(web_engine)) == []
    assert troitsk.get(f"/instances/{iid}")["status"] == "running"

    cancelled = troitsk("POST", f"/instances/{iid}/cancel", {"reason": "передумали"}, headers={"If-Match": '"2"'})
    assert cancelled.status_code == 200 and cancelled.headers["ETag"] == '"3"'
    assert cancelled.json["status"] == "cancelled" and cancelled.json["ended_at"] and cancelled.json["tasks"] == []
    assert troitsk.get(f"/tasks?instance_id={iid}&status=cancelled")["total"] == 1
    problem(troitsk("POST", f"/instances/{iid}/cancel", {}), 409, "invalid_state")
    entries = users("admin").get(f"/audit?instance_id={iid}&action=instance.cancelled")["items"]
    assert [(e["actor"], e["details"]) for e in entries] == [("troitsk-go", {"reason": "передумали"})]
    problem(troitsk("GET", "/instances/no-such-instance"), 404, "not_found")


@covers("get_variables", "patch_variables", "get_deadline")
def test_variables_read_and_change_move_dependent_deadlines(users: Users, web_engine: Engine) -> None:
    ministry, troitsk = users("ministry"), users("troitsk-go")
    day = start_day(ministry, "2026-06-01")["id"]
    response = ministry("GET", f"/instances/{day}/variables")
    assert response.status_code == 200 and response.headers["ETag"] == '"1"'
    assert response.json["day_date"] == "2026-06-01" and response.json["members"] == ["troitsk-go"]
    [deadline] = troitsk.get(f"/deadlines?instance_id={day}")["items"]
    assert deadline["date"] == "2026-04-17"

    before = db_state(web_engine)
    change = {"variables": {"day_date": "2026-07-01"}}
    problem(ministry("PATCH", f"/instances/{day}/variables", change, headers={"If-Match": '"7"'}), 412)
    problem(troitsk("PATCH", f"/instances/{day}/variables", change), 403, "not_permitted")
    problem(users("kopeysk-go")("PATCH", f"/instances/{day}/variables", change), 404)
    assert fields_of(problem(ministry("PATCH", f"/instances/{day}/variables", {"variables": {}}), 400)) == {"variables"}
    assert changed_tables(before, db_state(web_engine)) == []

    moved = ministry("PATCH", f"/instances/{day}/variables", change, headers={"If-Match": '"1"'})
    assert moved.status_code == 200, moved.json
    assert moved.headers["ETag"] == '"2"' and moved.json["variables"]["day_date"] == "2026-07-01"
    assert troitsk.get(f"/instances/{day}/variables")["day_date"] == "2026-07-01"
    after = troitsk.get(f"/deadlines/{deadline['id']}")
    assert after["date"] == "2026-05-15" and after["anchor_value"] == "2026-07-01", after
    assert "01.07.2026" in after["explanation"]
    problem(troitsk("GET", "/instances/no-such-instance/variables"), 404)


@covers("get_diagram_state", "get_instance_documents", "add_comment", "upload_attachment")
def test_diagram_state_and_the_documents_of_an_instance(users: Users, clock: VirtualClock) -> None:
    troitsk, coordinator = users("troitsk-go"), users("coordinator")
    iid = start_contract(troitsk)["id"]
    review = open_task(coordinator, iid, "Task_ReviewApplication")["id"]
    coordinator.ok("POST", f"/tasks/{review}/comments", {"text": "Принято к рассмотрению"}, status=201)
    assert upload(coordinator, review, "Замечания.txt", "Уточните срок".encode(), "text/plain").status_code == 201
    clock.advance(timedelta(minutes=1))
    revise = return_for_revision(coordinator, troitsk, iid)
    troitsk.ok("POST", f"/tasks/{revise}/comments", {"text": "Исправили срок"}, status=201)
    assert upload(troitsk, revise).status_code == 201

    state = troitsk.get(f"/instances/{iid}/diagram-state")
    assert state["instance_id"] == iid
    assert {"StartEvent_Application", "Task_ReviewApplication"} <= set(state["completed"])
    assert state["active"] == ["Task_ReviseApplication"] and state["overdue"] == []

    documents = troitsk.get(f"/instances/{iid}/documents")
    assert [c["text"] for c in documents["comments"]] == ["Принято к рассмотрению", "Исправили срок"]
    assert {a["filename"] for a in documents["attachments"]} == {"Заявка.pdf", "Замечания.txt"}
    for attachment in documents["attachments"]:
        download = troitsk("GET", attachment["url"])
        assert download.status_code == 200 and hashlib.sha256(download.data).hexdigest() == attachment["sha256"]
    assert users("ministry").get(f"/instances/{iid}/documents") == documents
    problem(users("kopeysk-go")("GET", f"/instances/{iid}/documents"), 404)
    problem(users("kopeysk-go")("GET", f"/instances/{iid}/diagram-state"), 404)
    problem(troitsk("GET", "/instances/no-such-instance/diagram-state"), 404)


@covers("list_incidents", "retry_instance")
def test_incidents_and_their_retry(users: Users, web_engine: Engine, clock: VirtualClock) -> None:
    admin, coordinator, troitsk = users("admin"), users("coordinator"), users("troitsk-go")
    iid = into_incident(admin, troitsk, web_engine, clock)
    incidents = coordinator.get("/incidents")
    assert incidents["total"] == 1 and incidents["page"] == 1 and incidents["per_page"] == 50
    [listed] = incidents["items"]
    assert listed["id"] == iid and "ZeroDivisionError" in listed["incident"]
    assert [i["id"] for i in troitsk.get("/incidents")["items"]] == [iid]
    assert users("kopeysk-go").get("/incidents") == {"items": [], "total": 0, "page": 1, "per_page": 50}

    later = into_incident(admin, troitsk, web_engine, clock)
    both = coordinator.get("/incidents")
    assert both["total"] == 2 and [i["id"] for i in both["items"]] == [later, iid], "newest first"
    pages = [coordinator.get(f"/incidents?per_page=1&page={p}") for p in (1, 2, 3)]
    assert [[i["id"] for i in p["items"]] for p in pages] == [[later], [iid], []]
    assert {(p["total"], p["per_page"]) for p in pages} == {(2, 1)} and [p["page"] for p in pages] == [1, 2, 3]
    assert troitsk.get("/incidents?per_page=1&page=2")["total"] == 2
    assert users("kopeysk-go").get("/incidents?per_page=1&page=2")["total"] == 0

    before = db_state(web_engine)
    problem(troitsk("POST", f"/instances/{iid}/retry"), 403, "not_permitted")
    problem(users("kopeysk-go")("POST", f"/instances/{iid}/retry"), 404)
    problem(coordinator("POST", "/instances/no-such-instance/retry"), 404)
    assert changed_tables(before, db_state(web_engine)) == []

    again = coordinator.ok("POST", f"/instances/{iid}/retry")
    assert again["status"] == "incident" and again["version"] > listed["version"]
    # Correcting the data lets the failed step run again at once.
    fixed = coordinator.ok("PATCH", f"/instances/{iid}/variables", {"variables": {"divisor": 4}})
    assert fixed["status"] == "running" and fixed["incident"] is None
    assert open_task(coordinator, iid, "use")["name"] == "Использовать долю"
    assert coordinator.get(f"/instances/{iid}/variables")["share"] == 25
    remaining = coordinator.get("/incidents")
    assert remaining["total"] == 1 and [i["id"] for i in remaining["items"]] == [later]
    problem(admin("POST", f"/instances/{iid}/retry"), 409, "invalid_state")
    retried = admin.get(f"/audit?instance_id={iid}&action=instance.retried")
    assert [e["actor"] for e in retried["items"]] == ["coordinator"]


# -- tasks -----------------------------------------------------------------------------------------------


def _ids(page: dict[str, Any]) -> list[str]:
    return [t["id"] for t in page["items"]]


@covers("list_tasks", "claim_task", "complete_task")
def test_list_tasks_with_every_filter_sort_and_paging(users: Users, clock: VirtualClock) -> None:
    admin, coordinator, troitsk = users("admin"), users("coordinator"), users("troitsk-go")
    assert deploy(admin, SORTING).status_code == 201
    first = coordinator.ok("POST", "/processes/api-sorting/start", {}, status=201)["id"]
    clock.advance(timedelta(minutes=1))
    second = coordinator.ok("POST", "/processes/api-sorting/start", {}, status=201)["id"]
    day = start_day(users("ministry"), "2026-06-01", ("troitsk-go", "kopeysk-go"))["id"]

    sorting = admin.get("/tasks?process_key=api-sorting&per_page=200")
    assert sorting["total"] == 6
    by = {(t["instance_id"], t["element_id"]): t for t in sorting["items"]}
    proposals = admin.get(f"/tasks?instance_id={day}")
    assert proposals["total"] == 2 and {t["organisation"] for t in proposals["items"]} == {"troitsk-go", "kopeysk-go"}
    assert admin.get("/tasks")["total"] == 8
    assert coordinator.get("/tasks")["total"] == 6

    assert admin.get(f"/tasks?instance_id={first}")["total"] == 3
    assert set(_ids(admin.get("/tasks?candidate_role=mouo"))) == set(_ids(proposals))
    assert admin.get("/tasks?candidate_role=coordinator")["total"] == 6
    [own] = troitsk.get("/tasks?organisation=mine")["items"]
    assert own["organisation"] == "troitsk-go" and own["deadline"]["date"] == "2026-04-17"
    assert _ids(admin.get("/tasks?organisation=troitsk-go")) == [own["id"]]
    assert _ids(troitsk.get("/tasks")) == [own["id"]], "a МОУО sees only its own tasks"
    assert troitsk.get("/tasks?organisation=kopeysk-go")["total"] == 0
    assert coordinator.get("/tasks?organisation=mine")["total"] == 6

    beta = by[(first, "t_beta")]["id"]
    coordinator.ok("POST", f"/tasks/{beta}/claim")
    assert _ids(coordinator.get("/tasks?assignee=me")) == [beta]
    assert _ids(admin.get("/tasks?assignee=coordinator")) == [beta]
    assert admin.get("/tasks?assignee=me")["total"] == 0

    cut = "2026-03-22T00:00:00%2B00:00"
    early = admin.get(f"/tasks?due_before={cut}")
    assert sorted(t["element_id"] for t in early["items"]) == ["t_beta", "t_beta"] and early["total"] == 2
    late = admin.get(f"/tasks?due_after={cut}")
    assert sorted(t["element_id"] for t in late["items"]) == [
        "Task_SubmitProposal",
        "Task_SubmitProposal",
        "t_alpha",
        "t_alpha",
    ]
    window = admin.get(f"/tasks?due_after={cut}&due_before=2026-04-01T00:00:00Z")
    assert {t["element_id"] for t in window["items"]} == {"t_alpha"} and window["total"] == 2
    assert {t["element_id"] for t in admin.get("/tasks?without_due=true")["items"]} == {"t_gamma"}

    gamma = by[(second, "t_gamma")]["id"]
    coordinator.ok("POST", f"/tasks/{gamma}/complete", {})
    assert _ids(admin.get("/tasks?status=completed")) == [gamma]
    assert admin.get("/tasks?status=cancelled")["total"] == 0
    assert admin.get("/tasks?process_key=api-sorting")["total"] == 5

    due_order = admin.get("/tasks?process_key=api-sorting&sort=due")["items"]
    assert [t["element_id"] for t in due_order] == ["t_beta", "t_beta", "t_alpha", "t_alpha", "t_gamma"]
    priority_order = admin.get("/tasks?process_key=api-sorting&sort=priority")["items"]
    assert [t["priority"] for t in priority_order] == [90, 90, 50, 10, 10]
    names = [t["name"] for t in admin.get("/tasks?process_key=api-sorting&sort=name")["items"]]
    assert names == ["Альфа", "Альфа", "Бета", "Бета", "Гамма"]
    created = admin.get("/tasks?process_key=api-sorting&sort=created")["items"]
    assert [t["instance_id"] for t in created] == [first, first, first, second, second]

    pages = [admin.get(f"/tasks?process_key=api-sorting&sort=name&per_page=2&page={p}") for p in (1, 2, 3, 4)]
    assert [len(p["items"]) for p in pages] == [2, 2, 1, 0] and {p["total"] for p in pages} == {5}
    assert [t["name"] for p in pages for t in p["items"]] == names

    assert admin.get("/tasks?overdue=true")["total"] == 0
    clock.set(datetime(2026, 3, 21, 6, 0, tzinfo=UTC))
    problem(admin("GET", "/tasks"), 401, "not_authenticated")  # sessions end after 8 idle hours
    users.forget()
    admin = users("admin")
    overdue = admin.get("/tasks?overdue=true")
    assert overdue["total"] == 2 and {t["element_id"] for t in overdue["items"]} == {"t_beta"}
    assert all(t["overdue"] for t in overdue["items"])
    assert admin.get(f"/tasks?overdue=true&instance_id={second}")["total"] == 1


@covers("get_task", "get_task_form", "claim_task", "unclaim_task", "create_user")
def test_get_claim_and_unclaim_a_task(users: Users, app: Flask, web_engine: Engine) -> None:
    troitsk, coordinator = users("troitsk-go"), users("coordinator")
    users("admin").ok(
        "POST",
        "/users",
        {
            "login": "troitsk-2",
            "name": "Второй специалист",
            "organisation": "troitsk-go",
            "roles": ["mouo"],
            "password": "second-password",
        },
        status=201,
    )
    colleague = Caller.session(app, "troitsk-2", "second-password")
    iid = start_contract(troitsk)["id"]
    review = open_task(coordinator, iid, "Task_ReviewApplication")
    task = coordinator.get(f"/tasks/{review['id']}")
    assert task["element_id"] == "Task_ReviewApplication" and task["clause"] == "REG 5.6"
    assert task["assignee"] is None and task["status"] == "open" and "REG 5.6" in task["documentation"]
    form = coordinator.get(f"/tasks/{review['id']}/form")
    assert form == task["form"] and form["properties"]["review_decision"]["enum"] == ["accept", "return"]

    revise = return_for_revision(coordinator, troitsk, iid)
    claimed = troitsk.ok("POST", f"/tasks/{revise}/claim")
    assert claimed["assignee"] == "troitsk-go"
    assert troitsk.ok("POST", f"/tasks/{revise}/claim")["assignee"] == "troitsk-go", "claiming again changes nothing"
    before = db_state(web_engine)
    problem(colleague("POST", f"/tasks/{revise}/claim"), 409, "invalid_state")
    problem(colleague("POST", f"/tasks/{revise}/unclaim"), 403, "not_permitted")
    problem(colleague("POST", f"/tasks/{revise}/complete", {"data": REVISION}), 403, "not_permitted")
    problem(users("kopeysk-go")("POST", f"/tasks/{revise}/claim"), 404)
    problem(users("kopeysk-go")("POST", f"/tasks/{revise}/unclaim"), 404)
    assert changed_tables(before, db_state(web_engine)) == []
    assert colleague.get(f"/tasks/{revise}")["assignee"] == "troitsk-go", "the colleague still sees it"

    released = troitsk.ok("POST", f"/tasks/{revise}/unclaim")
    assert released["assignee"] is None
    assert troitsk.ok("POST", f"/tasks/{revise}/unclaim")["assignee"] is None
    assert colleague.ok("POST", f"/tasks/{revise}/claim")["assignee"] == "troitsk-2"
    # The coordinator cannot claim a МОУО's task; closed tasks cannot be claimed.
    problem(coordinator("POST", f"/tasks/{revise}/claim"), 404)
    problem(coordinator("POST", f"/tasks/{review['id']}/claim"), 409)
    problem(troitsk("GET", "/tasks/no-such-task"), 404)
    problem(troitsk("GET", "/tasks/no-such-task/form"), 404)
    problem(users("kopeysk-go")("GET", f"/tasks/{revise}/form"), 404)


@covers("complete_task")
def test_complete_a_task_refuses_bad_data_and_stale_versions(users: Users, web_engine: Engine) -> None:
    troitsk, coordinator = users("troitsk-go"), users("coordinator")
    iid = start_contract(troitsk)["id"]
    review = open_task(coordinator, iid, "Task_ReviewApplication")["id"]
    audit_before = users("admin").get("/audit?per_page=1")["total"]
    before = db_state(web_engine)

    bad = problem(
        coordinator(
            "POST", f"/tasks/{review}/complete", {"data": {"review_decision": "maybe", "review_comment": 5, "x": 1}}
        ),
        422,
        "form_invalid",
    )
    assert fields_of(bad) == {"review_decision", "review_comment", "x"}
    assert all(e["message"] for e in bad["errors"])
    incomplete = problem(coordinator("POST", f"/tasks/{review}/complete", {"data": {"review_decision": "return"}}), 422)
    assert fields_of(incomplete) == {"review_comment"}
    assert fields_of(problem(coordinator("POST", f"/tasks/{review}/complete", {"data": "accept"}), 400)) == {"data"}
    accept = {"data": {"review_decision": "accept"}}
    stale = coordinator("POST", f"/tasks/{review}/complete", accept, headers={"If-Match": '"5"'})
    problem(stale, 412, "stale_version")
    problem(troitsk("POST", f"/tasks/{review}/complete", accept), 404)
    problem(coordinator("POST", "/tasks/no-such-task/complete", accept), 404)
    assert changed_tables(before, db_state(web_engine)) == []
    assert coordinator.get(f"/tasks/{review}")["status"] == "open"
    assert users("admin").get("/audit?per_page=1")["total"] == audit_before

    done = coordinator("POST", f"/tasks/{review}/complete", accept, headers={"If-Match": '"1"'})
    assert done.status_code == 200 and done.headers["ETag"] == '"2"'
    assert [t["element_id"] for t in done.json["tasks"]] == ["Task_PrepareContract"]
    assert coordinator.get(f"/tasks/{review}")["status"] == "completed"
    assert coordinator.get(f"/tasks/{review}")["completed_by"] == "coordinator"
    problem(coordinator("POST", f"/tasks/{review}/complete", accept), 409)


@covers("add_comment", "list_comments")
def test_comments(users: Users, web_engine: Engine, clock: VirtualClock) -> None:
    troitsk, coordinator, kopeysk = users("troitsk-go"), users("coordinator"), users("kopeysk-go")
    iid = start_contract(troitsk)["id"]
    review = open_task(coordinator, iid, "Task_ReviewApplication")["id"]
    response = troitsk("POST", f"/tasks/{review}/comments", {"text": "  Прошу рассмотреть до пятницы  "})
    assert response.status_code == 201 and response.headers["Location"] == f"{API}/tasks/{review}/comments"
    first = response.json
    assert first["author"] == "troitsk-go" and first["organisation"] == "troitsk-go" and first["instance_id"] == iid
    assert first["text"] == "Прошу рассмотреть до пятницы"
    clock.advance(timedelta(minutes=5))
    coordinator.ok("POST", f"/tasks/{review}/comments", {"text": "Рассмотрим"}, status=201)

    listed = coordinator.get(f"/tasks/{review}/comments")
    assert [(c["author"], c["text"]) for c in listed] == [
        ("troitsk-go", "Прошу рассмотреть до пятницы"),
        ("coordinator", "Рассмотрим"),
    ]
    assert troitsk.get(f"/tasks/{review}/comments") == listed

    before = db_state(web_engine)
    for body in ({"text": ""}, {}, {"text": 5}, {"text": "x" * 10001}, {"text": "ok", "author": "admin"}):
        problem(troitsk("POST", f"/tasks/{review}/comments", body), 400)
    problem(troitsk("POST", f"/tasks/{review}/comments", {"text": "   "}), 400, "bad_input")
    problem(kopeysk("POST", f"/tasks/{review}/comments", {"text": "чужое"}), 404)
    problem(kopeysk("GET", f"/tasks/{review}/comments"), 404)
    problem(troitsk("POST", "/tasks/no-such-task/comments", {"text": "где?"}), 404)
    assert changed_tables(before, db_state(web_engine)) == []


@covers("upload_attachment", "list_attachments", "download_attachment")
def test_attachments_upload_list_download(users: Users, web_engine: Engine) -> None:
    troitsk, coordinator, kopeysk = users("troitsk-go"), users("coordinator"), users("kopeysk-go")
    iid = start_contract(troitsk)["id"]
    revise = return_for_revision(coordinator, troitsk, iid)

    response = upload(troitsk, revise, "Заявка №1 (итог).pdf")
    assert response.status_code == 201, response.json
    stored = response.json
    assert stored["sha256"] == hashlib.sha256(PDF).hexdigest() and stored["size"] == len(PDF)
    assert stored["filename"] == "Заявка №1 (итог).pdf" and stored["content_type"] == "application/pdf"
    assert stored["uploaded_by"] == "troitsk-go" and stored["task_id"] == revise and stored["instance_id"] == iid
    assert response.headers["Location"] == stored["url"] == f"{API}/tasks/{revise}/attachments/{stored['id']}"
    assert [a["id"] for a in troitsk.get(f"/tasks/{revise}/attachments")] == [stored["id"]]

    download = troitsk("GET", stored["url"])
    assert download.status_code == 200 and download.data == PDF and download.mimetype == "application/pdf"
    assert download.headers["Content-Disposition"] == "attachment; filename*=UTF-8''" + quote("Заявка №1 (итог).pdf")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert users("ministry")("GET", stored["url"]).data == PDF

    before = db_state(web_engine)
    limit = web_engine.settings.max_upload_bytes
    too_big = problem(upload(troitsk, revise, "big.txt", b"a" * (limit + 1), "text/plain"), 413, "too_large")
    assert too_big["limit"] == limit and fields_of(too_big) == {"file"}
    problem(upload(troitsk, revise, "huge.txt", b"a" * (2 * limit), "text/plain"), 413)
    problem(upload(troitsk, revise, "setup.exe", b"MZ\x90\x00", "application/octet-stream"), 415, "unsupported_type")
    problem(upload(troitsk, revise, "fake.pdf", b"not a pdf at all", "application/pdf"), 415, "unsupported_type")
    problem(upload(troitsk, revise, "scan.pdf", PDF, "image/png"), 415, "unsupported_type")
    problem(upload(troitsk, revise, "empty.txt", b"", "text/plain"), 400)
    problem(troitsk("POST", f"/tasks/{revise}/attachments", {"file": "x"}), 415, "unsupported_type")
    problem(upload(kopeysk, revise), 404)
    problem(upload(coordinator, revise), 404)
    problem(upload(troitsk, "no-such-task"), 404)
    assert changed_tables(before, db_state(web_engine)) == []

    problem(kopeysk("GET", stored["url"]), 404)
    problem(kopeysk("GET", f"/tasks/{revise}/attachments"), 404)
    review = coordinator.get(f"/tasks?instance_id={iid}&status=completed")["items"][0]["id"]
    problem(troitsk("GET", f"/tasks/{review}/attachments/{stored['id']}"), 404, "not_found")
    problem(troitsk("GET", f"/tasks/{revise}/attachments/no-such-attachment"), 404)
    troitsk.ok("POST", f"/tasks/{revise}/complete", {"data": REVISION})
    problem(upload(troitsk, revise, "late.pdf"), 409, "invalid_state")
    assert troitsk("GET", stored["url"]).data == PDF, "documents stay readable after the task closed"


# -- deadlines -----------------------------------------------------------------------------------------


@covers("request_extension", "list_extension_requests", "decide_extension_request", "get_deadline")
def test_extension_request_and_decision(users: Users, web_engine: Engine) -> None:
    troitsk, coordinator = users("troitsk-go"), users("coordinator")
    day = start_day(users("ministry"), "2026-06-01", ("troitsk-go", "kopeysk-go"))["id"]
    task = open_task(troitsk, day, "Task_SubmitProposal")
    deadline = task["deadline"]
    assert deadline["date"] == "2026-04-17"

    before = db_state(web_engine)
    url = f"/tasks/{task['id']}/extension-requests"
    early = problem(troitsk("POST", url, {"reason": "Нужно время", "proposed_date": "2026-04-10"}), 400)
    assert fields_of(early) == {"proposed_date"}
    assert fields_of(problem(troitsk("POST", url, {"reason": "Нужно", "proposed_date": "24.04.2026"}), 400)) == {
        "proposed_date"
    }
    assert fields_of(problem(troitsk("POST", url, {"proposed_date": "2026-04-24"}), 400)) == {"reason"}
    problem(users("kopeysk-go")("POST", url, {"reason": "Чужой срок", "proposed_date": "2026-04-24"}), 404)
    problem(coordinator("POST", url, {"reason": "Не моя задача", "proposed_date": "2026-04-24"}), 404)
    assert changed_tables(before, db_state(web_engine)) == []

    response = troitsk(
        "POST", url, {"reason": "Согласуем с образовательными организациями", "proposed_date": "2026-04-24"}
    )
    assert response.status_code == 201, response.json
    request = response.json
    assert request["status"] == "pending" and request["approver_role"] == "coordinator"
    assert request["deadline_id"] == deadline["id"] and request["requested_by"] == "troitsk-go"
    problem(troitsk("POST", url, {"reason": "Ещё раз", "proposed_date": "2026-04-30"}), 409, "invalid_state")

    pending = coordinator.get("/extension-requests?status=pending")
    assert [r["id"] for r in pending["items"]] == [request["id"]]
    assert pending["total"] == 1 and pending["page"] == 1 and pending["per_page"] == 50
    assert coordinator.get("/extension-requests?status=approved") == {
        "items": [],
        "total": 0,
        "page": 1,
        "per_page": 50,
    }
    assert [r["id"] for r in troitsk.get(f"/extension-requests?instance_id={day}")["items"]] == [request["id"]]
    assert users("kopeysk-go").get("/extension-requests")["total"] == 0

    other_task = open_task(users("kopeysk-go"), day, "Task_SubmitProposal")
    other = users("kopeysk-go").ok(
        "POST",
        f"/tasks/{other_task['id']}/extension-requests",
        {"reason": "Тоже нужно время", "proposed_date": "2026-04-24"},
        status=201,
    )
    every = coordinator.get("/extension-requests")
    assert every["total"] == 2 and {r["id"] for r in every["items"]} == {request["id"], other["id"]}
    pages = [coordinator.get(f"/extension-requests?per_page=1&page={p}") for p in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [1, 1, 0] and {(p["total"], p["per_page"]) for p in pages} == {(2, 1)}
    assert [r["id"] for p in pages for r in p["items"]] == [r["id"] for r in every["items"]]
    assert pages[1]["page"] == 2
    mine = troitsk.get("/extension-requests")
    assert mine["total"] == 1 and [r["id"] for r in mine["items"]] == [request["id"]], "not another МОУО's"
    theirs = users("kopeysk-go").get("/extension-requests?per_page=1&page=2")
    assert theirs["total"] == 1 and theirs["items"] == []
    assert [r["id"] for r in users("kopeysk-go").get("/extension-requests")["items"]] == [other["id"]]

    decision = f"/extension-requests/{request['id']}/decision"
    before = db_state(web_engine)
    problem(troitsk("POST", decision, {"approve": True}), 403, "not_permitted")
    problem(coordinator("POST", decision, {"approve": False}), 400, "bad_input")
    problem(coordinator("POST", decision, {"approve": "yes"}), 400)
    problem(coordinator("POST", decision, {"approve": True, "new_date": "2026-04-01"}), 400)
    problem(coordinator("POST", "/extension-requests/no-such-request/decision", {"approve": True}), 404)
    assert changed_tables(before, db_state(web_engine)) == []

    decided = coordinator.ok("POST", decision, {"approve": True, "comment": "Согласовано", "new_date": "2026-04-27"})
    assert decided["status"] == "approved" and decided["decided_by"] == "coordinator"
    assert decided["new_date"] == "2026-04-27" and decided["comment"] == "Согласовано"
    problem(coordinator("POST", decision, {"approve": True}), 409, "invalid_state")

    moved = troitsk.get(f"/deadlines/{deadline['id']}")
    assert moved["date"] == "2026-04-27" and moved["original_date"] == "2026-04-17" and moved["extensions"] == 1
    assert [r["status"] for r in moved["extension_requests"]] == ["approved"]
    assert troitsk.get(f"/tasks/{task['id']}")["deadline"]["date"] == "2026-04-27"


@covers("list_deadlines", "get_deadline")
def test_list_deadlines_with_filters_and_paging(users: Users, clock: VirtualClock) -> None:
    admin, troitsk, kopeysk = users("admin"), users("troitsk-go"), users("kopeysk-go")
    first = start_day(users("ministry"), "2026-06-01", ("troitsk-go", "kopeysk-go"))["id"]
    second = start_day(users("ministry"), "2026-07-01", ("troitsk-go",))["id"]

    everything = admin.get("/deadlines")
    assert everything["total"] == 3
    assert [d["date"] for d in everything["items"]] == ["2026-04-17", "2026-04-17", "2026-05-15"], "soonest first"
    assert admin.get(f"/deadlines?instance_id={first}")["total"] == 2
    assert {d["instance_id"] for d in admin.get("/deadlines?organisation=troitsk-go")["items"]} == {first, second}
    assert admin.get("/deadlines?due_before=2026-05-01T00:00:00Z")["total"] == 2
    [later] = admin.get("/deadlines?due_after=2026-05-01T00:00:00Z")["items"]
    assert later["instance_id"] == second and later["date"] == "2026-05-15"
    assert admin.get("/deadlines?status=met")["total"] == 0
    pages = [admin.get(f"/deadlines?per_page=2&page={p}") for p in (1, 2)]
    assert [len(p["items"]) for p in pages] == [2, 1] and {p["total"] for p in pages} == {3}
    assert [d["id"] for p in pages for d in p["items"]] == [d["id"] for d in everything["items"]]

    mine = troitsk.get("/deadlines")
    assert mine["total"] == 2 and {d["organisation"] for d in mine["items"]} == {"troitsk-go"}
    theirs = kopeysk.get("/deadlines")
    assert theirs["total"] == 1 and theirs["items"][0]["organisation"] == "kopeysk-go"
    assert troitsk.get("/deadlines?organisation=kopeysk-go")["total"] == 0, "a МОУО's filter cannot widen its view"
    assert troitsk.get("/deadlines?organisation=troitsk-go")["total"] == 2

    detail = troitsk.get(f"/deadlines/{later['id']}")
    assert detail["rule"] == "45 days before day_date" and detail["clause"] == "DAY 3.1"
    assert "01.07.2026" in detail["explanation"] and detail["reminders"] == [] and detail["extension_requests"] == []
    problem(kopeysk("GET", f"/deadlines/{later['id']}"), 404)
    problem(admin("GET", "/deadlines/no-such-deadline"), 404)

    assert admin.get("/deadlines?overdue=true")["total"] == 0
    clock.set(datetime(2026, 4, 20, 6, 0, tzinfo=UTC))
    users.forget()
    admin, troitsk = users("admin"), users("troitsk-go")
    overdue = admin.get("/deadlines?overdue=true")
    assert overdue["total"] == 2 and all(d["overdue"] for d in overdue["items"])
    assert {d["instance_id"] for d in overdue["items"]} == {first}
    assert troitsk.get("/deadlines?overdue=true")["total"] == 1
    # Met deadlines leave the open list.
    own = open_task(troitsk, first, "Task_SubmitProposal")
    troitsk.ok(
        "POST",
        f"/tasks/{own['id']}/complete",
        {"data": {"proposal": {"directions": ["model_solutions"], "products": "Модельные решения"}}},
    )
    assert [d["late"] for d in troitsk.get("/deadlines?status=met")["items"]] == [True]
    assert troitsk.get("/deadlines?overdue=true")["total"] == 0


# -- directory and account ----------------------------------------------------------------------------


@covers("list_organisations", "list_members", "members_dynamics")
def test_organisations_and_members(users: Users) -> None:
    troitsk = users("troitsk-go")
    organisations = {o["code"]: o for o in troitsk.get("/organisations")}
    assert organisations["troitsk-go"]["kind"] == "mouo" and organisations["rcoko"]["kind"] == "coordinator"
    assert organisations["troitsk-go"]["name"] == "Троицкий городской округ"
    assert len(organisations) >= 45

    members = troitsk.get("/members")
    assert len(members) == 21 and "kopeysk-go" in {m["organisation"] for m in members}
    first_year = troitsk.get("/members?year=2016")
    assert len(first_year) == 9 and all(m["since_year"] == 2016 for m in first_year)
    assert troitsk.get("/members?year=2015") == []
    assert troitsk.get("/members/dynamics?from_year=2016&to_year=2018") == [
        {"year": 2016, "members": 9},
        {"year": 2017, "members": 15},
        {"year": 2018, "members": 21},
    ]
    assert fields_of(problem(troitsk("GET", "/members?year=1999"), 400)) == {"year"}
    assert fields_of(problem(troitsk("GET", "/members/dynamics?from_year=soon"), 400)) == {"from_year"}


@covers("get_me", "change_password")
def test_me_and_changing_the_password_ends_other_sessions(users: Users, app: Flask, web_engine: Engine) -> None:
    here = users("troitsk-go")
    elsewhere = Caller.session(app, "troitsk-go")
    assert here.get("/me") == {
        "login": "troitsk-go",
        "name": "Специалист МОУО: Троицкий городской округ",
        "organisation": "troitsk-go",
        "roles": ["mouo"],
    }
    machine = users.bearer(web_engine, ["coordinator"], "rcoko")
    assert machine.get("/me")["roles"] == ["coordinator"] and machine.get("/me")["login"] == machine.name

    before = db_state(web_engine)
    wrong = problem(here("POST", "/me/password", {"old_password": "nope", "new_password": "new-password-1"}), 400)
    assert fields_of(wrong) == {"old_password"}
    short = problem(here("POST", "/me/password", {"old_password": DEMO_PASSWORD, "new_password": "short"}), 400)
    assert fields_of(short) == {"new_password"}
    same = {"old_password": DEMO_PASSWORD, "new_password": DEMO_PASSWORD + "-x"}
    problem(here("POST", "/me/password", {**same, "extra": 1}), 400)
    problem(machine("POST", "/me/password", same), 403, "not_permitted")  # an API token has no password
    problem(machine("POST", "/me/calendar-token"), 403, "not_permitted")
    assert changed_tables(before, db_state(web_engine)) == []

    response = here("POST", "/me/password", same)
    assert response.status_code == 204 and response.data == b""
    assert here.get("/me")["login"] == "troitsk-go", "this session goes on"
    problem(elsewhere("GET", "/me"), 401, "not_authenticated")
    assert Client(app.test_client()).login("troitsk-go").status_code != 302, "the old password no longer works"
    assert Caller.session(app, "troitsk-go", DEMO_PASSWORD + "-x").get("/me")["login"] == "troitsk-go"


@covers("rotate_calendar_token")
def test_the_private_calendar_feed(users: Users, app: Flask) -> None:
    troitsk = users("troitsk-go")
    day = start_day(users("ministry"), "2026-06-01", ("troitsk-go", "kopeysk-go"))["id"]
    own = open_task(troitsk, day, "Task_SubmitProposal")
    theirs = open_task(users("kopeysk-go"), day, "Task_SubmitProposal")

    response = troitsk("POST", "/me/calendar-token")
    assert response.status_code == 201 and response.headers["Location"] == response.json["url"]
    url = response.json["url"]
    assert url.startswith("http://localhost/calendar/") and url.endswith(".ics")
    anonymous = app.test_client()
    feed = anonymous.get(urlsplit(url).path)
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"
    text = feed.get_data(as_text=True)
    assert text.startswith("BEGIN:VCALENDAR") and "END:VCALENDAR" in text
    assert f"UID:{own['deadline']['id']}@agglo" in text and "DTSTART;VALUE=DATE:20260417" in text
    assert theirs["deadline"]["id"] not in text, "another municipality's deadline is not in the feed"

    newer = troitsk.ok("POST", "/me/calendar-token", status=201)["url"]
    assert newer != url
    assert anonymous.get(urlsplit(url).path).status_code == 404, "the old URL stops working"
    assert anonymous.get(urlsplit(newer).path).status_code == 200


# -- administration ----------------------------------------------------------------------------------


@covers("list_users", "create_user", "get_user", "update_user")
def test_users_are_managed_by_administrators(users: Users, app: Flask, web_engine: Engine) -> None:
    admin = users("admin")
    everyone = admin.get("/users?per_page=200")
    assert everyone["total"] == len(everyone["items"]) >= 46
    assert all("password" not in u and "password_hash" not in u for u in everyone["items"])
    assert [u["login"] for u in admin.get("/users?organisation=troitsk-go")["items"]] == ["troitsk-go"]
    page = admin.get("/users?per_page=5&page=2")
    assert page["total"] == everyone["total"] and page["items"] == everyone["items"][5:10]

    created = admin(
        "POST",
        "/users",
        {
            "login": "kopeysk-2",
            "name": "Новый специалист",
            "organisation": "kopeysk-go",
            "roles": ["mouo"],
            "email": "new@kopeysk.example",
            "password": "a-long-password",
        },
    )
    assert created.status_code == 201, created.json
    assert created.json == {
        "login": "kopeysk-2",
        "name": "Новый специалист",
        "organisation": "kopeysk-go",
        "roles": ["mouo"],
        "active": True,
        "email": "new@kopeysk.example",
        "has_password": True,
    }
    assert created.headers["Location"] == f"{API}/users/kopeysk-2"
    assert admin.get("/users/kopeysk-2") == created.json
    problem(admin("GET", "/users/no-such-user"), 404)
    newcomer = Caller.session(app, "kopeysk-2", "a-long-password")
    assert newcomer.get("/me")["organisation"] == "kopeysk-go"

    before = db_state(web_engine)
    duplicate = {"login": "kopeysk-2", "name": "Дубль", "organisation": "kopeysk-go", "roles": ["mouo"]}
    problem(admin("POST", "/users", duplicate), 409, "invalid_state")
    bad = problem(
        admin("POST", "/users", {"login": "Bad Login", "name": "", "organisation": "kopeysk-go", "roles": ["wizard"]}),
        400,
    )
    assert fields_of(bad) == {"login", "name", "roles.0"}
    problem(admin("PATCH", "/users/kopeysk-2", {}), 400)
    problem(admin("PATCH", "/users/kopeysk-2", {"active": "no"}), 400)
    problem(admin("PATCH", "/users/no-such-user", {"name": "Никто"}), 404)
    for other in ("coordinator", "troitsk-go", "ministry"):
        caller = users(other)
        problem(caller("GET", "/users"), 403, "not_permitted")
        problem(caller("POST", "/users", {**duplicate, "login": "intruder"}), 403)
        problem(caller("PATCH", "/users/kopeysk-2", {"roles": ["admin"]}), 403)
    assert changed_tables(before, db_state(web_engine)) == []

    renamed = admin.ok("PATCH", "/users/kopeysk-2", {"name": "Переименованный специалист"})
    assert renamed["name"] == "Переименованный специалист" and renamed["roles"] == ["mouo"]
    assert admin.ok("PATCH", "/users/kopeysk-2", {"active": False})["active"] is False
    problem(newcomer("GET", "/me"), 401, "not_authenticated")  # a deactivated user is out at once
    saved = admin.get("/audit?action=user.saved&per_page=200")["items"]
    assert [e["details"]["login"] for e in saved] == ["kopeysk-2"] * 3


@covers("create_token", "list_tokens", "revoke_token")
def test_api_tokens_show_their_secret_once_and_can_be_revoked(users: Users, app: Flask, web_engine: Engine) -> None:
    admin = users("admin")
    response = admin("POST", "/tokens", {"name": "registry-sync", "roles": ["coordinator"], "organisation": "rcoko"})
    assert response.status_code == 201, response.json
    token = response.json
    secret = token["secret"]
    assert secret.startswith("agt_") and secret.startswith(token["prefix"]) and token["active"] is True
    assert token["roles"] == ["coordinator"] and token["created_by"] == "admin"

    listed = admin("GET", "/tokens")
    assert secret not in listed.get_data(as_text=True)
    [entry] = [t for t in listed.json if t["id"] == token["id"]]
    assert "secret" not in entry and entry["name"] == "registry-sync"

    machine = Caller(app.test_client(), token=secret)
    assert machine.get("/me") == {
        "login": "api:registry-sync",
        "name": "API: registry-sync",
        "organisation": "rcoko",
        "roles": ["coordinator"],
    }
    assert [t["last_used_at"] for t in admin.get("/tokens") if t["id"] == token["id"]] != [None]

    before = db_state(web_engine)
    bad = problem(admin("POST", "/tokens", {"name": "Bad Name!", "roles": [], "organisation": ""}), 400)
    assert fields_of(bad) == {"name", "roles", "organisation"}
    problem(users("coordinator")("POST", "/tokens", {"name": "x", "roles": ["admin"], "organisation": "rcoko"}), 403)
    problem(users("coordinator")("GET", "/tokens"), 403)
    problem(users("coordinator")("DELETE", f"/tokens/{token['id']}"), 403)
    problem(machine("DELETE", f"/tokens/{token['id']}"), 403)
    problem(admin("DELETE", "/tokens/no-such-token"), 404)
    assert changed_tables(before, db_state(web_engine)) == []

    revoked = admin.ok("DELETE", f"/tokens/{token['id']}")
    assert revoked["active"] is False and revoked["revoked_at"]
    refused = machine("GET", "/me")
    problem(refused, 401, "not_authenticated")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    problem(Caller(app.test_client(), token="agt_not-a-real-token")("GET", "/me"), 401)


# -- notifications, audit, reports --------------------------------------------------------------------


@covers("list_notifications", "mark_notifications_read")
def test_notifications_and_marking_them_read(users: Users) -> None:
    troitsk, coordinator = users("troitsk-go"), users("coordinator")
    day = start_day(users("ministry"))["id"]
    task = open_task(troitsk, day, "Task_SubmitProposal")
    request = troitsk.ok(
        "POST",
        f"/tasks/{task['id']}/extension-requests",
        {"reason": "Нужно больше времени", "proposed_date": "2026-04-24"},
        status=201,
    )
    unread_page = coordinator.get("/notifications?unread=true")
    assert unread_page["total"] == 1 and unread_page["page"] == 1 and unread_page["per_page"] == 50
    [note] = unread_page["items"]
    assert note["kind"] == "extension_requested" and note["read_at"] is None and note["task_id"] == task["id"]
    assert troitsk.get("/notifications") == {"items": [], "total": 0, "page": 1, "per_page": 50}

    assert coordinator.ok("POST", "/notifications/read", {"ids": [note["id"], "no-such-notification"]}) == {"marked": 1}
    assert coordinator.get("/notifications?unread=true")["total"] == 0
    read = coordinator.get("/notifications")
    assert read["total"] == 1 and read["items"][0]["read_at"] is not None
    assert coordinator.ok("POST", "/notifications/read", {}) == {"marked": 0}
    assert troitsk.ok("POST", "/notifications/read", {"ids": [note["id"]]}) == {"marked": 0}, "not theirs"

    coordinator.ok("POST", f"/extension-requests/{request['id']}/decision", {"approve": True})
    unread_page = troitsk.get("/notifications?unread=true&per_page=10")
    unread = unread_page["items"]
    assert unread_page["total"] == 2 and unread_page["per_page"] == 10
    assert sorted(n["kind"] for n in unread) == ["deadline_changed", "extension_decided"]
    assert all("24.04.2026" in n["title"] for n in unread)
    first, second = (troitsk.get(f"/notifications?per_page=1&page={p}") for p in (1, 2))
    assert first["items"] == unread[:1], "newest first"
    assert second["items"] == unread[1:] and second["page"] == 2 and second["total"] == 2
    assert troitsk.get("/notifications?per_page=1&page=3")["items"] == []
    assert fields_of(problem(troitsk("GET", "/notifications?per_page=0"), 400)) == {"per_page"}
    assert troitsk.ok("POST", "/notifications/read", {}) == {"marked": 2}
    assert troitsk.get("/notifications?unread=true")["total"] == 0
    assert troitsk.get("/notifications?unread=true&page=2")["total"] == 0
    assert troitsk.get("/notifications")["total"] == 2


@covers("list_audit")
def test_the_audit_trail(users: Users, clock: VirtualClock) -> None:
    troitsk, coordinator, admin = users("troitsk-go"), users("coordinator"), users("admin")
    iid = start_contract(troitsk)["id"]
    review = open_task(coordinator, iid, "Task_ReviewApplication")["id"]
    clock.advance(timedelta(hours=1))
    middle = clock.now().isoformat().replace("+", "%2B")
    return_for_revision(coordinator, troitsk, iid)

    history = admin.get(f"/audit?instance_id={iid}&per_page=200")
    actions = [e["action"] for e in history["items"]]
    assert actions[0] == "instance.started" and "task.completed" in actions and history["total"] == len(actions)
    [completed] = admin.get(f"/audit?instance_id={iid}&action=task.completed")["items"]
    assert completed["actor"] == "coordinator" and completed["task_id"] == review and completed["data_digest"]
    assert {e["task_id"] for e in admin.get(f"/audit?task_id={review}")["items"]} == {review}
    assert {e["actor"] for e in admin.get(f"/audit?instance_id={iid}&actor=troitsk-go")["items"]} == {"troitsk-go"}
    assert {e["organisation"] for e in admin.get(f"/audit?instance_id={iid}&organisation=rcoko")["items"]} == {"rcoko"}
    assert admin.get(f"/audit?instance_id={iid}&until={middle}")["total"] == actions.index("task.completed")
    later = admin.get(f"/audit?instance_id={iid}&since={middle}")
    assert later["total"] == len(actions) - actions.index("task.completed")
    newest = admin.get(f"/audit?instance_id={iid}&order=desc&per_page=200")
    assert [e["id"] for e in newest["items"]] == [e["id"] for e in reversed(history["items"])]
    pages = [admin.get(f"/audit?instance_id={iid}&per_page=2&page={p}") for p in (1, 2)]
    assert [e["id"] for p in pages for e in p["items"]] == [e["id"] for e in history["items"][:4]]
    assert {p["total"] for p in pages} == {len(actions)}

    assert users("ministry").get(f"/audit?instance_id={iid}")["total"] == len(actions)
    assert coordinator.get(f"/audit?instance_id={iid}")["total"] == len(actions)
    for outsider in ("troitsk-go", "kopeysk-go", "expert"):
        problem(users(outsider)("GET", f"/audit?instance_id={iid}"), 403, "not_permitted")
    bad = problem(admin("GET", "/audit?since=yesterday&order=sideways"), 400)
    assert fields_of(bad) == {"since", "order"}


@covers("overdue_report")
def test_the_overdue_report_as_json_csv_and_xlsx(users: Users, clock: VirtualClock) -> None:
    from openpyxl import load_workbook

    admin, troitsk = users("admin"), users("troitsk-go")
    day = start_day(users("ministry"), "2026-06-01", ("troitsk-go", "kopeysk-go"))["id"]
    assert admin.get("/reports/overdue") == []
    clock.set(datetime(2026, 4, 21, 6, 0, tzinfo=UTC))
    users.forget()
    admin, troitsk = users("admin"), users("troitsk-go")

    groups = admin.get("/reports/overdue")
    assert sorted(g["organisation"] for g in groups) == ["kopeysk-go", "troitsk-go"]
    for group in groups:
        assert group["count"] == 1 and group["max_days_late"] == 4
        [item] = group["items"]
        assert item["instance_id"] == day and item["due_date"] == "2026-04-17" and item["days_late"] == 4
    [only] = admin.get("/reports/overdue?organisation=troitsk-go")
    assert only["organisation"] == "troitsk-go" and only["organisation_name"] == "Троицкий городской округ"
    assert troitsk.get("/reports/overdue?organisation=kopeysk-go") == []

    response = admin("GET", "/reports/overdue?format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="overdue-2026-04-21.csv"'
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff"), "a BOM, so that Excel reads UTF-8"
    header, *rows = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    assert len(rows) == 2 and all(len(row) == len(header) for row in rows)
    assert {"Троицкий городской округ", "Копейский городской округ"} <= {cell for row in rows for cell in row}
    by_column = [dict(zip(header, row, strict=True)) for row in rows]
    assert {r["Задача"] for r in by_column} == {"Направить предложения в программу Дня"}
    assert {(r["Срок"], r["Просрочено, дней"]) for r in by_column} == {("17.04.2026", "4")}

    response = admin("GET", "/reports/overdue?format=xlsx")
    assert response.status_code == 200 and response.mimetype == XLSX
    assert response.headers["Content-Disposition"] == 'attachment; filename="overdue-2026-04-21.xlsx"'
    sheet = load_workbook(io.BytesIO(response.data)).active
    assert sheet is not None
    cells = {str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None}
    assert {"Троицкий городской округ", "Копейский городской округ"} <= cells
    assert any("Направить предложения" in c for c in cells)
    mine = load_workbook(io.BytesIO(troitsk("GET", "/reports/overdue?format=xlsx").data)).active
    assert mine is not None
    assert "Копейский городской округ" not in {str(c) for row in mine.iter_rows(values_only=True) for c in row}
    assert fields_of(problem(admin("GET", "/reports/overdue?format=pdf"), 400)) == {"format"}


# -- events and webhooks ------------------------------------------------------------------------------

EVENT_TYPES = {
    "instance.started",
    "instance.completed",
    "instance.cancelled",
    "instance.incident",
    "task.created",
    "task.assigned",
    "task.unassigned",
    "task.completed",
    "task.cancelled",
    "deadline.reminder",
    "deadline.overdue",
    "deadline.escalated",
    "deadline.changed",
    "extension.requested",
    "extension.decided",
    "membership.granted",
}
PUBLIC_HOOK = "https://hooks.example.org/agglo/events"  # a public receiver (see offline_resolver)


def subscribe(admin: Caller, url: str = PUBLIC_HOOK, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = admin.ok("POST", "/webhooks", {"url": url, **fields}, status=201)
    return result


@covers("event_catalogue", "create_webhook")
def test_the_event_catalogue_describes_every_event_sent(users: Users, web_engine: Engine) -> None:
    from jsonschema import Draft202012Validator

    for who in ("troitsk-go", "expert", "ministry", "coordinator"):
        assert users(who).get("/events/catalogue") == users("admin").get("/events/catalogue")
    machine = users.bearer(web_engine, ["mouo"], "kopeysk-go")
    catalogue = machine.get("/events/catalogue")
    assert catalogue["version"] == 1
    assert {t["type"] for t in catalogue["types"]} == EVENT_TYPES
    for entry in catalogue["types"]:
        assert entry["version"] == 1 and entry["summary"], entry
        assert isinstance(entry["data"], dict), f"{entry['type']} has no data schema"
        Draft202012Validator.check_schema(entry["data"])
    envelope = catalogue["envelope"]
    Draft202012Validator.check_schema(envelope)
    validator = Draft202012Validator(envelope, format_checker=Draft202012Validator.FORMAT_CHECKER)
    problem(users.anonymous()("GET", "/events/catalogue"), 401, "not_authenticated")

    # Real events, as a subscriber to everything receives them, match the envelope and their type's data.
    troitsk, coordinator = users("troitsk-go"), users("coordinator")
    subscribe(users("admin"))
    iid = start_contract(troitsk, "troitsk-2026")["id"]
    revise = return_for_revision(coordinator, troitsk, iid)
    troitsk.ok("POST", f"/tasks/{revise}/claim")
    receiver = FakeReceiver(200)
    send_webhooks(web_engine, receiver)
    events = receiver.events()
    assert [e["type"] for e in events] == [
        "instance.started",
        "task.created",
        "task.completed",
        "task.created",
        "task.assigned",
    ]
    schemas = {t["type"]: t["data"] for t in catalogue["types"]}
    for event in events:
        assert not sorted(validator.iter_errors(event), key=str), event
        assert set(event["data"]) <= set(schemas[event["type"]].get("properties", {})), event
        assert event["instance"] == {
            "id": iid,
            "process_key": "contract",
            "business_key": "troitsk-2026",
            "organisation": "troitsk-go",
        }
    assert events[-1]["data"] == {"assignee": "troitsk-go"}
    assert events[2]["actor"] == {"login": "coordinator", "organisation": "rcoko"}
    # The schema tells a wrong event from a right one.
    assert not validator.is_valid({**events[-1], "data": {}}), "task.assigned needs its assignee"
    assert not validator.is_valid({**events[0], "type": "no.such.event"})
    assert not validator.is_valid({k: v for k, v in events[0].items() if k != "id"})


@pytest.mark.parametrize("webhook_allow_hosts", ["localhost:8443,10.0.0.5"])
@covers("create_webhook", "list_webhooks", "get_webhook", "update_webhook")
def test_webhook_subscriptions_are_managed_by_administrators(
    users: Users, web_engine: Engine, clock: VirtualClock
) -> None:
    admin = users("admin")
    response = admin(
        "POST",
        "/webhooks",
        {
            "url": PUBLIC_HOOK,
            "event_types": ["task.created", "instance.started", "task.created"],
            "organisation": "troitsk-go",
            "description": "СЭД Троицкого городского округа",
        },
    )
    problem(response, 400)  # the same type twice
    response = admin(
        "POST",
        "/webhooks",
        {
            "url": PUBLIC_HOOK,
            "event_types": ["task.created", "instance.started"],
            "organisation": "troitsk-go",
            "description": "СЭД Троицкого городского округа",
        },
    )
    assert response.status_code == 201, response.json
    created = response.json
    secret = created.pop("secret")
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    sid = created["id"]
    assert response.headers["Location"] == f"{API}/webhooks/{sid}"
    now = clock.now().isoformat()
    assert created == {
        "id": sid,
        "url": PUBLIC_HOOK,
        "event_types": ["instance.started", "task.created"],
        "organisation": "troitsk-go",
        "active": True,
        "description": "СЭД Троицкого городского округа",
        "created_by": "admin",
        "created_at": now,
        "updated_at": now,
        "rotating_until": None,
        "consecutive_failures": 0,
        "disabled_at": None,
        "disabled_reason": None,
    }
    # The secret is shown once: never in a listing, a read, or the audit trail.
    assert admin.get(f"/webhooks/{sid}") == created
    listed = admin("GET", "/webhooks")
    assert listed.json == [created] and secret not in listed.get_data(as_text=True)
    assert secret not in admin("GET", "/audit?per_page=200").get_data(as_text=True)
    [audit] = admin.get("/audit?action=webhook.created")["items"]
    assert audit["actor"] == "admin" and audit["details"]["subscription"] == sid

    machine = users.bearer(web_engine, ["coordinator"], "rcoko")
    before = db_state(web_engine)
    refused_urls = [
        "http://127.0.0.1:8443/hook",  # loopback by address, though localhost:8443 is allowed by name
        "http://localhost:8080/hook",  # localhost is allowed on port 8443 only
        "http://10.0.0.1/",
        "http://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8443/hook",
        "http://0.0.0.0/",
        "file:///etc/passwd",
        "ftp://hooks.example.org/",
        "https://user:password@hooks.example.org/agglo",
        "https://hooks.example.org:99999/agglo",
        "https://no-such-host.invalid/hook",
        "hooks.example.org/agglo",
    ]
    for url in refused_urls:
        refused = problem(admin("POST", "/webhooks", {"url": url}), 400)
        assert fields_of(refused) == {"url"}, (url, refused)
        assert fields_of(problem(admin("PATCH", f"/webhooks/{sid}", {"url": url}), 400)) == {"url"}, url
    assert "169.254.169.254" in problem(admin("POST", "/webhooks", {"url": refused_urls[4]}), 400)["detail"]
    unknown_type = problem(admin("POST", "/webhooks", {"url": PUBLIC_HOOK, "event_types": ["task.exploded"]}), 400)
    assert fields_of(unknown_type) == {"event_types.0"}
    no_org = problem(admin("POST", "/webhooks", {"url": PUBLIC_HOOK, "organisation": "atlantis"}), 400)
    assert fields_of(no_org) == {"organisation"}
    assert fields_of(problem(admin("POST", "/webhooks", {"event_types": []}), 400)) == {"url"}
    assert fields_of(problem(admin("POST", "/webhooks", {"url": PUBLIC_HOOK, "secret": "mine"}), 400)) == {"secret"}
    problem(admin("PATCH", f"/webhooks/{sid}", {}), 400)
    assert fields_of(problem(admin("PATCH", f"/webhooks/{sid}", {"organisation": "atlantis"}), 400)) == {"organisation"}
    problem(admin("PATCH", "/webhooks/no-such-subscription", {"active": False}), 404, "not_found")
    problem(admin("GET", "/webhooks/no-such-subscription"), 404, "not_found")
    for outsider in (users("coordinator"), users("ministry"), users("troitsk-go"), machine):
        problem(outsider("GET", "/webhooks"), 403, "not_permitted")
        problem(outsider("GET", f"/webhooks/{sid}"), 403, "not_permitted")
        problem(outsider("POST", "/webhooks", {"url": PUBLIC_HOOK}), 403, "not_permitted")
        problem(outsider("PATCH", f"/webhooks/{sid}", {"active": False}), 403, "not_permitted")
    assert changed_tables(before, db_state(web_engine)) == []

    # AGGLO_WEBHOOK_ALLOW_HOSTS lets an on-premise receiver in, by name (and port) or by address.
    for url in ("http://localhost:8443/agglo", "http://10.0.0.5/hook", "https://93.184.215.14/hook"):
        assert subscribe(admin, url)["url"] == url

    clock.advance(timedelta(minutes=5))
    changed = admin.ok(
        "PATCH",
        f"/webhooks/{sid}",
        {"event_types": [], "organisation": None, "description": "Все события", "url": PUBLIC_HOOK + "/v2"},
    )
    assert changed["event_types"] == [] and changed["organisation"] is None and changed["url"] == PUBLIC_HOOK + "/v2"
    assert changed["updated_at"] == clock.now().isoformat() and changed["created_at"] == now
    assert admin.ok("PATCH", f"/webhooks/{sid}", {"active": False})["active"] is False
    assert admin.get(f"/webhooks/{sid}")["active"] is False
    assert "secret" not in admin.get(f"/webhooks/{sid}")

    # The worker disables a subscription after a run of failures; enabling it resets the count.
    admin.ok("PATCH", f"/webhooks/{sid}", {"active": True, "event_types": ["instance.started"]})
    start_contract(users("troitsk-go"))
    start_contract(users("kopeysk-go"))
    others = [s["id"] for s in admin.get("/webhooks") if s["id"] != sid]
    for other in others:
        admin.ok("PATCH", f"/webhooks/{other}", {"active": False})
    strict = web_engine.settings.with_(webhook_disable_after_failures=2)
    send_webhooks(web_engine, FakeReceiver(500), strict)
    disabled = admin.get(f"/webhooks/{sid}")
    assert disabled["active"] is False and disabled["consecutive_failures"] == 2
    assert disabled["disabled_reason"] == "2 failed deliveries in a row" and disabled["disabled_at"]
    enabled = admin.ok("PATCH", f"/webhooks/{sid}", {"active": True})
    assert enabled["active"] is True and enabled["consecutive_failures"] == 0
    assert enabled["disabled_at"] is None and enabled["disabled_reason"] is None
    assert admin.get(f"/webhooks/{sid}") == enabled
    changes = admin.get("/audit?action=webhook.changed&per_page=200")["items"]
    assert {e["actor"] for e in changes} == {"admin"} and len(changes) == 4 + len(others)


@covers("rotate_webhook_secret", "create_webhook")
def test_rotating_a_webhook_secret_signs_with_both_during_the_overlap(
    users: Users, web_engine: Engine, clock: VirtualClock
) -> None:
    admin, troitsk = users("admin"), users("troitsk-go")
    created = subscribe(admin, event_types=["instance.started"])
    sid, old = created["id"], created["secret"]
    response = admin("POST", f"/webhooks/{sid}/rotate-secret", {"overlap_seconds": 3600})
    assert response.status_code == 200, response.json
    rotated = response.json
    new = rotated.pop("secret")
    assert new.startswith("whsec_") and new != old
    assert rotated["rotating_until"] == (clock.now() + timedelta(hours=1)).isoformat()
    shown = admin("GET", f"/webhooks/{sid}")
    assert shown.json == rotated and old not in shown.get_data(as_text=True) and new not in shown.get_data(as_text=True)

    receiver = FakeReceiver(200)
    start_contract(troitsk)
    send_webhooks(web_engine, receiver)
    [(_, headers, body)] = receiver.got
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (old, new):  # a receiver holding either secret accepts the event
        assert signing.verify([secret], headers, body, clock.now()).webhook_id == json.loads(body)["id"]

    clock.advance(timedelta(hours=1, minutes=1))
    users.forget()
    admin, troitsk = users("admin"), users("troitsk-go")
    start_contract(troitsk)
    send_webhooks(web_engine, receiver)
    (_, headers, body) = receiver.got[-1]
    assert len(headers["webhook-signature"].split()) == 1
    signing.verify([new], headers, body, clock.now())
    with pytest.raises(signing.SignatureError):
        signing.verify([old], headers, body, clock.now())

    default = admin.ok("POST", f"/webhooks/{sid}/rotate-secret", {})
    assert default["rotating_until"] == (clock.now() + timedelta(hours=24)).isoformat()
    at_once = admin.ok("POST", f"/webhooks/{sid}/rotate-secret", {"overlap_seconds": 0})
    assert at_once["rotating_until"] is None and at_once["secret"] != default["secret"]

    before = db_state(web_engine)
    for overlap in (-1, 15 * 24 * 3600, "1h"):
        refused = problem(admin("POST", f"/webhooks/{sid}/rotate-secret", {"overlap_seconds": overlap}), 400)
        assert fields_of(refused) == {"overlap_seconds"}
    problem(admin("POST", "/webhooks/no-such-subscription/rotate-secret", {}), 404)
    problem(users("coordinator")("POST", f"/webhooks/{sid}/rotate-secret", {}), 403, "not_permitted")
    assert changed_tables(before, db_state(web_engine)) == []
    rotations = admin.get("/audit?action=webhook.secret_rotated")["items"]
    assert [e["details"]["overlap_seconds"] for e in rotations] == [3600, 24 * 3600, 0]
    assert old not in str(rotations) and new not in str(rotations)


@pytest.mark.parametrize("webhook_allow_hosts", ["localhost"])
@covers("list_webhook_deliveries", "list_delivery_attempts", "redeliver")
def test_deliveries_their_attempts_and_a_manual_redelivery(
    users: Users, web_engine: Engine, clock: VirtualClock
) -> None:
    admin, troitsk = users("admin"), users("troitsk-go")
    with LoopbackReceiver(503) as receiver:
        created = subscribe(
            admin, f"http://localhost:{receiver.port}/agglo?from=test", event_types=["instance.started", "task.created"]
        )
        sid, secret = created["id"], created["secret"]
        iid = start_contract(troitsk, "troitsk-2026")["id"]
        send_webhooks(web_engine)
        assert len(receiver.got) == 1, "the instance's next event waits until its first is delivered"

        listed = admin.get(f"/webhooks/{sid}/deliveries")
        by_type = {d["event_type"]: d for d in listed}
        assert set(by_type) == {"instance.started", "task.created"}
        failed, waiting = by_type["instance.started"], by_type["task.created"]
        assert failed["status"] == "retry" and failed["attempts"] == 1 and failed["last_error"] == "HTTP 503"
        assert failed["reply"] == "503 busy" and failed["next_attempt_at"] > clock.now().isoformat()
        assert failed["subscription_id"] == sid and failed["instance_id"] == iid and failed["sent_at"] is None
        assert waiting["status"] == "queued" and waiting["attempts"] == 0
        assert [d["id"] for d in admin.get(f"/webhooks/{sid}/deliveries?status=retry")] == [failed["id"]]
        assert admin.get(f"/webhooks/{sid}/deliveries?status=sent") == []
        assert len(admin.get(f"/webhooks/{sid}/deliveries?limit=1")) == 1

        [attempt] = admin.get(f"/deliveries/{failed['id']}/attempts")
        assert attempt["outcome"] == "retry" and attempt["status"] == 503 and attempt["excerpt"] == "busy"
        assert attempt["latency_ms"] > 0 and attempt["error"] is None and attempt["at"] == clock.now().isoformat()

        receiver.statuses = [200]
        queued = admin.ok("POST", f"/deliveries/{failed['id']}/redeliver")
        assert queued["status"] == "queued" and queued["next_attempt_at"] == clock.now().isoformat()
        assert queued["last_error"] is None and queued["attempts"] == 1
        send_webhooks(web_engine)
        assert len(receiver.got) == 3
        sent = {d["event_type"]: d for d in admin.get(f"/webhooks/{sid}/deliveries")}
        assert {d["status"] for d in sent.values()} == {"sent"}
        assert sent["instance.started"]["attempts"] == 2 and sent["instance.started"]["reply"] == "200 ok"
        outcomes = [a["outcome"] for a in admin.get(f"/deliveries/{failed['id']}/attempts")]
        assert outcomes == ["sent", "retry"], "newest first"

        # What the receiver got: signed per Standard Webhooks; the retry kept the webhook-id.
        (path, first, body), (_, second, again), (_, third, task_body) = receiver.got
        assert path == "/agglo?from=test" and body == again
        assert first["webhook-id"] == second["webhook-id"] == json.loads(body)["id"] == failed["event_id"]
        for headers, content in ((first, body), (second, again), (third, task_body)):
            assert headers["content-type"] == "application/json"
            signing.verify([secret], headers, content, clock.now())
        assert [json.loads(b)["type"] for _, _, b in receiver.got] == ["instance.started"] * 2 + ["task.created"]

        # A delivery that went through can be sent once more, with the same webhook-id.
        admin.ok("POST", f"/deliveries/{failed['id']}/redeliver")
        send_webhooks(web_engine)
        assert receiver.got[-1][1]["webhook-id"] == failed["event_id"] and len(receiver.got) == 4

    machine = users.bearer(web_engine, ["ministry"], "minobr")
    before = db_state(web_engine)
    problem(admin("POST", "/deliveries/no-such-delivery/redeliver"), 404, "not_found")
    problem(admin("GET", "/deliveries/no-such-delivery/attempts"), 404, "not_found")
    problem(admin("GET", "/webhooks/no-such-subscription/deliveries"), 404, "not_found")
    assert fields_of(problem(admin("GET", f"/webhooks/{sid}/deliveries?status=lost&limit=0"), 400)) == {
        "status",
        "limit",
    }
    for outsider in (users("coordinator"), users("troitsk-go"), machine):
        problem(outsider("GET", f"/webhooks/{sid}/deliveries"), 403, "not_permitted")
        problem(outsider("GET", f"/deliveries/{failed['id']}/attempts"), 403, "not_permitted")
        problem(outsider("POST", f"/deliveries/{failed['id']}/redeliver"), 403, "not_permitted")
    assert changed_tables(before, db_state(web_engine)) == []
    # A delivery a worker is sending right now cannot be queued again.
    admin.ok("POST", f"/deliveries/{waiting['id']}/redeliver")
    now = clock.now()
    with web_engine.store.transaction() as tx:
        assert [d.id for d in tx.claim_webhook_deliveries(now, 10, "busy-worker", now + timedelta(minutes=1))] == [
            waiting["id"]
        ]
    before = db_state(web_engine)
    problem(admin("POST", f"/deliveries/{waiting['id']}/redeliver"), 409, "invalid_state")
    assert changed_tables(before, db_state(web_engine)) == []
    redeliveries = admin.get("/audit?action=webhook.redelivery")["items"]
    assert [e["details"]["delivery"] for e in redeliveries] == [failed["id"], failed["id"], waiting["id"]]
    assert {e["instance_id"] for e in redeliveries} == {iid}


# -- inbound sources and messages ------------------------------------------------------------------------


def inbound(app: Flask, source: str, secret: str, payload: Any, webhook_id: str | None = None) -> TestResponse:
    """POST a signed event to /webhooks/in/<source> as an outside system does."""
    engine: Engine = app.extensions["agglo.engine"]
    body = json.dumps(payload, ensure_ascii=False).encode()
    signed = signing.headers([secret], webhook_id or f"msg_{uuid.uuid4().hex}", engine.clock.now(), body)
    return app.test_client().post(
        f"/webhooks/in/{source}", data=body, headers=signed.as_dict(), content_type="application/json"
    )


@covers("create_webhook_source", "list_webhook_sources", "rotate_source_secret", "update_webhook_source")
def test_inbound_sources_are_managed_by_administrators(
    users: Users, app: Flask, web_engine: Engine, clock: VirtualClock
) -> None:
    admin = users("admin")
    response = admin("POST", "/webhook-sources", {"name": "sed", "description": "СЭД Министерства"})
    assert response.status_code == 201, response.json
    created = response.json
    secret = created.pop("secret")
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert response.headers["Location"] == f"{API}/webhook-sources"
    assert created == {
        "name": "sed",
        "active": True,
        "description": "СЭД Министерства",
        "created_at": clock.now().isoformat(),
        "rotating_until": None,
        "url": "http://localhost/webhooks/in/sed",
    }
    listed = admin("GET", "/webhook-sources")
    assert listed.json == [created] and secret not in listed.get_data(as_text=True)
    assert secret not in admin("GET", "/audit?per_page=200").get_data(as_text=True)
    message = {"type": "contract.registered", "correlation": {"business_key": "ПД-ТРО-2026"}, "data": REGISTERED}
    assert inbound(app, "sed", secret, message).status_code == 202

    rotated = admin.ok("POST", "/webhook-sources/sed/rotate-secret", {"overlap_seconds": 600})
    new = rotated.pop("secret")
    assert new != secret and rotated["rotating_until"] == (clock.now() + timedelta(minutes=10)).isoformat()
    assert admin.get("/webhook-sources") == [rotated]
    assert inbound(app, "sed", secret, message).status_code == 202, "the old secret, during the overlap"
    assert inbound(app, "sed", new, message).status_code == 202
    assert (
        admin.ok("POST", "/webhook-sources/sed/rotate-secret", {})["rotating_until"]
        == (clock.now() + timedelta(hours=24)).isoformat()
    )

    disabled = admin.ok("PATCH", "/webhook-sources/sed", {"active": False})
    assert disabled["active"] is False and admin.get("/webhook-sources")[0]["active"] is False
    problem(inbound(app, "sed", new, message), 404, "not_found")
    assert admin.ok("PATCH", "/webhook-sources/sed", {"active": True})["active"] is True

    # Registering the name again gives it a fresh secret at once: the previous ones stop working.
    again = admin.ok("POST", "/webhook-sources", {"name": "sed"}, status=201)
    assert again["secret"] not in (secret, new) and again["created_at"] == created["created_at"]
    problem(inbound(app, "sed", new, message), 401, "signature_refused")
    assert inbound(app, "sed", again["secret"], message).status_code == 202

    machine = users.bearer(web_engine, ["coordinator"], "rcoko")
    before = db_state(web_engine)
    for name in ("СЭД", "Bad Name", "", "-sed", "x" * 65):
        assert fields_of(problem(admin("POST", "/webhook-sources", {"name": name}), 400)) == {"name"}, name
    assert fields_of(problem(admin("POST", "/webhook-sources", {"description": "no name"}), 400)) == {"name"}
    assert fields_of(problem(admin("PATCH", "/webhook-sources/sed", {}), 400)) == {"active"}
    assert fields_of(problem(admin("PATCH", "/webhook-sources/sed", {"active": "no"}), 400)) == {"active"}
    problem(admin("PATCH", "/webhook-sources/no-such-source", {"active": False}), 404, "not_found")
    problem(admin("POST", "/webhook-sources/no-such-source/rotate-secret", {}), 404, "not_found")
    problem(admin("POST", "/webhook-sources/sed/rotate-secret", {"overlap_seconds": -5}), 400)
    for outsider in (users("coordinator"), users("ministry"), machine):
        problem(outsider("GET", "/webhook-sources"), 403, "not_permitted")
        problem(outsider("POST", "/webhook-sources", {"name": "intruder"}), 403, "not_permitted")
        problem(outsider("POST", "/webhook-sources/sed/rotate-secret", {}), 403, "not_permitted")
        problem(outsider("PATCH", "/webhook-sources/sed", {"active": False}), 403, "not_permitted")
    assert changed_tables(before, db_state(web_engine)) == []
    actions = [e["action"] for e in admin.get("/audit?per_page=200")["items"] if e["action"].startswith("webhook_")]
    assert actions == [
        "webhook_source.saved",
        "webhook_source.secret_rotated",
        "webhook_source.secret_rotated",
        "webhook_source.changed",
        "webhook_source.changed",
        "webhook_source.saved",
    ]


@covers("send_message", "list_messages")
def test_a_message_moves_the_instance_that_waits_for_it(users: Users, web_engine: Engine) -> None:
    iid = to_registration(web_engine, "ПД-ТРО-2026")
    to_registration(web_engine, "ПД-ТРО-2027")
    coordinator = users("coordinator")
    body = {"name": "contract.registered", "correlation": {"business_key": "ПД-ТРО-2026"}, "variables": REGISTERED}
    response = coordinator("POST", "/messages", body)
    assert response.status_code == 200, response.json
    outcome = response.json
    assert outcome == {
        "status": "correlated",
        "message_id": outcome["message_id"],
        "name": "contract.registered",
        "instance_id": iid,
        "buffered_until": None,
    }
    instance = coordinator.get(f"/instances/{iid}")
    assert instance["status"] == "completed" and instance["tasks"] == []
    assert instance["variables"]["contract_number"] == "ПД-17/2026"
    actions = [h["action"] for h in instance["history"]]
    assert "message.correlated" in actions and "membership.granted" in actions
    [correlated] = [h for h in instance["history"] if h["action"] == "message.correlated"]
    assert correlated["actor"] == "coordinator" and correlated["details"]["source"] == "api"
    assert "troitsk-go" in {m["organisation"] for m in coordinator.get("/members?year=2026")}

    [listed] = users("admin").get("/messages")
    assert listed["id"] == outcome["message_id"] and listed["status"] == "correlated"
    assert listed["instance_id"] == iid and listed["source"] == "api" and listed["correlated_at"]
    assert listed["correlation"] == {"business_key": "ПД-ТРО-2026"} and listed["key"].startswith("api:coordinator:")
    assert "variables" not in listed
    assert coordinator.get("/messages?status=buffered") == []
    problem(users("ministry")("GET", "/messages"), 403, "not_permitted")
    problem(users("troitsk-go")("GET", "/messages"), 403, "not_permitted")


@covers("send_message", "list_messages")
def test_a_message_no_instance_waits_for_is_buffered_until_one_does(
    users: Users, web_engine: Engine, clock: VirtualClock
) -> None:
    ministry = users.bearer(web_engine, ["ministry"], "minobr")
    body = {
        "name": "contract.registered",
        "correlation": {"business_key": "ПД-ТРО-2026"},
        "variables": REGISTERED,
        "ttl_seconds": 86400,
    }
    response = ministry("POST", "/messages", body)
    assert response.status_code == 202, response.json
    buffered = response.json
    until = (clock.now() + timedelta(days=1)).isoformat()
    assert buffered["status"] == "buffered" and buffered["instance_id"] is None
    assert buffered["buffered_until"] == until
    admin = users("admin")
    [kept] = admin.get("/messages?status=buffered")
    assert kept["id"] == buffered["message_id"] and kept["expires_at"] == until
    assert web_engine.sweep_messages().done == 0, "nothing waits for it yet"

    iid = to_registration(web_engine, "ПД-ТРО-2026")
    assert admin.get(f"/instances/{iid}")["status"] == "running"
    clock.advance(timedelta(minutes=1))
    assert web_engine.sweep_messages().done == 1
    done = admin.get(f"/instances/{iid}")
    assert done["status"] == "completed" and done["variables"]["contract_date"] == "2026-03-11"
    [taken] = admin.get("/messages?status=correlated")
    assert taken["id"] == buffered["message_id"] and taken["instance_id"] == iid
    assert taken["correlated_at"] == clock.now().isoformat()
    assert admin.get("/messages?status=buffered") == []

    # One nobody takes expires with its time to live; the default is seven days.
    lost = ministry.ok("POST", "/messages", {**body, "correlation": {"business_key": "никто"}}, status=202)
    default = ministry.ok("POST", "/messages", {"name": "contract.registered", "correlation": {"x": 1}}, status=202)
    assert default["buffered_until"] == (clock.now() + timedelta(days=7)).isoformat()
    clock.advance(timedelta(days=1, minutes=1))
    assert web_engine.sweep_messages().deferred == 1
    users.forget()  # the sessions ended with the day
    admin = users("admin")
    assert [m["id"] for m in admin.get("/messages?status=expired")] == [lost["message_id"]]
    assert [m["id"] for m in admin.get("/messages?status=buffered")] == [default["message_id"]]
    assert len(admin.get("/messages?limit=2")) == 2 and len(admin.get("/messages")) == 3


@covers("send_message")
def test_the_same_message_twice_moves_the_process_once(users: Users, web_engine: Engine) -> None:
    iid = to_registration(web_engine, "ПД-ТРО-2026")
    coordinator = users("coordinator")
    body = {"name": "contract.registered", "correlation": {"business_key": "ПД-ТРО-2026"}, "variables": REGISTERED}
    first = coordinator.ok("POST", "/messages", body, headers={"Idempotency-Key": "sed-17/2026"})
    assert first["status"] == "correlated"
    history = len(coordinator.get(f"/instances/{iid}")["history"])

    before = db_state(web_engine)
    again = coordinator("POST", "/messages", body, headers={"Idempotency-Key": "sed-17/2026"})
    assert again.status_code == 200
    assert again.json == {**first, "status": "duplicate"}
    in_body = coordinator.ok("POST", "/messages", {**body, "idempotency_key": "sed-17/2026"})
    assert in_body == again.json
    assert changed_tables(before, db_state(web_engine)) == []
    assert len(coordinator.get(f"/instances/{iid}")["history"]) == history

    # A buffered message sent again is a duplicate too (200), and still buffered once.
    early = {**body, "correlation": {"business_key": "ПД-ТРО-2027"}}
    kept = coordinator.ok("POST", "/messages", {**early, "idempotency_key": "sed-18"}, status=202)
    repeated = coordinator.ok("POST", "/messages", early, headers={"Idempotency-Key": "sed-18"})
    assert repeated == {**kept, "status": "duplicate"}
    # Keys are the caller's own: another client's "sed-18" is another message.
    other = users("ministry").ok("POST", "/messages", early, headers={"Idempotency-Key": "sed-18"}, status=202)
    assert other["message_id"] != kept["message_id"]
    assert len(users("admin").get("/messages?status=buffered")) == 2


@covers("send_message", "deploy")
def test_a_message_starts_the_process_that_starts_on_it(users: Users, web_engine: Engine) -> None:
    admin, coordinator = users("admin"), users("coordinator")
    source = document(
        '<bpmn:startEvent id="start"><bpmn:messageEventDefinition messageRef="m_updated"/></bpmn:startEvent>'
        + user_task("check", "Проверить изменения реестра", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "check", "end"),
        "api-on-message",
        attrs='camunda:candidateStarterGroups="coordinator"',
        outside='<bpmn:message id="m_updated" name="registry.updated"/>',
    )
    assert deploy(admin, source, "on-message.bpmn").status_code == 201
    response = coordinator("POST", "/messages", {"name": "registry.updated", "variables": {"changes": 3}})
    assert response.status_code == 201, response.json
    started = response.json
    assert started["status"] == "started" and started["instance_id"]
    instance = coordinator.get(f"/instances/{started['instance_id']}")
    assert instance["process_key"] == "api-on-message" and instance["variables"]["changes"] == 3
    assert [t["element_id"] for t in instance["tasks"]] == ["check"]
    assert [m["status"] for m in admin.get("/messages")] == ["correlated"]

    # Who may not start that process may not start it by a message either; nothing is kept.
    before = db_state(web_engine)
    problem(users("ministry")("POST", "/messages", {"name": "registry.updated"}), 403, "not_permitted")
    problem(users("ministry")("POST", "/messages", {"name": "registry.updated"}), 403, "not_permitted")
    assert changed_tables(before, db_state(web_engine)) == []

    # A message that waits for a process not deployed yet, which the sweep may not start, stays
    # buffered without stopping the sweep: the messages after it are still delivered.
    early = coordinator.ok("POST", "/messages", {"name": "registry.checked"}, status=202)
    registered = {
        "name": "contract.registered",
        "correlation": {"business_key": "ПД-ТРО-2028"},
        "variables": REGISTERED,
    }
    waiting = users("ministry").ok("POST", "/messages", registered, status=202)
    checked = source.replace(b"registry.updated", b"registry.checked").replace(b"api-on-message", b"api-checked")
    assert deploy(admin, checked, "checked.bpmn").status_code == 201
    iid = to_registration(web_engine, "ПД-ТРО-2028")
    assert web_engine.sweep_messages().done == 1
    statuses = {m["id"]: m["status"] for m in admin.get("/messages")}
    assert statuses[early["message_id"]] == "buffered" and statuses[waiting["message_id"]] == "correlated"
    assert admin.get(f"/instances/{iid}")["status"] == "completed"


@covers("send_message")
def test_ambiguous_and_malformed_messages_are_refused_and_write_nothing(users: Users, web_engine: Engine) -> None:
    first = to_registration(web_engine, "ПД-ТРО-2026")
    second = to_registration(web_engine, "ПД-ТРО-2027")
    coordinator = users("coordinator")
    machine = users.bearer(web_engine, ["mouo"], "troitsk-go")
    before = db_state(web_engine)
    message = {"name": "contract.registered", "variables": REGISTERED}
    for correlation in ({"process_key": "contract"}, {}, {"aspects": APPLICATION["aspects"]}):
        refused = problem(coordinator("POST", "/messages", {**message, "correlation": correlation}), 409)
        assert refused["code"] == "invalid_state" and "2 instances" in refused["detail"], refused
        assert first in refused["detail"] and second in refused["detail"]
    # A retry with the same key after a refusal is not a duplicate of something never taken.
    problem(coordinator("POST", "/messages", message, headers={"Idempotency-Key": "k-1"}), 409)
    problem(coordinator("POST", "/messages", message, headers={"Idempotency-Key": "k-1"}), 409)
    assert changed_tables(before, db_state(web_engine)) == []

    bad_bodies: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {"name"}),
        ({"name": ""}, {"name"}),
        ({"name": "   "}, {"name"}),
        ({"name": 17}, {"name"}),
        ({"name": "x" * 201}, {"name"}),
        ({"name": "contract.registered", "correlation": ["ПД-ТРО-2026"]}, {"correlation"}),
        ({"name": "contract.registered", "correlation": {"business_key": ["ПД"]}}, {"correlation.business_key"}),
        ({"name": "contract.registered", "correlation": {"business key": "ПД"}}, {"correlation"}),
        ({"name": "contract.registered", "correlation": {"flag": True}}, {"correlation.flag"}),
        ({"name": "contract.registered", "variables": {"_state": 1}}, {"variables._state"}),
        ({"name": "contract.registered", "variables": {"not a name": 1}}, {"variables.not a name"}),
        ({"name": "contract.registered", "variables": "ПД-17"}, {"variables"}),
        ({"name": "contract.registered", "ttl_seconds": 0}, {"ttl_seconds"}),
        ({"name": "contract.registered", "ttl_seconds": 91 * 24 * 3600}, {"ttl_seconds"}),
        ({"name": "contract.registered", "ttl_seconds": "1d"}, {"ttl_seconds"}),
        ({"name": "contract.registered", "idempotency_key": ""}, {"idempotency_key"}),
        ({"name": "contract.registered", "idempotency_key": "k" * 201}, {"idempotency_key"}),
        ({"name": "contract.registered", "business_key": "ПД-ТРО-2026"}, {"business_key"}),
    ]
    for body, fields in bad_bodies:
        assert fields_of(problem(coordinator("POST", "/messages", body), 400)) == fields, body
    for key in ("", "k" * 201):
        refused = problem(coordinator("POST", "/messages", message, headers={"Idempotency-Key": key}), 400)
        assert fields_of(refused) == {"Idempotency-Key"}, key
    fields = fields_of(problem(users("admin")("GET", "/messages?status=lost&limit=0"), 400))
    assert fields == {"status", "limit"}
    problem(machine("POST", "/messages", {**message, "correlation": {"business_key": "ПД-ТРО-2026"}}), 403)
    problem(users("troitsk-go")("POST", "/messages", message), 403, "not_permitted")
    problem(users("expert")("POST", "/messages", message), 403, "not_permitted")
    problem(users.anonymous()("POST", "/messages", message), 401, "not_authenticated")
    assert changed_tables(before, db_state(web_engine)) == []

    narrowed = coordinator.ok(
        "POST", "/messages", {**message, "correlation": {"process_key": "contract", "business_key": "ПД-ТРО-2027"}}
    )
    assert (narrowed["status"], narrowed["instance_id"]) == ("correlated", second)
