"""The live-workflow cache: a hit only for the version that was committed, nothing kept from a
failed command, another writer's change always seen, and nothing shared with the caller."""

from __future__ import annotations

import pytest

from engine.clock import VirtualClock
from engine.engine import Engine
from engine.errors import StepFailed
from engine.memory import MemoryStore
from engine.records import InstanceStatus
from engine.sandbox import Sandbox
from engine.settings import Settings
from tests.bpmn import document, flows, sequential, user_task
from tests.conftest import ADMIN, COORDINATOR, seed_directory

GUARDED = document(
    '<bpmn:startEvent id="start"/>'
    + user_task("t1", "First", 'camunda:candidateGroups="coordinator"')
    + '<bpmn:scriptTask id="check" scriptFormat="python"><bpmn:script>ratio = 10 / divisor</bpmn:script>'
    "</bpmn:scriptTask>"
    + user_task("t2", "Second", 'camunda:candidateGroups="coordinator"')
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "t1", "check", "t2", "end"),
    "guarded",
)


def make_engine(store: MemoryStore, clock: VirtualClock, size: int = 1000) -> Engine:
    return Engine(store, clock, sandbox=Sandbox(time_limit=0.5), settings=Settings(runtime_cache_size=size))


@pytest.fixture
def store(clock: VirtualClock) -> MemoryStore:
    store = MemoryStore()
    engine = make_engine(store, clock)
    seed_directory(engine)
    engine.deploy(sequential(3), "seq3.bpmn", ADMIN)
    engine.deploy(GUARDED, "guarded.bpmn", ADMIN)
    return store


def test_the_next_command_reuses_the_committed_workflow(store: MemoryStore, clock: VirtualClock) -> None:
    engine = make_engine(store, clock)
    view = engine.start("seq", COORDINATOR, {"n": 1})
    while view.tasks:
        view = engine.complete(view.tasks[0].task.id, COORDINATOR, {"step": len(view.tasks)})
    assert view.instance.status == InstanceStatus.COMPLETED
    assert (engine.runtimes.hits, engine.runtimes.misses) == (3, 0)
    assert len(engine.runtimes) == 0, "a finished instance is not kept"
    # The same history as an engine that deserializes every time.
    cold = make_engine(store, clock, size=0)
    assert cold.instance(view.instance.id, ADMIN).variables == engine.instance(view.instance.id, ADMIN).variables


def test_a_failed_command_leaves_nothing_behind(store: MemoryStore, clock: VirtualClock) -> None:
    engine = make_engine(store, clock)
    view = engine.start("guarded", COORDINATOR)
    first = view.tasks[0].task.id
    with pytest.raises(StepFailed):
        engine.complete(first, COORDINATOR, {"divisor": 0})  # the script after t1 fails: rolled back
    assert len(engine.runtimes) == 0, "the half-run workflow was not kept"
    view = engine.complete(first, COORDINATOR, {"divisor": 5})  # from the saved state, not the half-run one
    assert engine.instance(view.instance.id, ADMIN).variables["ratio"] == 2
    assert [t.task.element_id for t in view.tasks] == ["t2"]


def test_another_writer_turns_the_entry_into_a_miss(store: MemoryStore, clock: VirtualClock) -> None:
    one, other = make_engine(store, clock), make_engine(store, clock)
    view = one.start("seq", COORDINATOR)  # kept by `one` as version 1
    view = other.complete(view.tasks[0].task.id, COORDINATOR, {"by": "other"})  # version 2, elsewhere
    view = one.complete(view.tasks[0].task.id, COORDINATOR, {"by": "one"})
    assert one.runtimes.misses == 1 and one.runtimes.hits == 0
    variables = one.instance(view.instance.id, ADMIN).variables
    assert variables["by"] == "one"
    assert [t.task.element_id for t in view.tasks] == ["t3"], "it went on from the other engine's state"


def test_the_kept_workflow_shares_nothing_with_the_caller(store: MemoryStore, clock: VirtualClock) -> None:
    engine = make_engine(store, clock)
    view = engine.start("seq", COORDINATOR)
    data = {"items": [1, 2]}
    view = engine.complete(view.tasks[0].task.id, COORDINATOR, data)
    data["items"].append(3)  # the caller's list, changed after the command
    view = engine.complete(view.tasks[0].task.id, COORDINATOR, {})
    assert engine.runtimes.hits == 2  # both completions ran on the kept workflow
    assert engine.instance(view.instance.id, ADMIN).variables["items"] == [1, 2]


def test_the_cache_is_bounded(store: MemoryStore, clock: VirtualClock) -> None:
    engine = make_engine(store, clock, size=2)
    for _ in range(5):
        engine.start("seq", COORDINATOR)
    assert len(engine.runtimes) == 2
