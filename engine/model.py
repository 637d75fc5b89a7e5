"""Our own typed reading of a BPMN document.

SpiffWorkflow executes the flow; everything a person or another program needs to know about
an element (its name, lane, documentation and clause, who may act on it, its form, its due
date rule) is read here once, at deploy time, into frozen dataclasses. The engine, the web UI
and the validator all use this model, so SpiffWorkflow's untyped specs stay inside
``engine.spiff``.

Camunda Modeler files are read as they are: the ``camunda:`` extension attributes and elements
(in the current namespace and the legacy ``activiti.org`` one) map to fields here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
CAMUNDA_LEGACY_NS = "http://activiti.org/bpmn"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
CAMUNDA_NAMESPACES = (CAMUNDA_NS, CAMUNDA_LEGACY_NS)

HUMAN_TASK_KINDS = frozenset({"userTask", "manualTask"})

# A clause reference such as "REG 5.6", "DAY 2.8", "ROADMAP 3" or "REG 3.7.4".
CLAUSE_RE = re.compile(r"\b(REG|DAY|ROADMAP|RM)\s*(\d+(?:\.\d+)*)\b")


def bpmn(tag: str) -> str:
    return f"{{{BPMN_NS}}}{tag}"


def local_name(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def namespace(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str) or not tag.startswith("{"):
        return ""
    return tag[1:].split("}", 1)[0]


def camunda_attr(element: etree._Element, name: str) -> str | None:
    """The value of ``camunda:name`` on ``element`` in either Camunda namespace."""
    for ns in CAMUNDA_NAMESPACES:
        value = element.get(f"{{{ns}}}{name}")
        if value is not None:
            return value
    return None


def camunda_children(element: etree._Element, name: str) -> Iterator[etree._Element]:
    """Direct and nested ``camunda:name`` elements under ``element``'s extensionElements."""
    for ext in element.iterchildren(bpmn("extensionElements")):
        for node in ext.iter():
            if local_name(node) == name and namespace(node) in CAMUNDA_NAMESPACES:
                yield node


def text_of(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    text = "".join(str(part) for part in element.itertext()).strip()
    return text or None


@dataclass(frozen=True)
class FormFieldSpec:
    """A ``camunda:formField`` with its validation constraints."""

    id: str
    type: str
    label: str | None = None
    default: str | None = None
    required: bool = False
    readonly: bool = False
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[tuple[str, str], ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict)
    unknown_constraints: tuple[str, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class FormSpec:
    """The form of a user task or start event: generated fields, or a JSON Schema resource."""

    key: str | None = None
    fields: tuple[FormFieldSpec, ...] = ()

    @property
    def schema_resource(self) -> str | None:
        """The JSON Schema file named by ``formKey`` (``schema:x.json`` or ``x.schema.json``)."""
        if not self.key:
            return None
        key = self.key.strip()
        if key.startswith("schema:"):
            return key[len("schema:") :].strip()
        if key.endswith(".schema.json"):
            return key
        return None


@dataclass(frozen=True)
class ElementInfo:
    """One flow element, as people see it on the diagram."""

    id: str
    kind: str
    name: str | None = None
    line: int | None = None
    lane: str | None = None
    documentation: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    assignee: str | None = None
    candidate_users: str | None = None
    candidate_groups: str | None = None
    due_date: str | None = None
    follow_up_date: str | None = None
    priority: str | None = None
    form: FormSpec | None = None

    @property
    def is_human_task(self) -> bool:
        return self.kind in HUMAN_TASK_KINDS

    @property
    def clause(self) -> str | None:
        """The regulation clause this step implements (property ``clause``, else found in its documentation)."""
        explicit = self.properties.get("clause")
        if explicit:
            return explicit.strip()
        if self.documentation:
            match = CLAUSE_RE.search(self.documentation)
            if match:
                return f"{match.group(1)} {match.group(2)}"
        return None

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True)
class ProcessModel:
    """One ``bpmn:process``."""

    id: str
    name: str | None
    executable: bool
    line: int | None
    documentation: str | None = None
    candidate_starter_groups: tuple[str, ...] = ()
    candidate_starter_users: tuple[str, ...] = ()
    elements: Mapping[str, ElementInfo] = field(default_factory=dict)
    start_form: FormSpec | None = None
    initiator_variable: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    has_none_start: bool = True
    start_messages: tuple[str, ...] = ()
    # (element id, "timeDate" | "timeDuration" | "timeCycle", expression) of timer start events
    start_timers: tuple[tuple[str, str, str], ...] = ()

    @property
    def label(self) -> str:
        return self.name or self.id

    def human_task(self, element_id: str) -> ElementInfo | None:
        info = self.elements.get(element_id)
        return info if info is not None and info.is_human_task else None


@dataclass(frozen=True)
class DocumentModel:
    """A whole BPMN file."""

    filename: str | None
    processes: tuple[ProcessModel, ...]

    def process(self, process_id: str) -> ProcessModel | None:
        for proc in self.processes:
            if proc.id == process_id:
                return proc
        return None

    @property
    def executable_processes(self) -> tuple[ProcessModel, ...]:
        return tuple(p for p in self.processes if p.executable)


def _split_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def properties_of(element: etree._Element) -> dict[str, str]:
    """``camunda:properties`` directly on this element (not on nested form fields)."""
    props: dict[str, str] = {}
    for ext in element.iterchildren(bpmn("extensionElements")):
        for holder in ext.iterchildren():
            if local_name(holder) == "properties" and namespace(holder) in CAMUNDA_NAMESPACES:
                for prop in holder.iterchildren():
                    if local_name(prop) == "property":
                        name = prop.get("name")
                        if name:
                            props[name] = prop.get("value") or text_of(prop) or ""
    return props


def _int_or_none(value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _float_or_none(value: str | None) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


KNOWN_CONSTRAINTS = frozenset({"required", "readonly", "minlength", "maxlength", "min", "max"})


def _form_field(node: etree._Element) -> FormFieldSpec:
    constraints: dict[str, str | None] = {}
    unknown: list[str] = []
    props: dict[str, str] = {}
    options: list[tuple[str, str]] = []
    for child in node.iterchildren():
        name = local_name(child)
        if name == "validation":
            for constraint in child.iterchildren():
                if local_name(constraint) != "constraint":
                    continue
                cname = (constraint.get("name") or "").strip()
                if cname in KNOWN_CONSTRAINTS:
                    constraints[cname] = constraint.get("config")
                else:
                    unknown.append(cname or "(unnamed)")
        elif name == "properties":
            for prop in child.iterchildren():
                if local_name(prop) == "property" and prop.get("id"):
                    props[prop.get("id") or ""] = prop.get("value") or ""
        elif name == "value":
            options.append((child.get("id") or "", child.get("name") or child.get("id") or ""))
    return FormFieldSpec(
        id=node.get("id") or "",
        type=(node.get("type") or "string").strip(),
        label=node.get("label"),
        default=node.get("defaultValue"),
        required="required" in constraints,
        readonly="readonly" in constraints,
        min_length=_int_or_none(constraints.get("minlength")),
        max_length=_int_or_none(constraints.get("maxlength")),
        minimum=_float_or_none(constraints.get("min")),
        maximum=_float_or_none(constraints.get("max")),
        options=tuple(options),
        properties=props,
        unknown_constraints=tuple(unknown),
        line=node.sourceline if isinstance(node.sourceline, int) else None,
    )


def _form(element: etree._Element) -> FormSpec | None:
    key = camunda_attr(element, "formKey")
    fields = tuple(_form_field(node) for node in camunda_children(element, "formField"))
    if key is None and not fields:
        return None
    return FormSpec(key=key, fields=fields)


def _lanes(process: etree._Element) -> dict[str, str]:
    """Map flow node id -> name of the innermost lane that holds it."""
    lanes: dict[str, str] = {}
    for lane in process.iter(bpmn("lane")):
        name = lane.get("name") or lane.get("id") or ""
        for ref in lane.iterchildren(bpmn("flowNodeRef")):
            if ref.text:
                # iter() is document order, so nested (inner) lanes come after and win.
                lanes[ref.text.strip()] = name
    return lanes


FLOW_ELEMENT_KINDS = frozenset(
    {
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "task",
        "userTask",
        "manualTask",
        "serviceTask",
        "scriptTask",
        "sendTask",
        "receiveTask",
        "businessRuleTask",
        "callActivity",
        "subProcess",
        "transaction",
        "adHocSubProcess",
        "exclusiveGateway",
        "parallelGateway",
        "inclusiveGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)


def _element(node: etree._Element, lanes: Mapping[str, str]) -> ElementInfo:
    element_id = node.get("id") or ""
    kind = local_name(node)
    human = kind in HUMAN_TASK_KINDS
    return ElementInfo(
        id=element_id,
        kind=kind,
        name=node.get("name"),
        line=node.sourceline if isinstance(node.sourceline, int) else None,
        lane=lanes.get(element_id),
        documentation=text_of(next(node.iterchildren(bpmn("documentation")), None)),
        properties=properties_of(node),
        assignee=camunda_attr(node, "assignee") if human else None,
        candidate_users=camunda_attr(node, "candidateUsers") if human else None,
        candidate_groups=camunda_attr(node, "candidateGroups") if human else None,
        due_date=camunda_attr(node, "dueDate") if human else None,
        follow_up_date=camunda_attr(node, "followUpDate") if human else None,
        priority=camunda_attr(node, "priority") if human else None,
        form=_form(node) if kind in ("userTask", "startEvent") else None,
    )


def _process(node: etree._Element, messages: Mapping[str, str]) -> ProcessModel:
    lanes = _lanes(node)
    elements: dict[str, ElementInfo] = {}
    start_form: FormSpec | None = None
    initiator: str | None = None
    has_none_start = False
    start_messages: list[str] = []
    start_timers: list[tuple[str, str, str]] = []
    for child in node.iter():
        if local_name(child) in FLOW_ELEMENT_KINDS and namespace(child) == BPMN_NS and child.get("id"):
            info = _element(child, lanes)
            elements[info.id] = info
            # The none start event of the process itself (not of a subprocess) carries the start form.
            if info.kind == "startEvent" and child.getparent() is node:
                definitions = [c for c in child.iterchildren() if local_name(c).endswith("EventDefinition")]
                if not definitions:
                    has_none_start = True
                    start_form = start_form or info.form
                    initiator = initiator or camunda_attr(child, "initiator")
                for definition in definitions:
                    if local_name(definition) == "messageEventDefinition":
                        name = messages.get(definition.get("messageRef") or "")
                        if name:
                            start_messages.append(name)
                    elif local_name(definition) == "timerEventDefinition":
                        for value in definition.iterchildren():
                            if local_name(value) in ("timeDate", "timeDuration", "timeCycle"):
                                start_timers.append((info.id, local_name(value), (value.text or "").strip()))
    return ProcessModel(
        id=node.get("id") or "",
        name=node.get("name"),
        executable=(node.get("isExecutable") or "false").strip().lower() == "true",
        line=node.sourceline if isinstance(node.sourceline, int) else None,
        documentation=text_of(next(node.iterchildren(bpmn("documentation")), None)),
        candidate_starter_groups=_split_list(camunda_attr(node, "candidateStarterGroups")),
        candidate_starter_users=_split_list(camunda_attr(node, "candidateStarterUsers")),
        elements=elements,
        start_form=start_form,
        initiator_variable=initiator,
        properties=properties_of(node),
        has_none_start=has_none_start,
        start_messages=tuple(start_messages),
        start_timers=tuple(start_timers),
    )


def read_document(tree: etree._ElementTree, filename: str | None = None) -> DocumentModel:
    """Read every ``bpmn:process`` of a parsed BPMN document into the model (no validation)."""
    root = tree.getroot()
    messages = {m.get("id") or "": m.get("name") or "" for m in root.iter(bpmn("message"))}
    processes = tuple(_process(node, messages) for node in root.iter(bpmn("process")))
    return DocumentModel(filename=filename, processes=processes)
