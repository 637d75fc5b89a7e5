"""The script engine SpiffWorkflow calls for every script, condition, timer and service task.

All of it is routed to :class:`engine.sandbox.Sandbox`; nothing reaches Python's own
``eval``/``exec``. Errors leave as our own :class:`~engine.errors.AggloError` subclasses
(wrapped by SpiffWorkflow in a ``WorkflowTaskException`` whose ``__cause__``/``exception``
the runtime unwraps).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from ..clock import Clock
from ..sandbox import Sandbox


class Execution:
    """The ``execution`` object Camunda expressions use (``execution.setVariable('x', 1)``).

    Only these methods are reachable from the sandbox; their targets are the task's data.
    """

    def __init__(
        self, data: dict[str, Any], instance_id: str | None, business_key: str | None, element_id: str | None
    ) -> None:
        self._data = data
        self._instance_id = instance_id
        self._business_key = business_key
        self._element_id = element_id

    def getVariable(self, name: str) -> Any:
        return self._data.get(name)

    def hasVariable(self, name: str) -> bool:
        return name in self._data

    def setVariable(self, name: str, value: Any) -> None:
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise ValueError(f"bad variable name {name!r}")
        self._data[name] = value

    def getVariables(self) -> dict[str, Any]:
        return dict(self._data)

    def getProcessInstanceId(self) -> str | None:
        return self._instance_id

    def getBusinessKey(self) -> str | None:
        return self._business_key

    def getCurrentActivityId(self) -> str | None:
        return self._element_id


ServiceCall = Callable[[Any], Mapping[str, Any] | None]


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow's "environment" hook, routed to the sandbox.

    Some SpiffWorkflow paths (message correlation retrieval expressions) call
    ``script_engine.environment.evaluate`` directly, skipping ``evaluate``; the default
    environment would ``eval`` them. This one never does.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__({})
        self.sandbox = sandbox

    def evaluate(
        self, expression: str, context: Mapping[str, Any], external_context: Mapping[str, Any] | None = None
    ) -> Any:
        return self.sandbox.evaluate(expression, context, external_context)

    def execute(self, script: str, context: dict[str, Any], external_context: Mapping[str, Any] | None = None) -> bool:
        self.sandbox.execute(script, context, external_context)
        return True

    def call_service(self, context: Any, **kwargs: Any) -> Any:
        raise RuntimeError("services are called through the engine's registry")


class AggloScriptEngine(PythonScriptEngine):
    """Evaluates through the sandbox, reads time from the clock, calls services via a callback."""

    def __init__(
        self,
        sandbox: Sandbox,
        clock: Clock,
        *,
        instance_id: str | None = None,
        business_key: str | None = None,
        service_call: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(environment=SandboxEnvironment(sandbox))
        self.sandbox = sandbox
        self.clock = clock
        self.instance_id = instance_id
        self.business_key = business_key
        self.service_call = service_call

    def now(self) -> datetime:
        return self.clock.now()

    def _extra(
        self, task: Any, external_context: Mapping[str, Any] | None, *, with_execution: bool = True
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {"now": self.clock.now}
        if with_execution:
            # Expressions (``${execution.setVariable(...)}``) act on the task's data directly.
            # Scripts do not get it: they run on a copy that replaces the data only on success,
            # and assign variables by name instead.
            spec = getattr(task, "task_spec", None)
            extra["execution"] = Execution(
                task.data, self.instance_id, self.business_key, getattr(spec, "bpmn_id", None)
            )
        if external_context:
            extra.update(external_context)
        return extra

    def validate(self, expression: str) -> None:
        self.sandbox.check_expression(expression)

    def evaluate(self, task: Any, expression: str, external_context: Mapping[str, Any] | None = None) -> Any:
        return self.sandbox.evaluate(expression, task.data, self._extra(task, external_context))

    def execute(self, task: Any, script: str, external_context: Mapping[str, Any] | None = None) -> bool:
        self.sandbox.execute(script, task.data, self._extra(task, external_context, with_execution=False))
        return True

    def call_service(self, task: Any, **kwargs: Any) -> Any:
        if self.service_call is None:
            raise RuntimeError("no service registry is configured")
        return self.service_call(task)
