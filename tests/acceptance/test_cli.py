"""The `agglo` console script, run as a user would: the whole contract through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

AGGLO = str(Path(sys.executable).parent / "agglo")

APPLICATION = {
    "directions": ["msoko"],
    "aspects": "Развитие муниципальной системы оценки качества образования",
    "contact": {"name": "Иванова Анна Петровна", "email": "ivanova@troitsk.example"},
    "term_until": f"{datetime.now(UTC).year}-12-31",
}


class Cli:
    def __init__(self, workdir: Path) -> None:
        self.env = {
            **os.environ,
            "AGGLO_DATABASE_URL": f"sqlite:///{workdir / 'agglo.db'}",
            "AGGLO_ARGON2_TIME_COST": "1",
            "AGGLO_ARGON2_MEMORY_KIB": "8192",
        }
        self.cwd = workdir

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [AGGLO, *args], capture_output=True, text=True, env=self.env, cwd=self.cwd, timeout=120, check=False
        )
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    runner = Cli(tmp_path_factory.mktemp("cli"))
    runner.run("db", "upgrade")
    return runner


def task_of(cli: Cli, user: str, element_id: str) -> dict[str, Any]:
    tasks = [t for t in cli.json("tasks", "--as", user) if t["element_id"] == element_id]
    assert len(tasks) == 1, tasks
    return tasks[0]


def test_demo_is_safe_to_run_twice_and_prints_the_password(cli: Cli) -> None:
    first = cli.json("demo")
    second = cli.json("demo")
    assert first["demo_password"] and first["demo_password"] == second["demo_password"]
    assert first["directory"]["users_created"] >= 46 and second["directory"]["users_created"] == 0
    assert second["directory"]["memberships_added"] == 0
    assert [p["created"] for p in second["processes"]] == [False] * len(second["processes"])
    assert "demo password:" in cli.run("demo").stdout


def test_the_whole_contract_through_the_cli(cli: Cli) -> None:
    year = datetime.now(UTC).year
    before = cli.json("members", "--year", str(year))
    assert "troitsk-go" not in {m["code"] for m in before["members"]}

    started = cli.json("start", "contract", "--as", "troitsk-go", "--data", json.dumps(APPLICATION, ensure_ascii=False))
    iid = started["instance_id"]

    review = task_of(cli, "coordinator", "Task_ReviewApplication")
    assert review["instance_id"] == iid and review["form"]["type"] == "object"
    assert {"id", "name", "element_id", "instance_id", "organisation", "assignee", "due_at", "form"} <= set(review)
    assert cli.json("tasks", "--as", "kopeysk-go") == []
    cli.json("claim", review["id"], "--as", "coordinator")
    cli.json(
        "complete",
        review["id"],
        "--as",
        "coordinator",
        "--data",
        json.dumps({"review_decision": "return", "review_comment": "Уточните контактный телефон"}),
    )

    revise = task_of(cli, "troitsk-go", "Task_ReviseApplication")
    assert revise["organisation"] == "troitsk-go"
    fixed = {
        **APPLICATION,
        "contact": {**APPLICATION["contact"], "phone": "+7 35163 20000"},
        "revision_note": "Добавлен телефон",
    }
    cli.json("complete", revise["id"], "--as", "troitsk-go", "--data", json.dumps(fixed, ensure_ascii=False))

    steps = [
        ("coordinator", "Task_ReviewApplication", {"review_decision": "accept"}),
        ("coordinator", "Task_PrepareContract", {"contract_subject": "Взаимодействие по развитию МСОКО"}),
        ("troitsk-go", "Task_SignMouo", {"mouo_signatory": "Петров П.П.", "mouo_signed_on": f"{year}-03-06"}),
        (
            "coordinator",
            "Task_SignCoordinator",
            {"coordinator_signatory": "Директор РЦОКИО", "coordinator_signed_on": f"{year}-03-06"},
        ),
        ("coordinator", "Task_RegisterContract", {"contract_number": f"ПД-1/{year}", "contract_date": f"{year}-03-10"}),
    ]
    for user, element, data in steps:
        task = task_of(cli, user, element)
        cli.json("claim", task["id"], "--as", user)
        cli.json("complete", task["id"], "--as", user, "--data", json.dumps(data, ensure_ascii=False))

    shown = cli.json("instance", iid)
    assert shown["status"] == "completed"
    assert (
        shown["history"][0]["action"] == "instance.started" and shown["history"][-1]["action"] == "instance.completed"
    )
    members = cli.json("members", "--year", str(year))
    troitsk = [m for m in members["members"] if m["code"] == "troitsk-go"]
    assert troitsk and troitsk[0]["name"] == "Троицкий городской округ"
    assert troitsk[0]["contract_number"] == f"ПД-1/{year}"


def test_errors_are_one_line_on_stderr_with_a_nonzero_exit(cli: Cli) -> None:
    bad = cli.run("start", "contract", "--as", "troitsk-go", "--data", "{not json", ok=False)
    assert bad.returncode == 1 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1 and "--data is not valid JSON" in bad.stderr
    refused = cli.run("start", "contract", "--as", "troitsk-go", "--data", "{}", "--json", ok=False)
    assert refused.returncode == 1
    error = json.loads(refused.stderr)
    assert error["error"] == "form_invalid" and {e["field"] for e in error["errors"]} >= {"aspects", "term_until"}
    unknown = cli.run("tasks", "--as", "nobody", ok=False)
    assert unknown.returncode == 1 and "user 'nobody' not found" in unknown.stderr
    missing = cli.run("instance", "does-not-exist", ok=False)
    assert missing.returncode == 1 and "not found" in missing.stderr
    usage = cli.run("complete", ok=False)
    assert usage.returncode == 2


def test_deploy_refusal_names_file_line_and_element(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "groovy.bpmn"
    bad.write_text(
        """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <bpmn:process id="g" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:scriptTask id="Groovy" scriptFormat="groovy"><bpmn:script>println 'hi'</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f" sourceRef="s" targetRef="Groovy"/>
  </bpmn:process>
</bpmn:definitions>""",
        encoding="utf-8",
    )
    result = cli.run("deploy", str(bad), ok=False)
    assert result.returncode == 1
    assert "groovy.bpmn:5 [Groovy]: script language 'groovy' cannot run here" in result.stderr
    assert all(d["key"] != "g" for d in cli.json("definitions"))


def test_simulate_the_2019_cycle(cli: Cli) -> None:
    result = cli.json("simulate", "--year", "2019", "--day-date", "2019-09-20")
    assert result["seconds"] < 30
    summary = result["summary"]
    assert summary["instance.completed"] == 2 and summary["deadline.escalated"] >= 1
    assert summary["extension.requested"] >= 1 and summary["extension.decided"] >= 1
    programme = [
        r for r in result["timeline"] if r["event"] == "task.created" and r["element_id"] == "Task_DraftProgramme"
    ]
    assert programme and "20.09.2019 − 30 дней = 21.08.2019" in programme[0]["detail"]
    report = [
        r
        for r in result["timeline"]
        if r["event"] == "task.created"
        and r["element_id"] == "Task_PrepareAnalytics"
        and "20.09.2019 + 30 дней" in r["detail"]
    ]
    assert report and "21.10.2019" in report[0]["detail"]
    assert result["late_completions"] >= 2
    text = cli.run("simulate", "--year", "2019", "--day-date", "2019-09-20").stdout
    assert "эскалация" in text and "запрос продления" in text
    bad = cli.run("simulate", "--year", "2019", "--day-date", "2020-09-20", ok=False)
    assert bad.returncode == 1 and "--day-date must fall in --year" in bad.stderr


def test_worker_once_and_calendar_import(cli: Cli) -> None:
    cli.run("demo")  # safe to run twice
    totals = cli.json("worker", "--once")
    assert {"timers", "reminders", "start_timers"} <= set(totals)
    fixture = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "xmlcalendar_2019.xml"
    imported = cli.json("calendar", "import", str(fixture))
    assert imported["year"] == 2019
    unsafe = Path(cli.cwd) / "evil.xml"
    unsafe.write_text('<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]><calendar/>')
    refused = cli.run("calendar", "import", str(unsafe), ok=False)
    assert refused.returncode == 1 and "document type declarations" in refused.stderr
    assert isinstance(cli.json("deadlines", "--as", "coordinator"), list)
