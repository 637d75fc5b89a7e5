"""A typed façade over one running SpiffWorkflow ``BpmnWorkflow``.

The engine never touches SpiffWorkflow objects: it starts or restores a :class:`Runtime`,
asks for its ready human tasks, completes one, fires due timers, and saves the state
string. Any failure inside SpiffWorkflow or in our evaluator/service handlers leaves as
:class:`~engine.errors.StepFailed` naming the element; the in-memory workflow is then
discarded by the caller, so nothing half-done is ever saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from ..errors import AggloError, InvalidState, StepFailed
from .parser import CompiledSpecs
from .scripting import AggloScriptEngine
from .state import StateCodec
from .timers import ClockCycle, ClockTimeDate, due_of

_CODEC = StateCodec()
T = TypeVar("T")

HUMAN_SPEC_NAMES = ("UserTask", "ManualTask")


@dataclass(frozen=True)
class ReadyHumanTask:
    """A user or manual task SpiffWorkflow has made ready; ``data`` is its (live) task data."""

    task_id: str
    element_id: str
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class StepRecord:
    """An automatic element that completed during the last operation (for the history)."""

    element_id: str
    kind: str
    name: str | None


@dataclass(frozen=True)
class WaitingEvent:
    """Something an instance waits for besides people: a timer, a message, a signal."""

    element_id: str
    event_type: str
    name: str | None
    due_at: datetime | None


def _kind(task: Any) -> str:
    cls = type(task.task_spec).__name__
    return cls


def _is_human(task: Any) -> bool:
    return bool(getattr(task.task_spec, "manual", False)) and getattr(task.task_spec, "bpmn_id", None) is not None


class Runtime:
    """One instance's workflow in memory, between a load and a save."""

    def __init__(self, workflow: Any, specs: CompiledSpecs, engine: AggloScriptEngine) -> None:
        self._wf = workflow
        self._specs = specs
        self._engine = engine
        self._current: Any = None
        self.steps: list[StepRecord] = []

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        specs: CompiledSpecs,
        engine: AggloScriptEngine,
        variables: Mapping[str, Any],
        message: str | None = None,
        timer_start: str | None = None,
    ) -> Runtime:
        """Start at the none start event; with ``message``, at the start event that catches it (the
        variables are then the message's payload); with ``timer_start``, at that timer start event,
        whose time has come (the scheduler decided it: every occurrence is a new instance)."""
        workflow = BpmnWorkflow(specs.spec, specs.subprocess_specs, script_engine=engine)
        runtime = cls(workflow, specs, engine)
        if timer_start is not None:

            def by_timer() -> None:
                workflow.task_tree.data.update(dict(variables))
                # Preset the timer before the first engine step: SpiffWorkflow would otherwise
                # evaluate the cycle itself from "now" and fire it on its own.
                targets = [t for t in workflow.tasks.values() if getattr(t.task_spec, "bpmn_id", None) == timer_start]
                if not targets:
                    raise InvalidState(f"process {specs.process_id!r} has no timer start event {timer_start!r}")
                now = engine.now().isoformat()
                for task in targets:
                    if isinstance(task.task_spec.event_definition, ClockCycle):
                        # A cycle timer makes a path per fired cycle: exactly one, due now.
                        task._set_internal_data(event_value={"cycles": 1, "next": now, "duration": 0.0})
                    else:
                        task._set_internal_data(event_value=now, event_fired=True)
                runtime._run_engine()

            runtime._guard(by_timer)
            return runtime
        if message is None:
            workflow.task_tree.data.update(dict(variables))
            runtime._guard(runtime._run_engine)
            return runtime

        def by_message() -> None:
            runtime._run_engine()
            event = BpmnEvent(MessageEventDefinition(message), payload=dict(variables))
            if workflow.event_manager.catch(event, internal=False) == 0:
                raise InvalidState(f"process {specs.process_id!r} has no start event for message {message!r}")
            runtime._run_engine()

        runtime._guard(by_message)
        return runtime

    @classmethod
    def restore(cls, specs: CompiledSpecs, engine: AggloScriptEngine, state: str) -> Runtime:
        workflow = _CODEC.loads(state, specs.spec, specs.subprocess_specs)
        workflow.script_engine = engine
        return cls(workflow, specs, engine)

    def rebind(self, engine: AggloScriptEngine) -> Runtime:
        """Ready a kept runtime for the next command: its script engine (the command's actor and
        transaction) and a fresh step log."""
        self._engine = engine
        self._wf.script_engine = engine
        self._current = None
        self.steps = []
        return self

    @property
    def specs(self) -> CompiledSpecs:
        return self._specs

    def dumps(self) -> str:
        return _CODEC.dumps(self._wf)

    # -- queries ------------------------------------------------------------------------------

    @property
    def completed(self) -> bool:
        return bool(self._wf.is_completed())

    def _all_tasks(self, state: int) -> Iterator[Any]:
        # The flat task dicts of the workflow and its subprocesses: much cheaper than walking the tree.
        for task in self._wf.tasks.values():
            if task._state & state:
                yield task
        for sub in self._wf.subprocesses.values():
            for task in sub.tasks.values():
                if task._state & state:
                    yield task

    def human_tasks(self) -> list[ReadyHumanTask]:
        """Ready user and manual tasks, including those inside subprocesses."""
        result = []
        for task in self._all_tasks(TaskState.READY):
            if _is_human(task):
                result.append(ReadyHumanTask(str(task.id), task.task_spec.bpmn_id, _kind(task), task.data))
        return result

    def variables(self) -> dict[str, Any]:
        """The process variables as the instance currently sees them."""
        if self.completed:
            data = dict(self._wf.data)
            last = self._wf.last_task
            if last is not None:
                data.update(last.data)
            return _public(data)
        ready = [t for t in self._all_tasks(TaskState.READY) if _is_human(t)]
        if ready:
            merged: dict[str, Any] = {}
            for task in ready:
                merged.update(task.data)
            return _public(merged)
        waiting = list(self._all_tasks(TaskState.WAITING))
        if waiting:
            return _public(dict(waiting[0].data))
        last = self._wf.last_task
        return _public(dict(last.data) if last is not None else dict(self._wf.data))

    def waiting_events(self) -> list[WaitingEvent]:
        events = []
        for task in self._wf.event_manager.tasks.values():
            spec = task.task_spec
            if not isinstance(spec, CatchingEvent) or not task.has_state(TaskState.WAITING):
                continue
            definition = spec.event_definition
            due: datetime | None = None
            if isinstance(definition, TimerEventDefinition):
                # do_engine_steps ends by refreshing timers, so every waiting timer has its value.
                due = due_of(definition.details(task).value)
            events.append(
                WaitingEvent(
                    spec.bpmn_id or spec.name, type(definition).__name__, getattr(definition, "name", None), due
                )
            )
        return events

    def next_due(self) -> datetime | None:
        dues = [e.due_at for e in self.waiting_events() if e.due_at is not None]
        return min(dues) if dues else None

    # -- commands -----------------------------------------------------------------------------

    def complete(self, task_id: str, data: Mapping[str, Any]) -> None:
        """Complete a ready human task with ``data`` and run everything that follows."""
        task = self._find(task_id)
        if task is None or not task.has_state(TaskState.READY) or not _is_human(task):
            raise InvalidState(f"task {task_id} is not waiting for a person")

        def run() -> None:
            self._current = task
            task.data.update(dict(data))
            task.run()
            self._run_engine()

        self._guard(run)

    def set_variables(self, changes: Mapping[str, Any]) -> None:
        """Change variables where the instance currently holds them: its ready and waiting tasks."""
        holders = list(self._all_tasks(TaskState.READY)) + list(self._all_tasks(TaskState.WAITING))
        for task in holders:
            task.data.update(dict(changes))
            # A waiting task re-inherits its parent's data on every refresh (Task._inherit_data):
            # the parent must hold the new values too, or the change is merged away.
            if task.parent is not None:
                task.parent.data.update(dict(changes))
            # A date timer is computed from variables (e.g. the Day's date): recompute it. A
            # duration runs from when it was reached and keeps its due time.
            if task.has_state(TaskState.WAITING) and isinstance(
                getattr(task.task_spec, "event_definition", None), ClockTimeDate
            ):
                task.internal_data.pop("event_value", None)
                task.internal_data.pop("event_fired", None)
        if not holders:
            self._wf.data.update(dict(changes))
        self._guard(self._run_engine)

    def waiting_messages(self) -> list[str]:
        """Names of the messages this instance waits for now (catch events, boundary events)."""
        return sorted({e.name for e in self.waiting_events() if e.event_type == "MessageEventDefinition" and e.name})

    def catch_message(self, name: str, payload: Mapping[str, Any]) -> bool:
        """Deliver message ``name`` (its payload becomes variables) and run what follows.

        Returns False, changing nothing, when the instance does not wait for that message.
        """
        if name not in self.waiting_messages():
            return False

        def run() -> None:
            self._wf.catch(BpmnEvent(MessageEventDefinition(name), payload=dict(payload)))
            self._run_engine()

        self._guard(run)
        return True

    def fire_timers(self) -> None:
        """Let every due timer fire and run what follows."""
        self._guard(self._run_engine)

    def cancel(self) -> None:
        self._wf.cancel()

    # -- internals ------------------------------------------------------------------------------

    def _find(self, task_id: str) -> Any:
        try:
            uid = UUID(task_id)
        except ValueError:
            return None
        try:
            return self._wf.get_task_from_id(uid)
        except (KeyError, SpiffWorkflowException):
            return None

    def _will(self, task: Any) -> None:
        self._current = task

    def _did(self, task: Any) -> None:
        spec = task.task_spec
        bpmn_id = getattr(spec, "bpmn_id", None)
        if bpmn_id is not None:
            self.steps.append(StepRecord(bpmn_id, _kind(task), getattr(spec, "bpmn_name", None)))

    def _run_engine(self) -> None:
        self._wf.refresh_timers()
        self._wf.do_engine_steps(will_complete_task=self._will, did_complete_task=self._did)

    def _guard(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except (StepFailed, InvalidState):
            raise
        except AggloError as exc:
            raise StepFailed(self._element_of(exc), exc.message) from exc
        except SpiffWorkflowException as exc:
            raise StepFailed(self._element_of(exc), _spiff_reason(exc)) from exc
        except RecursionError as exc:
            raise StepFailed(self._element_of(exc), "recursion too deep") from exc
        except Exception as exc:
            raise StepFailed(self._element_of(exc), f"{type(exc).__name__}: {exc}") from exc

    def _element_of(self, exc: BaseException) -> str:
        task = getattr(exc, "task", None) or self._current
        spec = getattr(task, "task_spec", None) or getattr(exc, "task_spec", None)
        if spec is not None:
            return str(getattr(spec, "bpmn_id", None) or spec.name)
        return self._specs.process_id


def _spiff_reason(exc: SpiffWorkflowException) -> str:
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    for attr in ("data_input", "data_output"):
        ref = getattr(exc, attr, None)
        if ref is not None and getattr(ref, "bpmn_id", None):
            message += f" (variable {ref.bpmn_id!r})"
    notes = [n for n in getattr(exc, "notes", []) if n]
    if notes:
        message += " (" + "; ".join(notes) + ")"
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, AggloError):
        message += f": {cause.message}"
    return message


def _public(data: Mapping[str, Any]) -> dict[str, Any]:
    """Variables without SpiffWorkflow's bookkeeping entries."""
    return {k: v for k, v in data.items() if k != "data_objects" and not callable(v)}
