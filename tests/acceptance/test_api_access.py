"""Who may do what through the API: every operation × every role, and bad input for every operation.

The objects probed belong to troitsk-go (a contract it started with a comment and a document, its
task in a Day with a deadline, an instance of its in an incident). ``mouo-own`` is troitsk-go
itself, ``mouo-other`` is kopeysk-go (by session and by API token) acting on those objects by
their ids. An outsider gets 404 for what it may not see — never 200 and never 500 — and nothing
is written by a refused request. A 2xx answer to an outsider never mentions troitsk-go's objects.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from engine.clock import VirtualClock
from engine.directory import SYSTEM_ACTOR
from engine.engine import Engine
from tests.acceptance.test_api import (
    DEMO_PASSWORD,
    PDF,
    PUBLIC_HOOK,
    REVISION,
    Caller,
    Users,
    changed_tables,
    db_state,
    into_incident,
    open_task,
    problem,
    return_for_revision,
    start_contract,
    start_day,
    upload,
)
from tests.bpmn import document, flows, user_task

ROLES = ["anonymous", "other-token", "mouo-other", "expert", "ministry", "coordinator", "admin", "mouo-own"]
LOGINS = {
    "mouo-other": "kopeysk-go",
    "expert": "expert",
    "ministry": "ministry",
    "coordinator": "coordinator",
    "admin": "admin",
    "mouo-own": "troitsk-go",
}
OUTSIDERS = ("other-token", "mouo-other", "expert")


class World:
    """troitsk-go's objects, built through the API."""

    def __init__(self, users: Users, engine: Engine, clock: VirtualClock) -> None:
        own, coordinator, admin = users("troitsk-go"), users("coordinator"), users("admin")
        self.users = users
        self.definition = str(admin.get("/definitions?key=contract")["items"][0]["id"])
        self.contract = str(start_contract(own, f"troitsk-{uuid.uuid4().hex[:6]}")["id"])
        self.review_task = str(open_task(coordinator, self.contract, "Task_ReviewApplication")["id"])
        self.task = return_for_revision(coordinator, own, self.contract)
        self.comment = str(own.ok("POST", f"/tasks/{self.task}/comments", {"text": "Исправляем"}, status=201)["id"])
        response = upload(own, self.task)
        assert response.status_code == 201, response.json
        self.attachment = str(response.json["id"])
        self.day = str(start_day(users("ministry"), "2026-06-01", ("troitsk-go",))["id"])
        day_task = open_task(own, self.day, "Task_SubmitProposal")
        self.day_task = str(day_task["id"])
        self.deadline = str(day_task["deadline"]["id"])
        self.incident = into_incident(admin, own, engine, clock)
        self.token = engine.create_token(SYSTEM_ACTOR, f"probe-{uuid.uuid4().hex[:6]}", ["coordinator"], "rcoko")[0].id
        self.engine = engine
        self.extension: str | None = None
        self.subscription: str | None = None
        self.delivery: str | None = None

    def request_extension(self) -> None:
        if self.extension is not None:
            return
        own = self.users("troitsk-go")
        body = {"reason": "Нужно согласовать с ОО", "proposed_date": "2026-04-24"}
        self.extension = str(own.ok("POST", f"/tasks/{self.day_task}/extension-requests", body, status=201)["id"])

    def claim(self) -> None:
        self.users("troitsk-go").ok("POST", f"/tasks/{self.task}/claim")

    def webhooks(self) -> None:
        """A subscription to instance.started with its deliveries (troitsk-go's instances), and a source."""
        if self.subscription is not None:
            return
        from webhooks import outbound

        admin = self.users("admin")
        body = {"url": PUBLIC_HOOK, "event_types": ["instance.started"]}
        self.subscription = str(admin.ok("POST", "/webhooks", body, status=201)["id"])
        admin.ok("POST", "/webhook-sources", {"name": SOURCE}, status=201)
        outbound.dispatch(self.engine.store, self.engine.clock, "probe-worker")
        deliveries = admin.get(f"/webhooks/{self.subscription}/deliveries")
        assert {d["instance_id"] for d in deliveries} == {self.contract, self.day, self.incident}
        self.delivery = str(deliveries[0]["id"])

    def private_ids(self) -> set[str]:
        ids = {
            self.contract,
            self.review_task,
            self.task,
            self.comment,
            self.attachment,
            self.day,
            self.day_task,
            self.deadline,
            self.incident,
        }
        return ids | ({self.extension} if self.extension else set())


def fresh_bpmn() -> bytes:
    key = f"probe-{uuid.uuid4().hex[:8]}"
    body = (
        '<bpmn:startEvent id="start"/>'
        + user_task("t", "Проверка", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "t", "end")
    )
    return document(body, key)


@dataclass(frozen=True)
class Probe:
    """How to call one operation on the world's objects."""

    path: Callable[[World], str]
    body: Callable[[World], Any] | None = None
    files: Callable[[World], dict[str, Any]] | None = None
    prepare: Callable[[World], None] | None = None
    consumes: bool = False  # a success uses the object up: the next role gets a fresh world

    def call(self, caller: Caller, method: str, world: World, **kw: Any) -> TestResponse:
        if self.files is not None:
            return caller(method, self.path(world), data=self.files(world), content_type="multipart/form-data", **kw)
        return caller(method, self.path(world), self.body(world) if self.body else None, **kw)


def _new_user(_: World) -> dict[str, Any]:
    login = f"user-{uuid.uuid4().hex[:8]}"
    return {"login": login, "name": "Новый пользователь", "organisation": "kopeysk-go", "roles": ["mouo"]}


REVISION_START = {k: v for k, v in REVISION.items() if k != "revision_note"}
SOURCE = "probe-sed"
MESSAGE = {"name": "contract.registered", "correlation": {"business_key": "no-such-contract"}, "variables": {"n": 1}}
PROBES: dict[str, Probe] = {
    "openapi": Probe(lambda w: "/openapi.json"),
    # definitions
    "list_definitions": Probe(lambda w: "/definitions"),
    "deploy": Probe(lambda w: "/definitions", files=lambda w: {"file": (io.BytesIO(fresh_bpmn()), "probe.bpmn")}),
    "get_definition": Probe(lambda w: f"/definitions/{w.definition}"),
    "get_definition_xml": Probe(lambda w: f"/definitions/{w.definition}/xml"),
    "start_process": Probe(lambda w: "/processes/contract/start", body=lambda w: {"variables": {**REVISION_START}}),
    # instances
    "list_instances": Probe(lambda w: "/instances?per_page=200"),
    "get_instance": Probe(lambda w: f"/instances/{w.contract}"),
    "cancel_instance": Probe(lambda w: f"/instances/{w.contract}/cancel", body=lambda w: {}, consumes=True),
    "get_variables": Probe(lambda w: f"/instances/{w.contract}/variables"),
    "patch_variables": Probe(
        lambda w: f"/instances/{w.contract}/variables", body=lambda w: {"variables": {"note": "уточнение"}}
    ),
    "retry_instance": Probe(lambda w: f"/instances/{w.incident}/retry"),
    "get_diagram_state": Probe(lambda w: f"/instances/{w.contract}/diagram-state"),
    "get_instance_documents": Probe(lambda w: f"/instances/{w.contract}/documents"),
    "list_incidents": Probe(lambda w: "/incidents"),
    # tasks
    "list_tasks": Probe(lambda w: "/tasks?per_page=200"),
    "get_task": Probe(lambda w: f"/tasks/{w.task}"),
    "get_task_form": Probe(lambda w: f"/tasks/{w.task}/form"),
    "claim_task": Probe(lambda w: f"/tasks/{w.task}/claim", consumes=True),
    "unclaim_task": Probe(lambda w: f"/tasks/{w.task}/unclaim", prepare=World.claim, consumes=True),
    "complete_task": Probe(lambda w: f"/tasks/{w.task}/complete", body=lambda w: {"data": REVISION}, consumes=True),
    "list_comments": Probe(lambda w: f"/tasks/{w.task}/comments"),
    "add_comment": Probe(lambda w: f"/tasks/{w.task}/comments", body=lambda w: {"text": "Комментарий"}),
    "list_attachments": Probe(lambda w: f"/tasks/{w.task}/attachments"),
    "upload_attachment": Probe(
        lambda w: f"/tasks/{w.task}/attachments",
        files=lambda w: {"file": (io.BytesIO(PDF), "Документ.pdf", "application/pdf")},
    ),
    "download_attachment": Probe(lambda w: f"/tasks/{w.task}/attachments/{w.attachment}"),
    # deadlines
    "request_extension": Probe(
        lambda w: f"/tasks/{w.day_task}/extension-requests",
        body=lambda w: {"reason": "Нужно больше времени", "proposed_date": "2026-04-24"},
        consumes=True,
    ),
    "list_deadlines": Probe(lambda w: "/deadlines?per_page=200"),
    "get_deadline": Probe(lambda w: f"/deadlines/{w.deadline}"),
    "list_extension_requests": Probe(lambda w: "/extension-requests", prepare=World.request_extension),
    "decide_extension_request": Probe(
        lambda w: f"/extension-requests/{w.extension}/decision",
        body=lambda w: {"approve": True, "comment": "Согласовано"},
        prepare=World.request_extension,
        consumes=True,
    ),
    # directory
    "list_organisations": Probe(lambda w: "/organisations"),
    "list_members": Probe(lambda w: "/members"),
    "members_dynamics": Probe(lambda w: "/members/dynamics"),
    # account
    "get_me": Probe(lambda w: "/me"),
    "change_password": Probe(
        lambda w: "/me/password",
        body=lambda w: {"old_password": DEMO_PASSWORD, "new_password": DEMO_PASSWORD + "-changed"},
    ),
    "rotate_calendar_token": Probe(lambda w: "/me/calendar-token"),
    # administration
    "list_users": Probe(lambda w: "/users"),
    "create_user": Probe(lambda w: "/users", body=_new_user),
    "get_user": Probe(lambda w: "/users/troitsk-go"),
    "update_user": Probe(lambda w: "/users/troitsk-go", body=lambda w: {"name": "Специалист МОУО"}),
    "list_tokens": Probe(lambda w: "/tokens"),
    "create_token": Probe(
        lambda w: "/tokens",
        body=lambda w: {"name": f"probe-{uuid.uuid4().hex[:6]}", "roles": ["coordinator"], "organisation": "rcoko"},
    ),
    "revoke_token": Probe(lambda w: f"/tokens/{w.token}", consumes=True),
    # notifications, audit, reports
    "list_notifications": Probe(lambda w: "/notifications"),
    "mark_notifications_read": Probe(lambda w: "/notifications/read", body=lambda w: {}),
    "list_audit": Probe(lambda w: "/audit"),
    "overdue_report": Probe(lambda w: "/reports/overdue"),
    # events and webhooks
    "event_catalogue": Probe(lambda w: "/events/catalogue"),
    "list_webhooks": Probe(lambda w: "/webhooks", prepare=World.webhooks),
    "create_webhook": Probe(
        lambda w: "/webhooks", body=lambda w: {"url": PUBLIC_HOOK, "event_types": ["task.created"]}
    ),
    "get_webhook": Probe(lambda w: f"/webhooks/{w.subscription}", prepare=World.webhooks),
    "update_webhook": Probe(
        lambda w: f"/webhooks/{w.subscription}", body=lambda w: {"description": "Проверка"}, prepare=World.webhooks
    ),
    "rotate_webhook_secret": Probe(
        lambda w: f"/webhooks/{w.subscription}/rotate-secret",
        body=lambda w: {"overlap_seconds": 60},
        prepare=World.webhooks,
    ),
    "list_webhook_deliveries": Probe(lambda w: f"/webhooks/{w.subscription}/deliveries", prepare=World.webhooks),
    "list_delivery_attempts": Probe(lambda w: f"/deliveries/{w.delivery}/attempts", prepare=World.webhooks),
    "redeliver": Probe(lambda w: f"/deliveries/{w.delivery}/redeliver", prepare=World.webhooks),
    "list_webhook_sources": Probe(lambda w: "/webhook-sources", prepare=World.webhooks),
    "create_webhook_source": Probe(
        lambda w: "/webhook-sources", body=lambda w: {"name": SOURCE, "description": "СЭД"}, prepare=World.webhooks
    ),
    "rotate_source_secret": Probe(
        lambda w: f"/webhook-sources/{SOURCE}/rotate-secret", body=lambda w: {}, prepare=World.webhooks
    ),
    "update_webhook_source": Probe(
        lambda w: f"/webhook-sources/{SOURCE}", body=lambda w: {"active": True}, prepare=World.webhooks
    ),
    # messages
    "send_message": Probe(lambda w: "/messages", body=lambda w: MESSAGE),
    "list_messages": Probe(lambda w: "/messages"),
}

# Expected status for: ministry, coordinator, admin, expert, mouo-own, mouo-other.
# Anonymous callers get 401 everywhere but the public document; the other МОУО's API token
# gets what its session gets (API tokens have no password and no calendar: 403).
EXPECTED: dict[str, str] = {
    "openapi": "200 200 200 200 200 200",
    "list_definitions": "200 200 200 200 200 200",
    "deploy": "403 403 201 403 403 403",
    "get_definition": "200 200 200 200 200 200",
    "get_definition_xml": "200 200 200 200 200 200",
    "start_process": "403 403 403 403 201 201",
    "list_instances": "200 200 200 200 200 200",
    "get_instance": "200 200 200 404 200 404",
    "cancel_instance": "403 200 200 404 200 404",
    "get_variables": "200 200 200 404 200 404",
    "patch_variables": "200 200 200 404 403 404",
    "retry_instance": "403 200 200 404 403 404",
    "get_diagram_state": "200 200 200 404 200 404",
    "get_instance_documents": "200 200 200 404 200 404",
    "list_incidents": "200 200 200 200 200 200",
    "list_tasks": "200 200 200 200 200 200",
    "get_task": "404 404 200 404 200 404",
    "get_task_form": "404 404 200 404 200 404",
    "claim_task": "404 404 403 404 200 404",
    "unclaim_task": "404 404 200 404 200 404",
    "complete_task": "404 404 403 404 200 404",
    "list_comments": "200 200 200 404 200 404",
    "add_comment": "201 201 201 404 201 404",
    "list_attachments": "200 200 200 404 200 404",
    "upload_attachment": "404 404 403 404 201 404",
    "download_attachment": "200 200 200 404 200 404",
    "request_extension": "404 404 403 404 201 404",
    "list_deadlines": "200 200 200 200 200 200",
    "get_deadline": "200 200 200 404 200 404",
    "list_extension_requests": "200 200 200 200 200 200",
    "decide_extension_request": "403 200 200 404 403 404",
    "list_organisations": "200 200 200 200 200 200",
    "list_members": "200 200 200 200 200 200",
    "members_dynamics": "200 200 200 200 200 200",
    "get_me": "200 200 200 200 200 200",
    "change_password": "204 204 204 204 204 204",
    "rotate_calendar_token": "201 201 201 201 201 201",
    "list_users": "403 403 200 403 403 403",
    "create_user": "403 403 201 403 403 403",
    "get_user": "403 403 200 403 403 403",
    "update_user": "403 403 200 403 403 403",
    "list_tokens": "403 403 200 403 403 403",
    "create_token": "403 403 201 403 403 403",
    "revoke_token": "403 403 200 403 403 403",
    "list_notifications": "200 200 200 200 200 200",
    "mark_notifications_read": "200 200 200 200 200 200",
    "list_audit": "200 200 200 403 403 403",
    "overdue_report": "200 200 200 200 200 200",
    "event_catalogue": "200 200 200 200 200 200",
    "list_webhooks": "403 403 200 403 403 403",
    "create_webhook": "403 403 201 403 403 403",
    "get_webhook": "403 403 200 403 403 403",
    "update_webhook": "403 403 200 403 403 403",
    "rotate_webhook_secret": "403 403 200 403 403 403",
    "list_webhook_deliveries": "403 403 200 403 403 403",
    "list_delivery_attempts": "403 403 200 403 403 403",
    "redeliver": "403 403 200 403 403 403",
    "list_webhook_sources": "403 403 200 403 403 403",
    "create_webhook_source": "403 403 201 403 403 403",
    "rotate_source_secret": "403 403 200 403 403 403",
    "update_webhook_source": "403 403 200 403 403 403",
    "send_message": "202 202 202 403 403 403",
    "list_messages": "403 200 200 403 403 403",
}
TOKEN_ONLY = {"change_password": 403, "rotate_calendar_token": 403}


def expected_status(operation_id: str, role: str, public: bool) -> int:
    if role == "anonymous":
        return 200 if public else 401
    statuses = dict(
        zip(
            ("ministry", "coordinator", "admin", "expert", "mouo-own", "mouo-other"),
            EXPECTED[operation_id].split(),
            strict=True,
        )
    )
    if role == "other-token":
        return TOKEN_ONLY.get(operation_id, int(statuses["mouo-other"]))
    return int(statuses[role])


class Callers:
    def __init__(self, users: Users, engine: Engine) -> None:
        self.users = users
        self.engine = engine
        self._token: Caller | None = None

    def __getitem__(self, role: str) -> Caller:
        if role == "anonymous":
            return self.users.anonymous()
        if role == "other-token":
            if self._token is None:
                self._token = self.users.bearer(self.engine, ["mouo"], "kopeysk-go")
            return self._token
        return self.users(LOGINS[role])


@pytest.fixture
def users(app: Flask) -> Users:
    return Users(app)


def _operations(app: Flask) -> dict[str, Any]:
    return {op.operation_id: op for op in app.extensions["agglo.api"].operations}


def test_the_matrix_covers_every_operation_and_role() -> None:
    from web.api import create_api

    registered = {op.operation_id for op in create_api().operations}
    assert set(PROBES) == registered
    assert set(EXPECTED) == registered
    assert all(len(row.split()) == 6 for row in EXPECTED.values())


TAGS = [
    "Definitions",
    "Instances",
    "Tasks",
    "Deadlines",
    "Directory",
    "Account",
    "Administration",
    "Webhooks",
    "Messages",
    "Other",
]


def _tag(operation: Any) -> str:
    return operation.tag if operation.tag in TAGS else "Other"


@pytest.mark.parametrize("tag", TAGS)
def test_access_matrix(tag: str, app: Flask, users: Users, web_engine: Engine, clock: VirtualClock) -> None:
    """Every operation of this tag × every role: the expected status, nothing written when refused,
    and nothing of troitsk-go's in what an outsider is shown."""
    operations = [op for op in _operations(app).values() if _tag(op) == tag]
    assert operations
    callers = Callers(users, web_engine)
    for role in ROLES:
        callers[role]  # log everyone in before anything is measured
    world = World(users, web_engine, clock)
    mismatches: list[str] = []
    used_up = False
    for op in operations:
        probe = PROBES[op.operation_id]
        for role in ROLES:
            if used_up:  # a success used the objects up: the next caller gets fresh ones
                world, used_up = World(users, web_engine, clock), False
            if probe.prepare:
                probe.prepare(world)
            caller = callers[role]
            want = expected_status(op.operation_id, role, op.public)
            before = db_state(web_engine) if op.method != "GET" and want >= 400 else None
            response = probe.call(caller, op.method, world)
            got = response.status_code
            where = f"{op.method} {op.rule} as {role}"
            if got != want:
                mismatches.append(f"{where}: {got}, expected {want}: {response.get_data(as_text=True)[:200]}")
            if got >= 400:
                if response.mimetype != "application/problem+json":
                    mismatches.append(f"{where}: {got} is not a problem document ({response.mimetype})")
            elif role in OUTSIDERS:
                text = response.get_data(as_text=True)
                leaked = sorted(i for i in world.private_ids() if i in text)
                if leaked:
                    mismatches.append(f"{where}: shows troitsk-go's objects {leaked}")
            if before is not None:
                changed = changed_tables(before, db_state(web_engine))
                if changed:
                    mismatches.append(f"{where}: refused with {got} but wrote to {changed}")
            used_up = used_up or (probe.consumes and 200 <= got < 300)
    assert not mismatches, "\n".join(mismatches)


def test_a_municipality_cannot_reach_another_ones_objects_by_guessing_ids(
    users: Users, web_engine: Engine, clock: VirtualClock
) -> None:
    """kopeysk-go asks for troitsk-go's objects through every path that takes an id: 404, like a missing id."""
    world = World(users, web_engine, clock)
    world.request_extension()
    kopeysk = users("kopeysk-go")
    before = db_state(web_engine)
    urls = [
        ("GET", f"/instances/{world.contract}"),
        ("GET", f"/instances/{world.day}"),
        ("GET", f"/instances/{world.incident}/variables"),
        ("GET", f"/instances/{world.contract}/documents"),
        ("GET", f"/tasks/{world.task}"),
        ("GET", f"/tasks/{world.review_task}/comments"),
        ("GET", f"/tasks/{world.day_task}/form"),
        ("GET", f"/tasks/{world.task}/attachments/{world.attachment}"),
        ("GET", f"/deadlines/{world.deadline}"),
        ("POST", f"/extension-requests/{world.extension}/decision"),
        ("POST", f"/tasks/{world.day_task}/claim"),
        ("POST", f"/instances/{world.contract}/cancel"),
    ]
    for method, url in urls:
        body = {"approve": True} if "decision" in url else ({} if method == "POST" else None)
        mine = problem(kopeysk(method, url, body), 404, "not_found")
        missing = problem(kopeysk(method, url.replace(url.split("/")[2], "0" * 32, 1), body), 404, "not_found")
        assert mine.keys() == missing.keys(), "a hidden object looks exactly like a missing one"
    assert changed_tables(before, db_state(web_engine)) == []
    listings = [
        "/instances?per_page=200",
        "/tasks?per_page=200&status=open",
        "/deadlines?per_page=200",
        "/incidents",
        "/extension-requests",
        "/instances?organisation=troitsk-go",
        "/tasks?organisation=troitsk-go",
        "/deadlines?organisation=troitsk-go",
        f"/tasks?instance_id={world.day}",
        f"/deadlines?instance_id={world.day}",
        f"/extension-requests?instance_id={world.day}",
        "/reports/overdue?organisation=troitsk-go",
    ]
    for url in listings:
        response = kopeysk("GET", url)
        assert response.status_code == 200, url
        text = response.get_data(as_text=True)
        assert not [i for i in world.private_ids() if i in text], url


# -- bad input, for every operation -----------------------------------------------------------------


def _actor_for(operation_id: str) -> str:
    """The role that may perform this operation on the world's objects."""
    row = dict(
        zip(
            ("ministry", "coordinator", "admin", "expert", "mouo-own", "mouo-other"),
            EXPECTED[operation_id].split(),
            strict=True,
        )
    )
    for role in ("mouo-own", "admin", "coordinator", "ministry"):
        if row[role].startswith("2"):
            return role
    raise AssertionError(operation_id)


WRONG_TYPE = {"string": 12345, "integer": "many", "boolean": "perhaps", "object": "text", "array": "text"}


def _wrong_types(schema: dict[str, Any]) -> dict[str, Any]:
    body = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if isinstance(kind, list):
            kind = kind[0]
        body[name] = WRONG_TYPE[kind]
    return body


@pytest.fixture
def world(users: Users, web_engine: Engine, clock: VirtualClock) -> World:
    built = World(users, web_engine, clock)
    built.request_extension()
    built.webhooks()
    return built


def test_json_bodies_refuse_malformed_json_wrong_media_types_and_wrong_types(
    app: Flask, users: Users, web_engine: Engine, world: World
) -> None:
    callers = Callers(users, web_engine)
    for role in ROLES:
        callers[role]
    before = db_state(web_engine)
    anonymous = users.anonymous()
    for op in _operations(app).values():
        if op.body is None:
            continue
        caller = callers[_actor_for(op.operation_id)]
        url = PROBES[op.operation_id].path(world)
        name = f"{op.method} {op.rule}"
        malformed = caller(op.method, url, data=b'{"text": "unterminated', content_type="application/json")
        assert problem(malformed, 400, "bad_input")["detail"].startswith("the body is not valid JSON"), name
        valid = json.dumps(PROBES[op.operation_id].body(world))  # type: ignore[misc]
        problem(caller(op.method, url, data=valid, content_type="text/plain"), 415, "unsupported_type")
        problem(caller(op.method, url, data={"text": "x"}, content_type="application/x-www-form-urlencoded"), 415)
        problem(caller(op.method, url, data=b"", content_type="application/json"), 400)
        oversize = b'{"text": "' + b"x" * (web_engine.settings.max_upload_bytes + 300 * 1024) + b'"}'
        problem(caller(op.method, url, data=oversize, content_type="application/json"), 413, "too_large")
        # Who asks is checked before what was sent: an anonymous caller learns nothing of its input.
        problem(anonymous(op.method, url, data=b"{", content_type="application/json"), 401, "not_authenticated")
        problem(anonymous(op.method, url, data=oversize, content_type="text/plain"), 401, "not_authenticated")
        listed = problem(caller(op.method, url, [valid]), 400, "invalid_request")
        assert [e["field"] for e in listed["errors"]] == [""], name
        wrong = _wrong_types(op.body)
        if wrong:
            refused = problem(caller(op.method, url, wrong), 400, "invalid_request")
            assert {e["field"] for e in refused["errors"]} == set(wrong), (name, refused["errors"])
            assert all(e["code"] and e["message"] for e in refused["errors"]), name
        required = op.body.get("required", [])
        if required:
            missing = problem(caller(op.method, url, {}), 400, "invalid_request")
            assert {e["field"] for e in missing["errors"]} == set(required), (name, missing["errors"])
        if op.body.get("additionalProperties") is False:
            extra = {**PROBES[op.operation_id].body(world), "unexpected": 1}  # type: ignore[misc]
            refused = problem(caller(op.method, url, extra), 400, "invalid_request")
            assert [e["field"] for e in refused["errors"]] == ["unexpected"], name
    assert changed_tables(before, db_state(web_engine)) == []


def _bad_query_value(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "no-such-choice"
    kind = schema.get("type")
    if kind == "integer":
        return "lots"
    if kind == "boolean":
        return "perhaps"
    if schema.get("format") in ("date-time", "date"):
        return "last-tuesday"
    assert kind == "string" and "maxLength" in schema, schema
    return "x" * (schema["maxLength"] + 1)


def test_query_parameters_refuse_wrong_types_with_every_field_named(
    app: Flask, users: Users, web_engine: Engine
) -> None:
    callers = Callers(users, web_engine)
    admin = callers["admin"]
    checked = 0
    for op in _operations(app).values():
        if not op.query:
            continue
        bad = {p.name: _bad_query_value(p.schema) for p in op.query}
        query = "&".join(f"{k}={v}" for k, v in bad.items())
        problem(users.anonymous()(op.method, f"{op.rule}?{query}"), 401, "not_authenticated")
        refused = problem(admin(op.method, f"{op.rule}?{query}"), 400, "invalid_request")
        assert {e["field"] for e in refused["errors"]} == set(bad), (op.rule, refused["errors"])
        for p in op.query:
            if p.schema.get("type") == "integer" and "minimum" in p.schema:
                low = problem(admin(op.method, f"{op.rule}?{p.name}={p.schema['minimum'] - 1}"), 400)
                assert [e["field"] for e in low["errors"]] == [p.name]
        checked += 1
    assert checked >= 10


def test_unknown_ids_are_404_and_write_nothing(app: Flask, users: Users, web_engine: Engine, world: World) -> None:
    callers = Callers(users, web_engine)
    for role in ROLES:
        callers[role]
    before = db_state(web_engine)
    for op in _operations(app).values():
        if not op.path_params:
            continue
        probe = PROBES[op.operation_id]
        caller = callers[_actor_for(op.operation_id)]
        real = probe.path(world)
        segments = real.split("/")
        template = op.rule.split("/")
        for index, part in enumerate(template):
            if not part.startswith("<"):
                continue
            guessed = "/".join([*segments[:index], "no-such-object-0000", *segments[index + 1 :]])
            if probe.files is not None:
                response = caller(op.method, guessed, data=probe.files(world), content_type="multipart/form-data")
            else:
                response = caller(op.method, guessed, probe.body(world) if probe.body else None)
            problem(response, 404, "not_found")
    # A real attachment under another task, a real task of another kind: still 404.
    admin = callers["admin"]
    problem(admin("GET", f"/tasks/{world.review_task}/attachments/{world.attachment}"), 404)
    problem(admin("GET", f"/tasks/{world.day_task}/attachments/{world.comment}"), 404)
    assert changed_tables(before, db_state(web_engine)) == []


def test_uploads_refuse_wrong_media_types_missing_files_and_oversize_bodies(
    users: Users, web_engine: Engine, world: World
) -> None:
    own, admin = users("troitsk-go"), users("admin")
    before = db_state(web_engine)
    limit = web_engine.settings.max_upload_bytes
    for caller, url in ((own, f"/tasks/{world.task}/attachments"), (admin, "/definitions")):
        problem(caller("POST", url, {"file": "x"}), 415, "unsupported_type")
        problem(caller("POST", url, data=b"file=x", content_type="application/x-www-form-urlencoded"), 415)
        missing = problem(caller("POST", url, data={"other": "x"}, content_type="multipart/form-data"), 400)
        assert [e["field"] for e in missing["errors"]] == ["file"]
        empty_name = {"file": (io.BytesIO(PDF), "")}
        problem(caller("POST", url, data=empty_name, content_type="multipart/form-data"), 400)
        huge = {"file": (io.BytesIO(b"0" * (limit + 512 * 1024)), "huge.txt", "text/plain")}
        problem(caller("POST", url, data=huge, content_type="multipart/form-data"), 413)
        huge = {"file": (io.BytesIO(b"0" * (limit + 512 * 1024)), "huge.txt", "text/plain")}
        problem(users.anonymous()("POST", url, data=huge, content_type="multipart/form-data"), 401)
    problem(upload(own, world.task, "big.txt", b"0" * (limit + 1), "text/plain"), 413, "too_large")
    problem(upload(own, world.task, "script.js", b"alert(1)", "text/javascript"), 415, "unsupported_type")
    problem(upload(own, world.task, "../../etc/passwd", b"root", "text/plain"), 415)
    problem(upload(own, world.task, "photo.png", PDF, "image/png"), 415)
    assert changed_tables(before, db_state(web_engine)) == []


def test_if_match_is_checked_before_anything_is_written(
    app: Flask, users: Users, web_engine: Engine, world: World
) -> None:
    callers = Callers(users, web_engine)
    for role in ROLES:
        callers[role]
    before = db_state(web_engine)
    guarded = [op for op in _operations(app).values() if op.if_match]
    assert {op.operation_id for op in guarded} == {"cancel_instance", "patch_variables", "complete_task"}
    for op in guarded:
        probe = PROBES[op.operation_id]
        caller = callers[_actor_for(op.operation_id)]
        url, body = probe.path(world), probe.body(world) if probe.body else None
        for header in ("abc", '"1.5"', "W/x"):
            malformed = problem(caller(op.method, url, body, headers={"If-Match": header}), 400, "invalid_request")
            assert [e["field"] for e in malformed["errors"]] == ["If-Match"]
        stale = problem(caller(op.method, url, body, headers={"If-Match": '"999"'}), 412, "stale_version")
        assert stale["expected_version"] == 999 and stale["current_version"] >= 1
        problem(caller(op.method, url, body, headers={"If-Match": 'W/"0"'}), 412)
    assert changed_tables(before, db_state(web_engine)) == []
    # The current version (strong, weak or *) is accepted.
    version = callers["admin"].get(f"/instances/{world.contract}")["version"]
    coordinator = callers["coordinator"]
    patched = coordinator(
        "PATCH",
        f"/instances/{world.contract}/variables",
        {"variables": {"note": "a"}},
        headers={"If-Match": f'W/"{version}"'},
    )
    assert patched.status_code == 200 and patched.headers["ETag"] == f'"{version + 1}"'
    assert (
        coordinator(
            "PATCH", f"/instances/{world.contract}/variables", {"variables": {"note": "b"}}, headers={"If-Match": "*"}
        ).status_code
        == 200
    )
