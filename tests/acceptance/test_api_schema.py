"""Schemathesis against the OpenAPI document: no 5xx, and every response documented.

The document is the registry's own (``create_api().openapi(...)``, built at import so that each
operation becomes a test of its own; schemathesis's lazy ``from_fixture`` loader does not work
with this pytest), and :func:`test_the_app_serves_the_document_under_test` checks that
``/api/v1/openapi.json`` serves exactly it. Every operation is called with generated valid and
invalid data, as an administrator and as a МОУО (both with API tokens), on a database holding
the demo data plus a contract, a Day with a deadline, a document, an extension request, a webhook
subscription with its deliveries, an inbound source and a buffered message, whose ids are mixed
into the generated path parameters so that calls reach real objects and not only 404s. The URL
guard checks webhook URLs as in production, but every host name stands for a public address (no
DNS). Each response must not be a server error, must have a documented status code and content
type, match its schema and carry its documented headers; invalid input must be refused.
SQLite only: this is about the HTTP contract, not the database.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from engine.clock import VirtualClock
from engine.directory import SYSTEM_ACTOR
from engine.engine import Engine
from engine.sandbox import Sandbox
from tests.acceptance.conftest import PUBLIC_ADDRESS, WEB_SETTINGS, url_guard
from tests.acceptance.test_api import (
    PUBLIC_HOOK,
    REGISTERED,
    Users,
    open_task,
    return_for_revision,
    start_contract,
    start_day,
    upload,
)
from tests.conftest import START
from webhooks import outbound

# Schemathesis's default checks but one: ``positive_data_acceptance`` wants every schema-valid
# request accepted, while the engine rightly refuses some with 400/409/422 (a proposed date before
# the deadline, a login already taken, a form the process's own schema refuses).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
    missing_required_header,
    unsupported_method,
]


@dataclass
class Site:
    app: Flask
    engine: Engine
    tokens: dict[str, str]  # who → bearer secret
    ids: dict[str, list[str]]  # path parameter → real values


@pytest.fixture(scope="module")
def site(seeded_sqlite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from storage.db import connect
    from storage.store import SqlStore
    from web.app import create_app

    path = tmp_path_factory.mktemp("schema") / "agglo.db"
    shutil.copy(seeded_sqlite, path)
    url = f"sqlite:///{path}"
    database = connect(url)
    settings_ = WEB_SETTINGS.with_(database_url=url)
    # Generated host names never reach DNS: every name stands for a public address.
    guard = url_guard(settings_, lambda host, port: [PUBLIC_ADDRESS])
    engine = Engine(
        SqlStore(database), VirtualClock(START), sandbox=Sandbox(time_limit=0.5), settings=settings_, url_guard=guard
    )
    app = create_app(settings_, engine, TESTING=False)
    app.logger.disabled = True

    users = Users(app)
    troitsk, coordinator = users("troitsk-go"), users("coordinator")
    contract = start_contract(troitsk)["id"]
    task = return_for_revision(coordinator, troitsk, contract)
    attachment = upload(troitsk, task).json["id"]
    troitsk.ok("POST", f"/tasks/{task}/comments", {"text": "Комментарий"}, status=201)
    day = start_day(users("ministry"), "2026-06-01", ("troitsk-go", "kopeysk-go"))["id"]
    proposal = open_task(troitsk, day, "Task_SubmitProposal")
    extension = troitsk.ok(
        "POST",
        f"/tasks/{proposal['id']}/extension-requests",
        {"reason": "Нужно больше времени", "proposed_date": "2026-04-24"},
        status=201,
    )["id"]
    spare, _ = engine.create_token(SYSTEM_ACTOR, "spare", ["coordinator"], "rcoko")
    tokens = {
        "admin": engine.create_token(SYSTEM_ACTOR, "schema-admin", ["admin"], "rcoko")[1],
        "mouo": engine.create_token(SYSTEM_ACTOR, "schema-mouo", ["mouo"], "troitsk-go")[1],
    }
    admin = users("admin")
    definition = admin.get("/definitions?key=contract")["items"][0]["id"]
    subscription = admin.ok("POST", "/webhooks", {"url": PUBLIC_HOOK}, status=201)["id"]
    admin.ok("POST", "/webhook-sources", {"name": "sed"}, status=201)
    outbound.dispatch(engine.store, engine.clock, "schema-worker")
    delivery = admin.get(f"/webhooks/{subscription}/deliveries?limit=1")[0]["id"]
    message = {"name": "contract.registered", "correlation": {"business_key": "ПД-1"}, "variables": REGISTERED}
    admin.ok("POST", "/messages", message, status=202)
    ids = {
        "definition_id": [definition],
        "process_key": ["contract", "day"],
        "instance_id": [contract, day],
        "task_id": [task, proposal["id"]],
        "attachment_id": [attachment],
        "deadline_id": [proposal["deadline"]["id"]],
        "request_id": [extension],
        "token_id": [spare.id],
        "login": ["kopeysk-go"],
        "subscription_id": [subscription],
        "delivery_id": [delivery],
        "name": ["sed"],
    }
    CURRENT.app = app
    yield Site(app, engine, tokens, ids)
    CURRENT.app = None
    database.dispose()


def _document() -> dict[str, Any]:
    from web.api import create_api

    return create_api().openapi("http://localhost/api/v1")


class _CurrentApp:
    """The WSGI app generated requests go to: the module's site, once it is built."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "the site fixture builds the app"
        return self.app(environ, start_response)


CURRENT = _CurrentApp()
schema = schemathesis.openapi.from_dict(_document())
schema.app = CURRENT


def test_the_app_serves_the_document_under_test(site: Site) -> None:
    served = site.app.test_client().get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.json == _document()


def _pick(generated: str, choices: list[str]) -> str:
    """Most generated ids become a real one (chosen by the generated value, so a failure replays)."""
    digest = hashlib.sha256(generated.encode("utf-8", "surrogatepass")).digest()
    return generated if digest[0] % 4 == 0 else choices[digest[1] % len(choices)]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_response_matches_the_document(case: Any, site: Site) -> None:
    for name, value in list((case.path_parameters or {}).items()):
        if name in site.ids and isinstance(value, str):
            case.path_parameters[name] = _pick(value, site.ids[name])
    who = "mouo" if hashlib.sha256(repr(case.body).encode()).digest()[0] % 3 == 0 else "admin"
    case.call_and_validate(headers={"Authorization": f"Bearer {site.tokens[who]}"}, checks=CHECKS)
