"""Deploy-time validation: refuse at deploy what would crash, hang or silently misbehave at run time.

Every problem names the file, the line, the element id and the reason. All problems of a
document are collected before refusing, so a modeller fixes them in one pass.

What is refused, and why:

* not a BPMN 2.0 document, duplicate ids, or no executable process;
* element ids that collide with SpiffWorkflow's internal task names (``Start``, ``End`` ...);
* sequence flows without ids (SpiffWorkflow would silently drop them) or with dangling refs;
* element types we do not execute (DMN business rule tasks, complex gateways, data stores,
  link and compensation events): they would change the path silently;
* scripts in languages other than Python, and any script or expression the sandbox refuses;
* unknown message, error, signal and escalation references;
* tasks and events with several outgoing flows (an implicit split: draw a gateway), and
  gateway branches without a condition that are not the default;
* timers whose value is neither ISO-8601 nor a valid expression;
* Camunda extensions whose semantics we cannot honour (listeners, connectors, Java/Groovy
  input/output scripts, custom form types and validators);
* service tasks with no registered handler;
* call activities whose called process is neither in the file nor deployed;
* forms whose schema file is missing or not a JSON Schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from . import juel
from .deadlines import parse_rule
from .directory import Role
from .errors import BadInput, ExpressionError, Problem
from .forms import CAMUNDA_TYPES, SchemaProblem, form_schema
from .model import (
    BPMN_NS,
    CAMUNDA_NAMESPACES,
    FLOW_ELEMENT_KINDS,
    DocumentModel,
    ProcessModel,
    bpmn,
    camunda_attr,
    local_name,
    namespace,
    properties_of,
)
from .reminders import ReminderPolicy
from .sandbox import Sandbox
from .services import ServiceRegistry, implementation_of
from .spiff.timers import ISO_CYCLE, ISO_DATETIME, ISO_DURATION, is_iso_literal, parse_cycle, parse_instant

RESERVED_IDS = frozenset({"Start", "End", "Root", "StartEventSplit", "StartEventJoin"})
RESERVED_SUFFIXES = (".BoundaryEventSplit", ".BoundaryEventJoin", ".EndJoin", " [child]")

UNSUPPORTED_KINDS = {
    "businessRuleTask": "DMN business rule tasks are not supported",
    "complexGateway": "complex gateways are not supported",
}
UNSUPPORTED_EVENT_DEFINITIONS = {
    "linkEventDefinition": "link events are not supported; connect the flow directly",
    "compensateEventDefinition": "compensation events are not supported",
}
MULTI_OUTGOING_KINDS = frozenset(
    {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "startEvent"}
)
CONDITIONAL_GATEWAYS = frozenset({"exclusiveGateway", "inclusiveGateway"})
PYTHON_LANGUAGES = frozenset({"", "python", "python3", "py"})
EXPRESSION_LANGUAGES = frozenset({"", "python", "juel", "http://www.omg.org/spec/bpmn/20100524/model"})

# Camunda extension elements whose meaning we honour, or which do not change behaviour.
IGNORED_CAMUNDA_ELEMENTS = frozenset(
    {
        "properties",
        "property",
        "formData",
        "formField",
        "validation",
        "constraint",
        "value",
        "failedJobRetryTimeCycle",
    }
)
REFUSED_CAMUNDA_ELEMENTS = {
    "executionListener": "execution listeners are not supported",
    "taskListener": "task listeners are not supported",
    "connector": "Camunda connectors are not supported; use a service task with a registered handler",
    "script": "Camunda extension scripts are not supported",
    "inputOutput": "camunda:inputOutput mappings are not supported",
    "field": "camunda:field injection is not supported",
    "errorEventDefinition": "camunda:errorEventDefinition on external tasks is not supported",
}


@dataclass
class ValidationContext:
    filename: str | None
    resources: Mapping[str, bytes]
    sandbox: Sandbox
    services: ServiceRegistry
    known_process: Callable[[str], bool]
    problems: list[Problem] = field(default_factory=list)

    def add(
        self, reason: str, node: etree._Element | None = None, element_id: str | None = None, line: int | None = None
    ) -> None:
        if node is not None:
            element_id = element_id or node.get("id") or _nearest_id(node)
            line = line or (node.sourceline if isinstance(node.sourceline, int) else None)
        problem = Problem(reason, file=self.filename, line=line, element_id=element_id)
        if problem not in self.problems:
            self.problems.append(problem)


def _nearest_id(node: etree._Element) -> str | None:
    current: etree._Element | None = node
    while current is not None:
        if current.get("id"):
            return current.get("id")
        current = current.getparent()
    return None


def _bpmn_elements(root: etree._Element) -> Iterator[etree._Element]:
    for node in root.iter():
        if isinstance(node.tag, str) and namespace(node) == BPMN_NS:
            yield node


def _check_expression(ctx: ValidationContext, text: str | None, node: etree._Element, what: str) -> None:
    if text is None or not text.strip():
        return
    try:
        ctx.sandbox.check_expression(text)
    except ExpressionError as exc:
        ctx.add(f"{what} {text.strip()!r}: {exc.message}", node)
        return
    if juel.is_juel(text) or juel.is_composite(text):
        try:
            calls = juel.method_calls(text)
        except ExpressionError as exc:
            ctx.add(f"{what} {text.strip()!r}: {exc.message}", node)
            return
        for call in calls:
            if not call.startswith("execution."):
                ctx.add(
                    f"{what} {text.strip()!r} calls {call}(), which is a Java method; only "
                    "execution.getVariable/setVariable and the like can be called here",
                    node,
                )


def _value_or_expression(ctx: ValidationContext, text: str | None, node: etree._Element, what: str) -> None:
    """Attributes such as assignee or candidateGroups: a literal, or a ${...} expression."""
    if text and ("${" in text or "#{" in text):
        _check_expression(ctx, text, node, what)


def validate_document(tree: etree._ElementTree, model: DocumentModel, ctx: ValidationContext) -> list[Problem]:
    """Check a parsed BPMN document; return every problem found (empty when deployable)."""
    root = tree.getroot()
    if namespace(root) != BPMN_NS or local_name(root) != "definitions":
        ctx.add(f"not a BPMN 2.0 document: the root element must be bpmn:definitions in namespace {BPMN_NS}", root)
        return ctx.problems

    ids: dict[str, etree._Element] = {}
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        ident = node.get("id")
        if ident is None:
            continue
        if ident in ids and namespace(node) in (BPMN_NS,):
            ctx.add(f"duplicate id {ident!r} (first used on line {ids[ident].sourceline})", node)
        ids.setdefault(ident, node)
        if namespace(node) == BPMN_NS and (ident in RESERVED_IDS or ident.endswith(RESERVED_SUFFIXES)):
            ctx.add(f"id {ident!r} collides with a name the engine uses internally; rename the element", node)

    messages = {n.get("id"): n for n in root.iter(bpmn("message"))}
    errors = {n.get("id"): n for n in root.iter(bpmn("error"))}
    signals = {n.get("id"): n for n in root.iter(bpmn("signal"))}
    escalations = {n.get("id"): n for n in root.iter(bpmn("escalation"))}
    if not model.executable_processes:
        if model.processes:
            for proc in model.processes:
                ctx.add(
                    f'process {proc.id!r} is not executable (isExecutable is not "true"); nothing in this file can run',
                    line=proc.line,
                    element_id=proc.id,
                )
        else:
            ctx.add("the document contains no process", root)
        return ctx.problems

    for node in _bpmn_elements(root):
        kind = local_name(node)
        if kind == "dataStoreReference" or kind == "dataStore":
            ctx.add("data stores are not supported", node)
        elif kind in UNSUPPORTED_KINDS:
            ctx.add(UNSUPPORTED_KINDS[kind], node)
        elif kind in UNSUPPORTED_EVENT_DEFINITIONS:
            ctx.add(UNSUPPORTED_EVENT_DEFINITIONS[kind], node)

    # Correlation: the expressions that pick a message's keys out of its payload and out of the
    # instance's variables run in the sandbox like any other; refuse the bad ones here, not when
    # a message arrives.
    for expression in root.iter(bpmn("correlationPropertyRetrievalExpression")):
        path = next(expression.iterchildren(bpmn("messagePath")), None)
        if path is not None:
            _check_expression(ctx, path.text, expression, "correlation messagePath")
    for key in root.iter(bpmn("correlationPropertyBinding")):
        path = next(key.iterchildren(bpmn("dataPath")), None)
        if path is not None:
            _check_expression(ctx, path.text, key, "correlation dataPath")

    for process in root.iter(bpmn("process")):
        proc_model = model.process(process.get("id") or "")
        if proc_model is None or not proc_model.executable:
            continue
        _validate_process(ctx, process, messages, errors, signals, escalations)
        _validate_forms(ctx, proc_model)
    return ctx.problems


def _validate_process(
    ctx: ValidationContext,
    process: etree._Element,
    messages: Mapping[str | None, etree._Element],
    errors: Mapping[str | None, etree._Element],
    signals: Mapping[str | None, etree._Element],
    escalations: Mapping[str | None, etree._Element],
) -> None:
    nodes: dict[str, etree._Element] = {}
    for node in process.iter():
        if isinstance(node.tag, str) and namespace(node) == BPMN_NS and local_name(node) in FLOW_ELEMENT_KINDS:
            ident = node.get("id")
            if not ident:
                ctx.add(f"{local_name(node)} has no id", node)
                continue
            nodes[ident] = node

    if not any(local_name(n) == "startEvent" and n.getparent() is process for n in nodes.values()):
        ctx.add(f"process {process.get('id')!r} has no start event", process)

    outgoing: dict[str, list[etree._Element]] = {}
    for flow in process.iter(bpmn("sequenceFlow")):
        ident = flow.get("id")
        source, target = flow.get("sourceRef"), flow.get("targetRef")
        if not ident:
            ctx.add(
                f"a sequence flow from {source!r} to {target!r} has no id; the engine would drop it",
                flow,
                element_id=source,
            )
        if not source or source not in nodes:
            ctx.add(f"sequence flow source {source!r} is not an element of this process", flow)
        if not target or target not in nodes:
            ctx.add(f"sequence flow target {target!r} is not an element of this process", flow)
        if source:
            outgoing.setdefault(source, []).append(flow)
        condition = next(flow.iterchildren(bpmn("conditionExpression")), None)
        if condition is not None:
            language = (condition.get("language") or "").strip().lower()
            if language not in EXPRESSION_LANGUAGES:
                ctx.add(
                    f"condition language {condition.get('language')!r} cannot run here; write a ${{...}} "
                    "expression or Python",
                    flow,
                )
            elif camunda_attr(condition, "resource"):
                ctx.add("conditions loaded from external resources are not supported", flow)
            else:
                _check_expression(ctx, condition.text, flow, "condition")

    for ident, node in nodes.items():
        kind = local_name(node)
        flows = outgoing.get(ident, [])
        if len(flows) > 1 and kind not in MULTI_OUTGOING_KINDS:
            conditional = [f for f in flows if next(f.iterchildren(bpmn("conditionExpression")), None) is not None]
            if conditional:
                ctx.add(
                    f"{kind} has {len(flows)} outgoing flows, some conditional; conditional flows out of "
                    "an activity are not supported: draw an exclusive or inclusive gateway",
                    node,
                )
            else:
                ctx.add(
                    f"{kind} has {len(flows)} unconditional outgoing flows (an implicit parallel split); "
                    "draw a parallel gateway",
                    node,
                )
        if kind in CONDITIONAL_GATEWAYS and len(flows) > 1:
            default = node.get("default")
            if default is not None and default not in {f.get("id") for f in flows}:
                ctx.add(f"default flow {default!r} is not an outgoing flow of this gateway", node)
            for flow in flows:
                has_condition = next(flow.iterchildren(bpmn("conditionExpression")), None) is not None
                if not has_condition and flow.get("id") != default:
                    ctx.add(
                        f"flow {flow.get('id')!r} out of {kind} {ident!r} has no condition and is not the default flow",
                        flow,
                    )
        _validate_element(ctx, node, kind, messages, errors, signals, escalations, nodes)


def _validate_element(
    ctx: ValidationContext,
    node: etree._Element,
    kind: str,
    messages: Mapping[str | None, etree._Element],
    errors: Mapping[str | None, etree._Element],
    signals: Mapping[str | None, etree._Element],
    escalations: Mapping[str | None, etree._Element],
    nodes: Mapping[str, etree._Element],
) -> None:
    _validate_extensions(ctx, node)
    for child in node.iterchildren():
        child_kind = local_name(child)
        if child_kind == "messageEventDefinition":
            ref = child.get("messageRef")
            if ref is not None and ref not in messages:
                ctx.add(f"messageRef {ref!r} does not name a bpmn:message", node)
            elif ref is not None and not (messages[ref].get("name") or "").strip():
                ctx.add(f"message {ref!r} has no name; messages are correlated by name", node)
            elif ref is None and kind in ("startEvent", "intermediateCatchEvent", "boundaryEvent", "receiveTask"):
                ctx.add("a catching message event needs a messageRef", node)
        elif child_kind == "errorEventDefinition":
            ref = child.get("errorRef")
            if ref is not None and ref not in errors:
                ctx.add(f"errorRef {ref!r} does not name a bpmn:error", node)
        elif child_kind == "signalEventDefinition":
            ref = child.get("signalRef")
            if ref is not None and ref not in signals:
                ctx.add(f"signalRef {ref!r} does not name a bpmn:signal", node)
            elif ref is not None and not (signals[ref].get("name") or "").strip():
                ctx.add(f"signal {ref!r} has no name; signals are matched by name", node)
        elif child_kind == "escalationEventDefinition":
            ref = child.get("escalationRef")
            if ref is not None and ref not in escalations:
                ctx.add(f"escalationRef {ref!r} does not name a bpmn:escalation", node)
        elif child_kind == "timerEventDefinition":
            _validate_timer(ctx, node, child)
        elif child_kind == "multiInstanceLoopCharacteristics":
            _validate_multi_instance(ctx, node, child)
        elif child_kind == "standardLoopCharacteristics":
            condition = next(child.iterchildren(bpmn("loopCondition")), None)
            if condition is not None:
                _check_expression(ctx, condition.text, node, "loop condition")
            elif child.get("loopMaximum") is None:
                ctx.add("a loop needs a loopCondition or a loopMaximum", node)
        elif child_kind == "conditionalEventDefinition":
            condition = next(child.iterchildren(bpmn("condition")), None)
            if condition is None or not (condition.text or "").strip():
                ctx.add("a conditional event needs a condition", node)
            else:
                _check_expression(ctx, condition.text, node, "event condition")

    if (
        kind in ("sendTask", "receiveTask")
        and node.get("messageRef") is None
        and not any(local_name(c) == "messageEventDefinition" for c in node.iterchildren())
    ):
        ctx.add(f"{kind} without a messageRef is not supported; use a service task", node)
    if (
        kind in ("sendTask", "receiveTask")
        and node.get("messageRef") is not None
        and node.get("messageRef") not in messages
    ):
        ctx.add(f"messageRef {node.get('messageRef')!r} does not name a bpmn:message", node)
    if kind == "boundaryEvent":
        attached = node.get("attachedToRef")
        if not attached or attached not in nodes:
            ctx.add(f"boundary event is attached to {attached!r}, which is not an activity of this process", node)
        elif not any(local_name(c).endswith("EventDefinition") for c in node.iterchildren()):
            ctx.add("a boundary event needs an event definition", node)
    elif kind == "scriptTask":
        _validate_script_task(ctx, node)
    elif kind == "serviceTask":
        _validate_service_task(ctx, node)
    elif kind == "callActivity":
        called = node.get("calledElement")
        if not called:
            ctx.add("call activity has no calledElement", node)
        elif "${" in called or "#{" in called:
            ctx.add("a calledElement given as an expression is not supported; name the process", node)
        elif called not in _process_ids(node) and not ctx.known_process(called):
            ctx.add(f"called process {called!r} is neither in this file nor deployed; deploy it first", node)
    elif kind in ("userTask", "manualTask"):
        for attr in ("assignee", "candidateUsers", "candidateGroups", "priority"):
            _value_or_expression(ctx, camunda_attr(node, attr), node, f"camunda:{attr}")
        for attr in ("dueDate", "followUpDate"):
            _validate_date_attr(ctx, node, attr)
        _validate_deadline(ctx, node)


KNOWN_ROLES = frozenset(role.value for role in Role)


def _validate_deadline(ctx: ValidationContext, node: etree._Element) -> None:
    """The deadline rule, the reminder policy and the roles named by our properties."""
    props = properties_of(node)
    process = next((a for a in node.iterancestors() if local_name(a) == "process"), None)
    process_props = properties_of(process) if process is not None else {}
    rule = props.get("deadline")
    if rule is not None:
        try:
            parse_rule(rule)
        except BadInput as exc:
            ctx.add(f"deadline: {exc.message}", node)
        if camunda_attr(node, "dueDate"):
            ctx.add("both a deadline rule and camunda:dueDate are given; keep one", node)
    try:
        ReminderPolicy.from_properties(process_props, props)
    except BadInput as exc:
        ctx.add(exc.message, node)
    for key in ("escalation.to", "extension.approver"):
        role = (props.get(key) or process_props.get(key) or "").strip()
        if role and role not in KNOWN_ROLES:
            ctx.add(f"{key} {role!r} is not a role (roles: {', '.join(sorted(KNOWN_ROLES))})", node)
    variable = props.get("deadline.variable")
    if variable is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", variable.strip()):
        ctx.add(f"deadline.variable {variable!r} must be a variable name", node)


def _process_ids(node: etree._Element) -> set[str]:
    root = node.getroottree().getroot()
    return {p.get("id") or "" for p in root.iter(bpmn("process"))}


def _validate_date_attr(ctx: ValidationContext, node: etree._Element, attr: str) -> None:
    value = camunda_attr(node, attr)
    if value is None or not value.strip():
        return
    text = value.strip()
    if "${" in text or "#{" in text:
        _check_expression(ctx, text, node, f"camunda:{attr}")
        return
    if ISO_DURATION.match(text):
        return
    if ISO_DATETIME.match(text):
        try:
            parse_instant(text)
        except ValueError as exc:
            ctx.add(f"camunda:{attr} {text!r} is not a valid date: {exc}", node)
        return
    ctx.add(f"camunda:{attr} {text!r} is neither an ISO-8601 date-time or duration nor a ${{...}} expression", node)


def _validate_timer(ctx: ValidationContext, node: etree._Element, timer: etree._Element) -> None:
    values = [c for c in timer.iterchildren() if local_name(c) in ("timeDate", "timeDuration", "timeCycle")]
    if len(values) != 1:
        ctx.add("a timer needs exactly one of timeDate, timeDuration or timeCycle", node)
        return
    value = values[0]
    text = (value.text or "").strip()
    which = local_name(value)
    if not text:
        ctx.add(f"{which} is empty", node)
        return
    if is_iso_literal(text):
        try:
            if which == "timeCycle":
                if not ISO_CYCLE.match(text):
                    raise ValueError("a cycle must be written R[n]/...")
                parse_cycle(text, datetime(2000, 1, 1, tzinfo=UTC))
            elif which == "timeDuration":
                if not ISO_DURATION.match(text):
                    raise ValueError("a duration must be written P...")
            else:
                parse_instant(text)
        except ValueError as exc:
            ctx.add(f"{which} {text!r} is not valid ISO-8601: {exc}", node)
        return
    if re.match(r"^(P(\d|T\d)|R\d*/|\d{4}-)", text, re.IGNORECASE):
        # Written as ISO-8601 but not valid ISO-8601: a typo, not a variable name.
        ctx.add(f"{which} {text!r} is not valid ISO-8601 (e.g. PT5M, P30D, R3/PT1H, 2026-03-01T09:00:00)", node)
        return
    if which == "timeCycle" and re.match(r"^[0-9*?/,\- ]+$", text) and " " in text:
        ctx.add(f"{which} {text!r}: cron expressions are not supported; write ISO-8601 (e.g. R/P1D)", node)
        return
    _check_expression(ctx, text, node, which)


def _validate_multi_instance(ctx: ValidationContext, node: etree._Element, loop: etree._Element) -> None:
    collection = camunda_attr(loop, "collection")
    if collection is not None:
        name = collection.strip()
        if name[:2] in ("${", "#{") and name.endswith("}"):
            name = name[2:-1].strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            ctx.add(f"camunda:collection {collection!r} must name a variable (e.g. ${{items}})", node)
    cardinality = next(loop.iterchildren(bpmn("loopCardinality")), None)
    if cardinality is not None:
        _check_expression(ctx, cardinality.text, node, "loop cardinality")
    condition = next(loop.iterchildren(bpmn("completionCondition")), None)
    if condition is not None:
        _check_expression(ctx, condition.text, node, "completion condition")
    if collection is None and cardinality is None and next(loop.iterchildren(bpmn("loopDataInputRef")), None) is None:
        ctx.add("a multi-instance activity needs a collection, a loopDataInputRef or a loopCardinality", node)


def _validate_script_task(ctx: ValidationContext, node: etree._Element) -> None:
    language = (node.get("scriptFormat") or "").strip()
    if language.lower() not in PYTHON_LANGUAGES:
        ctx.add(
            f"script language {language!r} cannot run here; scripts must be Python "
            "(they run in a restricted evaluator)",
            node,
        )
        return
    if camunda_attr(node, "resource"):
        ctx.add("scripts loaded from external resources are not supported; put the script in the task", node)
        return
    script = next(node.iterchildren(bpmn("script")), None)
    if script is None or not (script.text or "").strip():
        ctx.add("script task has no script", node)
        return
    try:
        ctx.sandbox.check_script(script.text or "")
    except ExpressionError as exc:
        line = (script.sourceline if isinstance(script.sourceline, int) else 0) + (exc.line or 1) - 1
        ctx.add(f"script refused: {exc.message}", node, line=line or None)


def _validate_service_task(ctx: ValidationContext, node: etree._Element) -> None:
    impl = implementation_of(node)
    if impl.kind == "connector":
        return  # refused with the extension element itself
    if impl.kind == "none":
        ctx.add(
            "service task has no implementation (camunda:class, delegateExpression, expression or "
            'type="external" with a topic)',
            node,
        )
        return
    if impl.kind == "external" and not impl.value:
        ctx.add("external service task has no camunda:topic", node)
        return
    if ctx.services.resolve(impl) is not None:
        return
    if impl.kind == "expression":
        # No handler for this exact expression: we evaluate it ourselves if the sandbox can.
        _check_expression(ctx, impl.value, node, "service expression")
        return
    ctx.add(f"no handler is registered for {impl.describe()}; this service cannot run here", node)


def _validate_extensions(ctx: ValidationContext, node: etree._Element) -> None:
    for ext in node.iterchildren(bpmn("extensionElements")):
        for child in ext.iterchildren():
            if namespace(child) not in CAMUNDA_NAMESPACES:
                continue  # other tools' extensions carry no execution semantics for us
            name = local_name(child)
            if name in ("in", "out") and local_name(node) == "callActivity":
                _validate_mapping(ctx, child, name)
            elif name in REFUSED_CAMUNDA_ELEMENTS:
                ctx.add(REFUSED_CAMUNDA_ELEMENTS[name], child)
            elif name not in IGNORED_CAMUNDA_ELEMENTS:
                ctx.add(f"camunda:{name} is not supported", child)


def _validate_mapping(ctx: ValidationContext, node: etree._Element, direction: str) -> None:
    if (node.get("variables") or "").strip() == "all":
        return
    if node.get("businessKey") is not None:
        ctx.add(f"camunda:{direction} businessKey is not supported", node)
        return
    target = node.get("target")
    source, expression = node.get("source"), node.get("sourceExpression")
    if not target or (source is None) == (expression is None):
        ctx.add(f'camunda:{direction} needs variables="all", or a target with either source or sourceExpression', node)
        return
    if expression is not None:
        _check_expression(ctx, expression, node, f"camunda:{direction} sourceExpression")


def _validate_forms(ctx: ValidationContext, proc_model: ProcessModel) -> None:
    for element in proc_model.elements.values():
        form = element.form
        if form is None:
            continue
        seen: set[str] = set()
        for fld in form.fields:
            if not fld.id:
                ctx.add("a form field has no id", element_id=element.id, line=fld.line)
            elif fld.id in seen:
                ctx.add(f"form field {fld.id!r} is defined twice", element_id=element.id, line=fld.line)
            seen.add(fld.id)
            if fld.type not in CAMUNDA_TYPES:
                ctx.add(
                    f"form field {fld.id!r} has type {fld.type!r}; supported types are "
                    f"{', '.join(sorted(CAMUNDA_TYPES))}",
                    element_id=element.id,
                    line=fld.line,
                )
            if fld.type == "enum" and not fld.options:
                ctx.add(f"enum form field {fld.id!r} has no values", element_id=element.id, line=fld.line)
            for constraint in fld.unknown_constraints:
                ctx.add(
                    f"form field {fld.id!r}: validation constraint {constraint!r} is not supported",
                    element_id=element.id,
                    line=fld.line,
                )
        try:
            form_schema(form, ctx.resources, element.label, ctx.filename, element.line, element.id)
        except SchemaProblem as exc:
            ctx.problems.append(exc.problem)
