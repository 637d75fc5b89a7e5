"""Instance state: SpiffWorkflow's serialization, minus the specs, plus our format version.

SpiffWorkflow's default serializer writes the whole process spec into every saved state;
half the bytes and most of the time of a save. Our specs are rebuilt from the deployed BPMN
(and cached), so the state holds only the task tree and data. The document carries two
versions: ours (:data:`STATE_FORMAT`) and SpiffWorkflow's serializer version, so a stored
state can be migrated by either side. Golden fixtures in the tests must keep loading.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.migration.version_migration import MIGRATIONS
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as SPIFF_SERIALIZER_VERSION

from ..errors import AggloError

STATE_FORMAT = 1
"""Our own version of the stored state document; bump with a migration when its shape changes."""


class StateUnreadable(AggloError):
    """A stored instance state cannot be loaded (unknown format or corrupt document)."""

    code = "state_unreadable"


class _SpeclessWorkflowConverter(BpmnWorkflowConverter):
    """Converts a BpmnWorkflow without its specs; the caller supplies them on restore."""

    def to_dict(self, workflow: Any) -> dict[str, Any]:
        dct = {
            "data": self.registry.convert(self.registry.clean(workflow.data)),
            "correlations": workflow.correlations,
            "last_task": str(workflow.last_task.id) if workflow.last_task is not None else None,
            "success": workflow.success,
            "completed": workflow.completed,
            "tasks": self.mapping_to_dict(workflow.tasks),
            "root": str(workflow.task_tree.id),
            "subprocesses": self.mapping_to_dict(workflow.subprocesses),
            "bpmn_events": self.registry.convert(workflow.bpmn_events),
        }
        return dct

    def from_dict_with_specs(self, dct: dict[str, Any], spec: Any, subprocess_specs: dict[str, Any]) -> Any:
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _registry() -> Any:
    registry = BpmnWorkflowSerializer.configure()
    # Task data may hold dates and decimals (form fields, computed deadlines).
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]))
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda v: Decimal(v["value"]))
    return registry


class StateCodec:
    """Turns a running BpmnWorkflow into a JSON string and back, given its specs."""

    def __init__(self) -> None:
        self._serializer = BpmnWorkflowSerializer(registry=_registry())
        self._registry = self._serializer.registry
        self._converter = _SpeclessWorkflowConverter(BpmnWorkflow, self._registry)
        self._encoder = self._serializer._encoder_cls

    def dumps(self, workflow: Any) -> str:
        self._registry._encoder_mode = True
        try:
            dct = self._converter.to_dict(workflow)
        finally:
            self._registry._encoder_mode = False
        dct["format"] = STATE_FORMAT
        dct["serializer_version"] = SPIFF_SERIALIZER_VERSION
        return json.dumps(dct, cls=self._encoder, separators=(",", ":"), ensure_ascii=False)

    def loads(self, text: str, spec: Any, subprocess_specs: dict[str, Any]) -> Any:
        try:
            dct = json.loads(text)
        except ValueError as exc:
            raise StateUnreadable(f"stored state is not JSON: {exc}") from exc
        fmt = dct.pop("format", None)
        if fmt != STATE_FORMAT:
            raise StateUnreadable(f"stored state has format {fmt!r}; this version reads format {STATE_FORMAT}")
        version = dct.pop("serializer_version", None)
        if version != SPIFF_SERIALIZER_VERSION:
            if version not in MIGRATIONS:
                raise StateUnreadable(
                    f"stored state has SpiffWorkflow serializer version {version!r}, which cannot be migrated"
                )
            # SpiffWorkflow's migrations expect the full document shape; give them empty specs.
            dct.setdefault("spec", {"task_specs": {}})
            dct.setdefault("subprocess_specs", {})
            MIGRATIONS[version](dct)
            dct.pop("spec", None)
            dct.pop("subprocess_specs", None)
        return self._converter.from_dict_with_specs(dct, spec, subprocess_specs)
