"""Build SpiffWorkflow specs from an already-parsed (hardened) BPMN tree.

Only :func:`compile_specs` is public. It never hands SpiffWorkflow a path or a string: the
tree comes from :func:`engine.xml.parse_xml`. The parser classes differ from SpiffWorkflow's
in three ways:

* timers use :mod:`engine.spiff.timers` (our clock, plain ISO-8601 values);
* Camunda multi-instance (``camunda:collection`` / ``camunda:elementVariable``) maps to the
  standard BPMN data input / input item;
* service tasks call the engine's service registry through the script engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, ClassVar

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser
from SpiffWorkflow.bpmn.parser.event_parsers import EventDefinitionParser
from SpiffWorkflow.bpmn.parser.TaskParser import TaskParser
from SpiffWorkflow.bpmn.parser.util import first, full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.data_spec import TaskDataReference
from SpiffWorkflow.bpmn.specs.defaults import (
    CallActivity,
    ParallelMultiInstanceTask,
    SequentialMultiInstanceTask,
    ServiceTask,
)

from ..errors import DefinitionInvalid, Problem
from ..model import CAMUNDA_NAMESPACES
from .timers import ClockCycle, ClockDuration, ClockTimeDate


class AggloServiceTask(ServiceTask):
    """A service task whose work is done by a handler from the engine's service registry."""

    def _execute(self, task: Any) -> Any:
        return task.workflow.script_engine.call_service(task)


@dataclass(frozen=True)
class VariableMapping:
    """One ``camunda:in`` / ``camunda:out`` of a call activity."""

    direction: str  # "in" or "out"
    all_variables: bool = False
    source: str | None = None
    source_expression: str | None = None
    target: str | None = None


class AggloCallActivity(CallActivity):
    """A call activity with Camunda's variable passing.

    As in Camunda 7, only what ``camunda:in`` names goes into the called process and only what
    ``camunda:out`` names comes back (``variables="all"`` passes everything); without mappings
    nothing is passed. The calling task keeps its own variables.
    """

    mappings: tuple[VariableMapping, ...] = ()

    def _evaluate(self, my_task: Any, mapping: VariableMapping, data: Any) -> Any:
        if mapping.source_expression is not None:
            return my_task.workflow.script_engine.sandbox.evaluate(mapping.source_expression, data)
        return data.get(mapping.source)

    def copy_data(self, my_task: Any, subworkflow: Any) -> None:
        start = subworkflow.get_next_task(subworkflow.task_tree, skip_subprocesses=True, spec_name="Start")
        passed: dict[str, Any] = {}
        for mapping in self.mappings:
            if mapping.direction != "in":
                continue
            if mapping.all_variables:
                passed.update(my_task.data)
            elif mapping.target:
                passed[mapping.target] = self._evaluate(my_task, mapping, my_task.data)
        start.set_data(**deepcopy(passed))

    def update_data(self, my_task: Any, subworkflow: Any) -> None:
        result = subworkflow.last_task.data
        for mapping in self.mappings:
            if mapping.direction != "out":
                continue
            if mapping.all_variables:
                my_task.data.update(deepcopy(result))
            elif mapping.target:
                my_task.data[mapping.target] = deepcopy(self._evaluate(my_task, mapping, result))


def _camunda(node: Any, name: str) -> str | None:
    for ns in CAMUNDA_NAMESPACES:
        value = node.get(f"{{{ns}}}{name}")
        if value is not None:
            return str(value)
    return None


def _plain_variable(expression: str) -> str:
    """``${customers}`` or ``customers`` -> ``customers`` (anything else is refused at validation)."""
    text = expression.strip()
    if text[:2] in ("${", "#{") and text.endswith("}"):
        text = text[2:-1].strip()
    return text


class _ClockTimersMixin(EventDefinitionParser):
    def parse_timer_event(self, event: Any) -> Any:
        description = self.get_event_description(event)
        name = self.node.get("name", self.node.get("id"))
        for tag, cls in (("timeDate", ClockTimeDate), ("timeDuration", ClockDuration), ("timeCycle", ClockCycle)):
            node = first(self.xpath(f".//bpmn:{tag}"))
            if node is not None:
                return cls(name, (node.text or "").strip(), description=description)
        raise ValidationException(
            "a timer needs timeDate, timeDuration or timeCycle", node=self.node, file_name=self.filename
        )


class _LocalElementVariable:
    """Multi-instance with Camunda's semantics: the element variable is local to each iteration.

    SpiffWorkflow merges every iteration's data back into the activity when there is no output
    collection, element variable included, so the next iteration finds it "already existing".
    """

    input_item: Any
    data_output: Any
    output_item: Any

    def merge_child(self, workflow: Any, child: Any) -> None:
        if (self.data_output is None or self.output_item is None) and self.input_item is not None:
            child.data.pop(self.input_item.bpmn_id, None)
        super().merge_child(workflow, child)  # type: ignore[misc]


class AggloSequentialMultiInstance(_LocalElementVariable, SequentialMultiInstanceTask):
    pass


class AggloParallelMultiInstance(_LocalElementVariable, ParallelMultiInstanceTask):
    pass


class _CamundaMultiInstanceMixin(TaskParser):
    task: Any
    SEQUENTIAL_MI_CLASS = AggloSequentialMultiInstance
    PARALLEL_MI_CLASS = AggloParallelMultiInstance

    def _add_multiinstance_task(self, loop_characteristics: Any) -> None:
        collection = _camunda(loop_characteristics, "collection")
        if collection is None:
            super()._add_multiinstance_task(loop_characteristics)
            return
        element_var = _camunda(loop_characteristics, "elementVariable")
        sequential = loop_characteristics.get("isSequential") == "true"
        prefix = "bpmn:multiInstanceLoopCharacteristics"
        condition_nodes = self.xpath(f"./{prefix}/bpmn:completionCondition")
        condition = condition_nodes[0].text if len(condition_nodes) > 0 else None
        original = self.spec.task_specs.pop(self.task.name)
        params = {
            "task_spec": "",
            "cardinality": None,
            "data_input": TaskDataReference(_plain_variable(collection)),
            "data_output": None,
            "input_item": TaskDataReference(element_var) if element_var else None,
            "output_item": None,
            "condition": condition,
        }
        cls = self.SEQUENTIAL_MI_CLASS if sequential else self.PARALLEL_MI_CLASS
        self.task = cls(
            self.spec,
            original.name,
            description=f"{'Sequential' if sequential else 'Parallel'} MultiInstance",
            **params,
        )
        self._copy_task_attrs(original, loop_characteristics)


def variable_mappings(node: Any) -> tuple[VariableMapping, ...]:
    """The ``camunda:in`` / ``camunda:out`` elements of a call activity."""
    result = []
    for ext in node.iterchildren("{http://www.omg.org/spec/BPMN/20100524/MODEL}extensionElements"):
        for child in ext.iterchildren():
            tag = child.tag if isinstance(child.tag, str) else ""
            ns, _, local = tag[1:].partition("}")
            if ns not in CAMUNDA_NAMESPACES or local not in ("in", "out"):
                continue
            result.append(
                VariableMapping(
                    direction=local,
                    all_variables=(child.get("variables") or "").strip() == "all",
                    source=child.get("source"),
                    source_expression=child.get("sourceExpression"),
                    target=child.get("target"),
                )
            )
    return tuple(result)


class _CamundaCallActivityMixin(TaskParser):
    def create_task(self) -> Any:
        task: Any = super().create_task()
        task.mappings = variable_mappings(self.node)
        return task


def _agglo_parser_class(base: type, tag: str) -> type:
    mixins: list[type] = []
    if issubclass(base, EventDefinitionParser):
        mixins.append(_ClockTimersMixin)
    if tag == full_tag("callActivity"):
        mixins.append(_CamundaCallActivityMixin)
    mixins.append(_CamundaMultiInstanceMixin)
    return type(f"Agglo{base.__name__}", (*mixins, base), {})


def _spec_class(tag: str, default: type) -> type:
    return {full_tag("serviceTask"): AggloServiceTask, full_tag("callActivity"): AggloCallActivity}.get(tag, default)


class AggloParser(BpmnParser):
    """SpiffWorkflow's BPMN parser with our timers, Camunda multi-instance and service tasks."""

    OVERRIDE_PARSER_CLASSES: ClassVar[dict[str, tuple[type, type]]] = {
        tag: (_agglo_parser_class(parser_cls, tag), _spec_class(tag, spec_cls))
        for tag, (parser_cls, spec_cls) in BpmnParser.PARSER_CLASSES.items()
    }


@dataclass(frozen=True)
class CompiledSpecs:
    """The executable spec of one process and the specs of everything it calls or contains."""

    process_id: str
    spec: Any
    subprocess_specs: dict[str, Any]


def _line_of(
    trees: Iterable[tuple[etree._ElementTree, str | None]], element_id: str | None, filename: str | None
) -> int | None:
    if not element_id:
        return None
    for tree, name in trees:
        if filename and name and name != filename:
            continue
        for node in tree.getroot().iter():
            if node.get("id") == element_id:
                line = node.sourceline
                return line if isinstance(line, int) else None
    return None


def compile_specs(
    documents: list[tuple[etree._ElementTree, str | None]], process_ids: Iterable[str]
) -> dict[str, CompiledSpecs]:
    """Compile ``process_ids`` from ``documents`` (the deployed file first, then its dependencies).

    SpiffWorkflow's own validation errors are translated to :class:`DefinitionInvalid`
    naming the file, line and element id.
    """
    parser = AggloParser()
    try:
        for tree, filename in documents:
            parser.add_bpmn_xml(tree.getroot(), filename)
        result: dict[str, CompiledSpecs] = {}
        for process_id in process_ids:
            spec = parser.get_spec(process_id)
            subprocess_specs = parser.get_subprocess_specs(process_id)
            result[process_id] = CompiledSpecs(process_id, spec, subprocess_specs)
        return result
    except ValidationException as exc:
        element_id = getattr(exc, "id", None) or None
        filename = getattr(exc, "file_name", None) or (documents[0][1] if documents else None)
        line = _line_of(documents, element_id, filename)
        reason = str(exc.args[0]) if exc.args else str(exc)
        raise DefinitionInvalid([Problem(reason, file=filename, line=line, element_id=element_id)]) from exc
    except (AttributeError, KeyError, TypeError, ValueError, AssertionError) as exc:
        # SpiffWorkflow's parser crashes on some malformed-but-well-formed documents; never let
        # that escape as a crash at deploy.
        filename = documents[0][1] if documents else None
        raise DefinitionInvalid([Problem(f"the process could not be compiled: {exc!r}", file=filename)]) from exc
