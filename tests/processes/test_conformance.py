"""Conformance over public BPMN corpora: every file deploys and runs to completion, or is refused
at deploy with a named reason. Nothing crashes, hangs, or silently skips a path.

Driving a process: service tasks are completed by a test handler; human tasks by an actor
who matches the task's assignee, candidate users or groups, with data generated from the
task's form; timers by moving the virtual clock to the next due time. Variables that gateway
conditions read are supplied at start, once all true and once all false, so that both sides
of the common ``${approved}`` / ``${!approved}`` split are taken.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.clock import VirtualClock
from engine.directory import COORDINATOR_ORG, Actor, Role
from engine.engine import Engine
from engine.errors import AggloError, DefinitionInvalid
from engine.memory import MemoryStore
from engine.model import bpmn
from engine.ports import InstanceQuery
from engine.records import InstanceStatus, TaskQuery
from engine.sandbox import Sandbox
from engine.services import ServiceRegistry
from engine.xml import parse_xml
from tests.conftest import ADMIN, ROOT, SHARED, START

CAMUNDA = SHARED / "corpora" / "camunda-bpm-examples"
MIWG = SHARED / "corpora" / "miwg-reference"
ARTEFACTS = ROOT / "test-artifacts"
MAX_STEPS = 60


def corpus(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.bpmn")) if folder.is_dir() else []


@dataclass
class Outcome:
    file: str
    deployed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    runs: dict[str, str] = field(default_factory=dict)  # "<key>/<variant>" -> completed | looped | error: ...
    steps: Counter[str] = field(default_factory=Counter)

    @property
    def status(self) -> str:
        return "deployed" if self.deployed else "refused"


def new_engine() -> tuple[Engine, VirtualClock]:
    clock = VirtualClock(START)
    services = ServiceRegistry(fallback=lambda ctx: {})  # the test's handler for every service task
    return Engine(MemoryStore(), clock, sandbox=Sandbox(time_limit=0.5), services=services), clock


def process_ids(path: Path) -> set[str]:
    root = parse_xml(path.read_bytes(), path.name).getroot()
    return {p.get("id") or "" for p in root.iter(bpmn("process"))}


def condition_names(engine: Engine, source: bytes) -> set[str]:
    root = parse_xml(source).getroot()
    names: set[str] = set()
    for node in root.iter(bpmn("conditionExpression")):
        if node.text and node.text.strip():
            names |= engine.sandbox.free_names(node.text)
    return names - {"execution", "now"} - collection_names(source)


def collection_names(source: bytes) -> set[str]:
    """Variables that multi-instance activities iterate over (``camunda:collection``)."""
    root = parse_xml(source).getroot()
    names = set()
    for node in root.iter(bpmn("multiInstanceLoopCharacteristics")):
        for attr, value in node.attrib.items():
            if attr.endswith("}collection"):
                names.add(value.strip().removeprefix("${").removeprefix("#{").removesuffix("}").strip())
    return names


def sample(schema: dict[str, Any] | None, hints: dict[str, Any]) -> dict[str, Any]:
    """Valid data for a form schema, preferring the scenario's values for the fields it names."""
    if not schema:
        return {}
    data: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if prop.get("readOnly"):
            continue
        kind = prop.get("type")
        if name in hints and (kind != "boolean" or isinstance(hints[name], bool)):
            data[name] = hints[name]
        elif "enum" in prop:
            data[name] = prop["enum"][0]
        elif kind == "integer":
            data[name] = int(prop.get("minimum", 1))
        elif kind == "number":
            data[name] = float(prop.get("minimum", 1))
        elif kind == "boolean":
            data[name] = True
        elif prop.get("format") == "date":
            data[name] = "2026-03-02"
        else:
            data[name] = "x" * max(int(prop.get("minLength", 1)), 1)
    return data


def actor_for(task: Any) -> Actor:
    login = task.assignee or (task.candidate_users[0] if task.candidate_users else "driver")
    roles = frozenset(task.candidate_roles) or frozenset({Role.COORDINATOR})
    return Actor(login, task.organisation or COORDINATOR_ORG, roles)


def drive(engine: Engine, clock: VirtualClock, key: str, variables: dict[str, Any], outcome: Outcome) -> str:
    definition = next(d for d in engine.definitions() if d.key == key)
    model = engine.definition(definition.id).model
    starter = Actor(
        "driver", COORDINATOR_ORG, frozenset({Role.COORDINATOR, Role.ADMIN, *model.candidate_starter_groups})
    )
    if model.has_none_start:
        instance_id = engine.start(key, starter, variables).instance.id
    else:
        [view] = engine.start_by_message(model.start_messages[0], starter, variables)
        instance_id = view.instance.id
    for _ in range(MAX_STEPS):
        view = engine.instance(instance_id, ADMIN)
        status = view.instance.status
        if status == InstanceStatus.COMPLETED:
            for entry in view.history:
                if entry.element_id:
                    outcome.steps[entry.element_id] += 1
            return "completed"
        if status != InstanceStatus.RUNNING and status != InstanceStatus.WAITING:
            return f"error: instance is {status.value}: {view.instance.incident}"
        with engine.store.transaction() as tx:
            tasks = tx.list_tasks(TaskQuery(instance_id=instance_id, all_tasks=True))
        if tasks:
            for task in tasks:
                data = sample(engine.task(task.id, ADMIN).form, variables)
                engine.complete(task.id, actor_for(task), data)
        elif view.instance.next_due_at is not None:
            clock.set(max(clock.now(), view.instance.next_due_at))
            engine.fire_timers(instance_id, background=False)
        else:
            return "error: waiting with no task and no timer"
    return "looped"


def run_file(path: Path, root: Path) -> Outcome:
    rel = str(path.relative_to(root))
    outcome = Outcome(rel)
    engine, clock = new_engine()
    source = path.read_bytes()
    try:
        result = engine.deploy(source, path.name, ADMIN)
    except DefinitionInvalid as exc:
        missing = [p for p in exc.problems if "neither in this file nor deployed" in p.reason]
        if not missing or len(missing) != len(exc.problems):
            outcome.refused = [str(p) for p in exc.problems]
            return outcome
        # Deploy the called processes from the same corpus first, as a modeller would.
        wanted = {re.search(r"called process '([^']+)'", p.reason).group(1) for p in missing}  # type: ignore[union-attr]
        for other in corpus(root):
            if other != path and process_ids(other) & wanted:
                engine.deploy(other.read_bytes(), other.name, ADMIN)
                wanted -= process_ids(other)
        try:
            result = engine.deploy(source, path.name, ADMIN)
        except DefinitionInvalid as again:
            outcome.refused = [str(p) for p in again.problems]
            return outcome
    names = condition_names(engine, source)
    for definition in result.definitions:
        outcome.deployed.append(definition.key)
        for variant, value in (("true", True), ("false", False)):
            variables: dict[str, Any] = dict.fromkeys(names, value)
            variables.update({name: [{"item": 1}, {"item": 2}] for name in collection_names(source)})
            try:
                outcome.runs[f"{definition.key}/{variant}"] = drive(engine, clock, definition.key, variables, outcome)
            except AggloError as exc:
                outcome.runs[f"{definition.key}/{variant}"] = f"error: {exc}"
            if not names:
                break
    # Nothing is left behind half-done.
    for instance in engine.instances(ADMIN, InstanceQuery(limit=1000)):
        assert instance.status != InstanceStatus.INCIDENT, instance
    return outcome


CAMUNDA_FILES = corpus(CAMUNDA)
# Without ../shared there is no file to parametrize with: one case that skips, saying why.
_ABSENT = pytest.param(
    None,
    id="corpus-absent",
    marks=pytest.mark.skip(reason=f"{CAMUNDA} is absent: the shared corpora are not beside this checkout"),
)


@pytest.mark.parametrize(
    "path",
    CAMUNDA_FILES or [_ABSENT],
    ids=[str(p.relative_to(CAMUNDA)) for p in CAMUNDA_FILES] or None,
)
def test_camunda_example_deploys_and_completes_or_is_refused_with_a_reason(path: Path) -> None:
    outcome = run_file(path, CAMUNDA)
    if outcome.refused:
        for problem in outcome.refused:
            assert re.match(r"^[^:]+\.bpmn(:\d+)?( \[[^\]]+\])?: .{10,}", problem), problem
        return
    assert outcome.runs, outcome
    for run, result in outcome.runs.items():
        if run.endswith("/true") or "/" not in run or len(outcome.runs) == 1:
            assert result == "completed", (run, result)
        else:
            # The all-false variant may cycle in a revision loop forever (a person would change the
            # answer); it must never fail or hang.
            assert result in ("completed", "looped"), (run, result)


def test_corpus_counts_are_reported(shared_dir: Path) -> None:
    outcomes = [run_file(p, CAMUNDA) for p in CAMUNDA_FILES]
    miwg = [run_file(p, MIWG) for p in corpus(MIWG)]
    counts = {
        "camunda_files": len(outcomes),
        "camunda_deployed": sum(o.status == "deployed" for o in outcomes),
        "camunda_refused": sum(o.status == "refused" for o in outcomes),
        "camunda_runs_completed": sum(r == "completed" for o in outcomes for r in o.runs.values()),
        "camunda_runs_looped": sum(r == "looped" for o in outcomes for r in o.runs.values()),
        "camunda_runs_failed": sum(r.startswith("error") for o in outcomes for r in o.runs.values()),
        "miwg_files": len(miwg),
        "miwg_deployed": sum(o.status == "deployed" for o in miwg),
        "miwg_refused": sum(o.status == "refused" for o in miwg),
        "refusal_reasons": Counter(
            p.split(": ", 1)[1].split(";")[0][:70] for o in outcomes + miwg for p in o.refused
        ).most_common(),
    }
    ARTEFACTS.mkdir(exist_ok=True)
    (ARTEFACTS / "conformance.json").write_text(
        json.dumps(
            {"counts": counts, "files": [o.__dict__ | {"steps": dict(o.steps)} for o in outcomes + miwg]},
            ensure_ascii=False,
            indent=1,
            default=str,
        ),
        encoding="utf-8",
    )
    print("\nconformance:", json.dumps({k: v for k, v in counts.items() if k != "refusal_reasons"}))
    assert counts["camunda_files"] == 54
    assert counts["camunda_deployed"] + counts["camunda_refused"] == 54
    assert counts["camunda_runs_failed"] == 0
    assert counts["miwg_deployed"] + counts["miwg_refused"] == len(miwg)


def test_corpus_is_present_or_skipped_with_a_message(shared_dir: Path) -> None:
    assert CAMUNDA_FILES, f"{CAMUNDA} has no BPMN files"
