"""`agglo webhooks …` and `agglo message …`, run as an administrator would, against a real receiver
listening on the loopback interface (allowed by AGGLO_WEBHOOK_ALLOW_HOSTS, as for an on-premise one).

The console script itself (a new process per command) sets up the database, runs the worker and
checks the SSRF refusal; the many other commands run in this process with the same environment
(:class:`InProcess`), milliseconds each instead of a second.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli as agglo
from tests.acceptance.test_cli import Cli
from tests.bpmn import document, flows, user_task
from webhooks import signing

BASE_URL = "https://agglo.example.ru"
MESSAGE_START = document(
    '<bpmn:startEvent id="start"><bpmn:messageEventDefinition messageRef="m"/></bpmn:startEvent>\n'
    + user_task("check", "Проверить документ", 'camunda:candidateGroups="coordinator"')
    + '\n<bpmn:endEvent id="end"/>\n'
    + flows("start", "check", "end"),
    "doc_arrived",
    name="Документ из СЭД",
    outside='<bpmn:message id="m" name="doc.arrived"/>\n',
)


class Receiver:
    """A webhook receiver on 127.0.0.1: records every request, answers the scripted statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((dict(self.headers.items()), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                reply = b"busy, come back later" if status >= 500 else b"thanks"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/agglo"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class InProcess(Cli):
    """:class:`Cli` with the commands run in this process, in the same environment; every engine a
    command opens is disposed of when it ends."""

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        import storage.bootstrap as bootstrap

        real, opened = bootstrap.open_engine, []

        def tracked(*a: Any, **kw: Any) -> Any:
            opened.append(real(*a, **kw))
            return opened[-1]

        bootstrap.open_engine = tracked  # type: ignore[assignment]
        try:
            result = CliRunner().invoke(agglo, list(args), env=self.env, catch_exceptions=False, prog_name="agglo")
        finally:
            bootstrap.open_engine = real
            for engine in opened:
                engine.store.engine.dispose()
        if ok:
            assert result.exit_code == 0, result.stderr
        return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The console script, on a database with the demo data and a process started by a message."""
    runner = Cli(tmp_path_factory.mktemp("cli-webhooks"))
    runner.env.update({"AGGLO_WEBHOOK_ALLOW_HOSTS": "127.0.0.1", "AGGLO_BASE_URL": BASE_URL})
    runner.run("db", "upgrade")
    runner.run("demo")
    process = runner.cwd / "doc-arrived.bpmn"
    process.write_bytes(MESSAGE_START)
    runner.run("deploy", str(process))
    return runner


@pytest.fixture(scope="module")
def cli(script: Cli) -> Cli:
    runner = InProcess(script.cwd)
    runner.env = dict(script.env)
    return runner


@pytest.fixture(scope="module")
def strict(script: Cli) -> Cli:
    """The console script on the same database with no allowed hosts: loopback addresses are refused."""
    runner = Cli(script.cwd)
    runner.env = {k: v for k, v in script.env.items() if k != "AGGLO_WEBHOOK_ALLOW_HOSTS"}
    return runner


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def refused(cli: Cli, *args: str) -> str:
    """Run a command that must fail with exit code 1 and one line on stderr; return that line."""
    result = cli.run(*args, ok=False)
    assert result.returncode == 1 and result.stdout == "", (result.returncode, result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def near(iso: str | None, expected: datetime, slack: timedelta = timedelta(minutes=2)) -> bool:
    assert iso is not None
    return abs(datetime.fromisoformat(iso) - expected) < slack


def test_the_event_catalogue(cli: Cli) -> None:
    catalogue = cli.json("webhooks", "events")
    assert catalogue["version"] == 1
    types = [t["type"] for t in catalogue["types"]]
    assert types[:2] == ["instance.started", "instance.completed"] and "deadline.overdue" in types
    assert all(t["summary"] and t["data"] is not None for t in catalogue["types"])
    assert catalogue["envelope"]["required"][:2] == ["id", "type"]
    lines = cli.run("webhooks", "events").stdout.splitlines()
    assert len(lines) == len(types)
    assert lines[0].split(None, 1) == [
        "instance.started",
        "A process instance started (by a person, a message or its timer).",
    ]


def test_subscriptions_are_added_listed_changed_and_rotated(cli: Cli, strict: Cli, receiver: Receiver) -> None:
    # The SSRF check: a loopback receiver is refused unless its host is allowed, and nothing is written.
    said = refused(strict, "webhooks", "add", receiver.url, "--event", "task.created")
    assert said.startswith(f"error: the URL is refused: {receiver.url}: 127.0.0.1 resolves to 127.0.0.1, a loopback")
    assert "AGGLO_WEBHOOK_ALLOW_HOSTS" in said
    error = json.loads(refused(strict, "webhooks", "add", "http://10.0.0.7/hook", "--json"))
    assert error["error"] == "bad_input" and error["field"] == "url" and "a private address" in error["message"]
    assert cli.json("webhooks", "list") == []

    added = cli.json(
        "webhooks",
        "add",
        receiver.url,
        "--event",
        "task.created,task.completed",
        "--event",
        "deadline.overdue",
        "--organisation",
        "troitsk-go",
        "--description",
        "СЭД Троицка",
    )
    sub_id, secret = added["id"], added["secret"]
    assert secret.startswith("whsec_")
    assert added["event_types"] == ["deadline.overdue", "task.completed", "task.created"]
    assert (added["url"], added["organisation"], added["description"]) == (receiver.url, "troitsk-go", "СЭД Троицка")
    assert (added["active"], added["consecutive_failures"], added["created_by"]) == (True, 0, "system")
    text = cli.run("webhooks", "add", receiver.url + "/all", "--description", "всё").stdout
    assert "secret: whsec_" in text and "shown only now" in text and "[every event]  [every organisation]" in text

    listed = cli.json("webhooks", "list")
    assert listed[0]["id"] == sub_id and len(listed) == 2
    assert "secret" not in json.dumps(listed) and secret not in json.dumps(listed)
    lines = cli.run("webhooks", "list").stdout.splitlines()
    assert lines[0] == (
        f"{sub_id}  active   {receiver.url}  [deadline.overdue, task.completed, task.created]  [troitsk-go]"
    )
    shown = cli.json("webhooks", "show", sub_id)
    assert shown["deliveries"] == [] and shown["url"] == receiver.url and "secret" not in shown
    assert "no deliveries" in cli.run("webhooks", "show", sub_id).stdout

    disabled = cli.json("webhooks", "disable", sub_id)
    assert disabled["active"] is False
    assert f"{sub_id}  disabled" in cli.run("webhooks", "list").stdout
    enabled = cli.json("webhooks", "enable", sub_id)
    assert enabled["active"] is True and enabled["consecutive_failures"] == 0 and enabled["disabled_reason"] is None
    assert "enabled (failure count reset" in cli.run("webhooks", "enable", sub_id).stdout

    rotated = cli.json("webhooks", "rotate", sub_id, "--overlap-hours", "2")
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret
    assert near(rotated["previous_valid_until"], datetime.now(UTC) + timedelta(hours=2))
    assert rotated["rotating_until"] == rotated["previous_valid_until"]
    text = cli.run("webhooks", "rotate", sub_id, "--overlap-hours", "0").stdout
    assert text.startswith(f"new secret of {sub_id}: whsec_") and "the previous secret no longer signs" in text
    assert cli.json("webhooks", "show", sub_id)["rotating_until"] is None
    default = cli.json("webhooks", "rotate", sub_id)
    assert near(default["previous_valid_until"], datetime.now(UTC) + timedelta(hours=24))

    assert "the overlap must be between 0 and 14 days" in refused(
        cli, "webhooks", "rotate", sub_id, "--overlap-hours", "400"
    )
    assert cli.run("webhooks", "rotate", sub_id, "--overlap-hours", "-1", ok=False).returncode == 2
    assert "unknown event type(s): task.exploded" in refused(
        cli, "webhooks", "add", receiver.url, "--event", "task.exploded"
    )
    assert "organisation 'atlantis' does not exist" in refused(
        cli, "webhooks", "add", receiver.url, "--organisation", "atlantis"
    )
    assert refused(cli, "webhooks", "show", "nope") == "error: subscription 'nope' not found"
    assert refused(cli, "webhooks", "enable", "nope") == "error: subscription 'nope' not found"
    assert refused(cli, "webhooks", "redeliver", "nope") == "error: delivery 'nope' not found"
    assert "may not list webhook subscriptions" in refused(cli, "webhooks", "list", "--as", "troitsk-go")
    assert "may not create webhook subscriptions" in refused(
        cli, "webhooks", "add", receiver.url, "--as", "coordinator"
    )
    assert json.loads(refused(cli, "webhooks", "show", "nope", "--json"))["error"] == "not_found"
    assert len(cli.json("webhooks", "list", "--as", "admin")) == 2
    for s in cli.json("webhooks", "list"):  # leave nothing listening for the other tests
        cli.json("webhooks", "disable", s["id"])


def test_deliveries_are_shown_with_their_attempts_and_sent_again(cli: Cli, script: Cli, receiver: Receiver) -> None:
    added = cli.json("webhooks", "add", receiver.url, "--event", "instance.started", "--description", "журнал")
    sub_id, secret = added["id"], added["secret"]
    started = cli.json("message", "send", "doc.arrived", "--data", '{"number": "17/2026"}')
    assert started["status"] == "started" and started["instance_id"]

    receiver.answers = [503]
    worked = script.json("worker", "--once")
    assert worked["webhooks"]["failed"] == 1
    shown = cli.json("webhooks", "show", sub_id)
    [delivery] = shown["deliveries"]
    assert (delivery["event_type"], delivery["status"], delivery["attempts"]) == ("instance.started", "retry", 1)
    assert delivery["instance_id"] == started["instance_id"] and delivery["subscription_id"] == sub_id
    assert delivery["last_error"] == "HTTP 503" and delivery["reply"] == "503 busy, come back later"
    assert near(delivery["next_attempt_at"], datetime.now(UTC), timedelta(seconds=30))
    [attempt] = delivery["attempt_log"]
    assert (attempt["outcome"], attempt["status"], attempt["excerpt"]) == ("retry", 503, "busy, come back later")
    assert attempt["latency_ms"] >= 0 and attempt["error"] is None
    text = script.run("webhooks", "show", sub_id).stdout
    assert f"  {delivery['id']}  instance.started  retry  1 attempt(s)  next attempt " in text
    assert "retry    HTTP 503" in text and "busy, come back later" in text

    again = cli.json("webhooks", "redeliver", delivery["id"])
    assert (again["id"], again["status"], again["last_error"]) == (delivery["id"], "queued", None)
    assert "queued again" in cli.run("webhooks", "redeliver", delivery["id"]).stdout
    script.json("worker", "--once")
    [sent] = cli.json("webhooks", "show", sub_id, "--status", "sent")["deliveries"]
    assert (sent["status"], sent["attempts"], sent["reply"]) == ("sent", 2, "200 thanks")
    assert [(a["outcome"], a["status"]) for a in sent["attempt_log"]] == [("sent", 200), ("retry", 503)]
    assert cli.json("webhooks", "show", sub_id, "--status", "failed")["deliveries"] == []
    assert cli.json("webhooks", "show", sub_id, "--limit", "0")["deliveries"] == []

    # The receiver got the same event twice (same webhook-id), signed with the subscription's secret.
    assert len(receiver.requests) == 2
    (first_headers, first_body), (headers, body) = receiver.requests
    assert first_headers["webhook-id"] == headers["webhook-id"] == sent["event_id"] and first_body == body
    signing.verify([secret], headers, body, datetime.now(UTC))
    event = json.loads(body)
    assert event["type"] == "instance.started" and event["instance"]["id"] == started["instance_id"]
    cli.json("webhooks", "disable", sub_id)


def test_sources_of_incoming_webhooks(cli: Cli) -> None:
    added = cli.json("webhooks", "source", "add", "sed", "--description", "СЭД Минобра")
    assert added["secret"].startswith("whsec_")
    assert (added["name"], added["active"], added["description"]) == ("sed", True, "СЭД Минобра")
    assert (added["path"], added["url"]) == ("/webhooks/in/sed", f"{BASE_URL}/webhooks/in/sed")
    text = cli.run("webhooks", "source", "add", "registry").stdout.splitlines()
    assert text[0] == "source registry created" and text[1].startswith("secret: whsec_")
    assert text[-1] == f"inbound URL: {BASE_URL}/webhooks/in/registry (path /webhooks/in/registry)"

    listed = cli.json("webhooks", "source", "list")
    assert [s["name"] for s in listed] == ["registry", "sed"] and "secret" not in json.dumps(listed)
    assert cli.run("webhooks", "source", "list").stdout.splitlines()[1] == (
        f"sed  active   {BASE_URL}/webhooks/in/sed  СЭД Минобра"
    )

    rotated = cli.json("webhooks", "source", "rotate", "sed", "--overlap-hours", "3")
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != added["secret"]
    assert near(rotated["previous_valid_until"], datetime.now(UTC) + timedelta(hours=3))
    assert (
        "the previous secret is refused now"
        in cli.run("webhooks", "source", "rotate", "sed", "--overlap-hours", "0").stdout
    )

    assert cli.json("webhooks", "source", "disable", "sed")["active"] is False
    assert "sed  disabled" in cli.run("webhooks", "source", "list").stdout
    assert cli.json("webhooks", "source", "enable", "sed")["active"] is True

    assert refused(cli, "webhooks", "source", "add", "sed") == (
        "error: source 'sed' exists: `agglo webhooks source rotate sed` gives it a new secret"
    )
    assert "a source name is 1-64 lower-case letters" in refused(cli, "webhooks", "source", "add", "Bad Name")
    assert refused(cli, "webhooks", "source", "rotate", "nope") == "error: source 'nope' not found"
    assert "may not manage webhook sources" in refused(cli, "webhooks", "source", "list", "--as", "coordinator")


def test_messages_are_sent_and_listed(cli: Cli) -> None:
    correlation = json.dumps({"business_key": "ПД-ТРО-2099"}, ensure_ascii=False)
    data = json.dumps({"contract_number": "17/2099"})
    buffered = cli.json(
        "message",
        "send",
        "contract.registered",
        "--correlation",
        correlation,
        "--data",
        data,
        "--key",
        "reg-1",
        "--ttl-hours",
        "1",
    )
    assert (buffered["status"], buffered["name"], buffered["instance_id"]) == ("buffered", "contract.registered", None)
    assert near(buffered["buffered_until"], datetime.now(UTC) + timedelta(hours=1))
    duplicate = cli.json("message", "send", "contract.registered", "--correlation", correlation, "--key", "reg-1")
    assert duplicate["status"] == "duplicate" and duplicate["message_id"] == buffered["message_id"]
    said = cli.run("message", "send", "contract.registered", "--correlation", correlation, "--key", "reg-1").stdout
    assert said.strip() == (
        f"message contract.registered duplicate: this key was received before (message {buffered['message_id']}); "
        "nothing moved"
    )
    started = cli.run("message", "send", "doc.arrived", "--as", "coordinator").stdout.strip()
    assert started.startswith("message doc.arrived started: instance ")

    listed = cli.json("message", "list", "--status", "buffered")
    mine = [m for m in listed if m["id"] == buffered["message_id"]]
    assert mine and mine[0]["correlation"] == {"business_key": "ПД-ТРО-2099"} and mine[0]["source"] == "cli"
    assert mine[0]["key"] == "cli:system:reg-1"
    assert {m["status"] for m in cli.json("message", "list")} >= {"buffered", "correlated"}
    assert "contract.registered" in cli.run("message", "list").stdout

    assert refused(cli, "message", "send", "x", "--correlation", "[1]") == "error: --correlation must be a JSON object"
    assert "--data is not valid JSON" in refused(cli, "message", "send", "x", "--data", "{nope")
    assert "correlation value of 'k' must be a string or a number" in refused(
        cli, "message", "send", "x", "--correlation", '{"k": [1]}'
    )
    assert "time to live must be between" in refused(cli, "message", "send", "x", "--ttl-hours", "0")
    assert "may not send messages" in refused(cli, "message", "send", "x", "--as", "troitsk-go")
    assert json.loads(refused(cli, "message", "send", "x", "--as", "troitsk-go", "--json"))["error"] == "not_permitted"


def test_the_commands_explain_themselves(cli: Cli, tmp_path: Path) -> None:
    usage = cli.run("webhooks", "--help").stdout
    for name in ("add", "list", "show", "enable", "disable", "rotate", "redeliver", "events", "source"):
        assert f"  {name} " in usage, name
    assert "--overlap-hours" in cli.run("webhooks", "rotate", "--help").stdout
    assert "--ttl-hours" in cli.run("message", "send", "--help").stdout
    assert cli.run("webhooks", "add", ok=False).returncode == 2
