"""Every process file under ``processes/``: the checks a modeller's file must pass before it ships.

For each ``processes/*/*.bpmn``:

* it deploys on the engine (in-memory store, virtual clock), with the form schemas beside it;
* it is valid against the BPMN 2.0 XSD shipped with SpiffWorkflow, so Camunda Modeler and other
  tools accept it;
* every flow node has documentation that starts with the regulation clause it implements
  (``REG x.y`` / ``DAY x.y``) and a DI shape; every sequence flow has a DI edge; shapes do not
  overlap, sit in their lanes, and edges start and end on their source and target and cross no
  other shape or label;
* every user task names candidate groups among the engine's roles; every ``deadline`` rule
  parses and is anchored on ``task.created`` or a date field of one of the file's forms; the
  reminder and escalation properties are well formed;
* every form schema is a valid JSON Schema (2020-12) and every schema file is used;
* it runs from start to end with data generated from its forms, through every loop back
  (a return for revision) and both sides of the optional steps.

Deadlines themselves are not checked here: the engine's deadline support is being added
separately; only the rules' syntax is.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import SpiffWorkflow
from jsonschema import Draft202012Validator
from lxml import etree

from cli.demo import load_process
from engine.clock import REGION_TZ, VirtualClock
from engine.deadlines import parse_rule
from engine.directory import Actor, Role
from engine.engine import Engine, InstanceView
from engine.errors import BadInput, NotFound
from engine.model import (
    BPMN_NS,
    BPMNDI_NS,
    CAMUNDA_NAMESPACES,
    FLOW_ELEMENT_KINDS,
    bpmn,
    camunda_attr,
    local_name,
    namespace,
)
from engine.records import InstanceStatus, TaskQuery, TaskRecord, TaskStatus
from engine.xml import parse_xml
from tests.conftest import ADMIN, COORDINATOR, MINISTRY, ROOT, TROITSK

PROCESSES = ROOT / "processes"
FILES = sorted(PROCESSES.glob("*/*.bpmn"))
IDS = [f"{p.parent.name}/{p.name}" for p in FILES]
XSD = Path(SpiffWorkflow.__file__).resolve().parent / "bpmn" / "parser" / "schema" / "BPMN20.xsd"
DC_NS = "http://www.omg.org/spec/DD/20100524/DC"
DI_NS = "http://www.omg.org/spec/DD/20100524/DI"

ROLES = frozenset({Role.MINISTRY, Role.COORDINATOR, Role.MOUO, Role.EXPERT})
CLAUSE_AT_START = re.compile(r"^(REG|DAY) \d+(\.\d+)+\b")
CLAUSE_ANYWHERE = re.compile(r"\b(REG|DAY) \d+(\.\d+)+\b")
MAX_STEPS = 100


def file_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def tree_of(path: Path) -> etree._ElementTree:
    return parse_xml(path.read_bytes(), path.name)


def flow_nodes(tree: etree._ElementTree) -> Iterator[etree._Element]:
    for process in tree.getroot().iter(bpmn("process")):
        for node in process.iter():
            if isinstance(node.tag, str) and namespace(node) == BPMN_NS and local_name(node) in FLOW_ELEMENT_KINDS:
                yield node


def properties(element: etree._Element) -> dict[str, str]:
    """``camunda:property`` values directly on ``element`` (not nested elements)."""
    result: dict[str, str] = {}
    for ext in element.iterchildren(bpmn("extensionElements")):
        for holder in ext.iterchildren():
            if local_name(holder) == "properties" and namespace(holder) in CAMUNDA_NAMESPACES:
                for prop in holder.iterchildren():
                    if local_name(prop) == "property" and prop.get("name"):
                        result[prop.get("name") or ""] = prop.get("value") or ""
    return result


def documentation(node: etree._Element) -> str:
    doc = next(node.iterchildren(bpmn("documentation")), None)
    return "".join(str(part) for part in doc.itertext()).strip() if doc is not None else ""


CLAUSE_LIST = re.compile(r"\b(REG|DAY) (\d+(?:\.\d+)+(?:\s*[,\u2013-]\s*\d+(?:\.\d+)+)*)")


def clauses_named(text: str) -> set[str]:
    """Clauses a text names: "REG 5.13, 5.14" and "REG 5.14-5.16" name each of their clauses."""
    named: set[str] = set()
    for match in CLAUSE_LIST.finditer(text):
        prefix = match.group(1)
        for part in match.group(2).split(","):
            ends = [e.strip() for e in re.split(r"[\u2013-]", part)]
            named.update(f"{prefix} {e}" for e in ends)
            if len(ends) == 2:
                head_a, _, last_a = ends[0].rpartition(".")
                head_b, _, last_b = ends[1].rpartition(".")
                if head_a == head_b:
                    named.update(f"{prefix} {head_a}.{n}" for n in range(int(last_a), int(last_b) + 1))
    return named


# -- deployment and static checks ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bpmn_xsd() -> etree.XMLSchema:
    assert XSD.is_file(), f"the BPMN 2.0 XSD is not where SpiffWorkflow ships it: {XSD}"
    return etree.XMLSchema(etree.parse(str(XSD)))


def test_there_are_process_files() -> None:
    assert {"day/day.bpmn", "annual-results/annual-results.bpmn"} <= set(IDS)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_deploys(engine: Engine, path: Path) -> None:
    source, resources = load_process(path)
    result = engine.deploy(source, file_id(path), ADMIN, resources)
    assert result.created and result.definitions
    for definition in result.definitions:
        model = engine.definition(definition.id).model
        assert model.name, f"process {definition.key} has no name"
        assert model.documentation and CLAUSE_ANYWHERE.search(model.documentation), definition.key
        assert set(model.candidate_starter_groups) <= ROLES, model.candidate_starter_groups


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_valid_against_the_bpmn_xsd(path: Path, bpmn_xsd: etree.XMLSchema) -> None:
    tree = tree_of(path)
    valid = bpmn_xsd.validate(tree)
    errors: Any = bpmn_xsd.error_log
    assert valid, "\n".join(f"line {e.line}: {e.message}" for e in errors)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_flow_node_is_documented_with_its_clause(path: Path) -> None:
    problems = []
    for node in flow_nodes(tree_of(path)):
        ident = node.get("id") or ""
        text = documentation(node)
        if not text:
            problems.append(f"{ident}: no bpmn:documentation")
        elif not CLAUSE_AT_START.match(text):
            problems.append(f"{ident}: documentation does not start with a clause (REG x.y / DAY x.y): {text[:60]!r}")
        clause = properties(node).get("clause")
        if clause is not None and clause not in clauses_named(text):
            problems.append(f"{ident}: camunda property clause={clause!r} is not named in its documentation")
    assert not problems, "\n".join(problems)


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def overlaps(self, other: Box) -> bool:
        return self.x < other.right and other.x < self.right and self.y < other.bottom and other.y < self.bottom

    def contains(self, other: Box) -> bool:
        return self.x <= other.x and self.y <= other.y and other.right <= self.right and other.bottom <= self.bottom

    def touches(self, x: float, y: float, tolerance: float = 2) -> bool:
        """The point lies on or inside the box (waypoints end on a shape's border)."""
        return self.x - tolerance <= x <= self.right + tolerance and self.y - tolerance <= y <= self.bottom + tolerance


@dataclass
class Diagram:
    shapes: dict[str, Box] = field(default_factory=dict)
    labels: dict[str, Box] = field(default_factory=dict)  # element id -> its label's bounds
    edges: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def _box(node: etree._Element | None) -> Box:
    assert node is not None
    return Box(*(float(node.get(k) or 0) for k in ("x", "y", "width", "height")))


def diagram(tree: etree._ElementTree) -> Diagram:
    result = Diagram()
    for shape in tree.getroot().iter(f"{{{BPMNDI_NS}}}BPMNShape"):
        element = shape.get("bpmnElement") or ""
        assert element not in result.shapes, f"{element} is drawn twice"
        result.shapes[element] = _box(shape.find(f"{{{DC_NS}}}Bounds"))
        label = shape.find(f"{{{BPMNDI_NS}}}BPMNLabel/{{{DC_NS}}}Bounds")
        if label is not None:
            result.labels[element] = _box(label)
    for edge in tree.getroot().iter(f"{{{BPMNDI_NS}}}BPMNEdge"):
        element = edge.get("bpmnElement") or ""
        assert element not in result.edges, f"{element} is drawn twice"
        result.edges[element] = [
            (float(w.get("x") or 0), float(w.get("y") or 0)) for w in edge.iterchildren(f"{{{DI_NS}}}waypoint")
        ]
        label = edge.find(f"{{{BPMNDI_NS}}}BPMNLabel/{{{DC_NS}}}Bounds")
        if label is not None:
            result.labels[element] = _box(label)
    return result


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_flow_node_and_sequence_flow_is_drawn(path: Path) -> None:
    tree = tree_of(path)
    drawn = diagram(tree)
    missing = [f"shape for {n.get('id')}" for n in flow_nodes(tree) if n.get("id") not in drawn.shapes]
    for flow in tree.getroot().iter(bpmn("sequenceFlow")):
        waypoints = drawn.edges.get(flow.get("id") or "")
        if waypoints is None:
            missing.append(f"edge for {flow.get('id')}")
        elif len(waypoints) < 2:
            missing.append(f"edge for {flow.get('id')} has {len(waypoints)} waypoint(s)")
    for kind in ("participant", "lane"):
        for node in tree.getroot().iter(bpmn(kind)):
            if node.get("id") not in drawn.shapes:
                missing.append(f"shape for {kind} {node.get('id')}")
    plane = next(tree.getroot().iter(f"{{{BPMNDI_NS}}}BPMNPlane"), None)
    assert plane is not None, "no BPMNPlane"
    targets = {n.get("id") for n in tree.getroot().iter(bpmn("collaboration"))} | {
        n.get("id") for n in tree.getroot().iter(bpmn("process"))
    }
    assert plane.get("bpmnElement") in targets
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_the_diagram_has_nothing_overlapping(path: Path) -> None:
    tree = tree_of(path)
    drawn = diagram(tree)
    nodes = {n.get("id") or "": n for n in flow_nodes(tree)}
    problems = []

    def nested(a: str, b: str) -> bool:
        """b is inside a in the model (a subprocess and its content)."""
        parent = nodes[b].getparent()
        while parent is not None:
            if parent.get("id") == a:
                return True
            parent = parent.getparent()
        return False

    def attached(a: str, b: str) -> bool:
        """a boundary event sits on the border of the activity it is attached to."""
        return nodes[a].get("attachedToRef") == b or nodes[b].get("attachedToRef") == a

    ids = sorted(nodes)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            box_a, box_b = drawn.shapes[a], drawn.shapes[b]
            if attached(a, b):
                if not box_a.overlaps(box_b):
                    problems.append(f"boundary event {a} / {b} is not drawn on its activity's border")
                continue
            if nested(a, b) or nested(b, a):
                outer, inner = (box_a, box_b) if nested(a, b) else (box_b, box_a)
                if not outer.contains(inner):
                    problems.append(f"{a} / {b}: the subprocess does not contain its content")
            elif box_a.overlaps(box_b):
                problems.append(f"shapes {a} and {b} overlap")
    shapes_and_labels = [(f"shape {k}", v) for k, v in drawn.shapes.items() if k in nodes]
    shapes_and_labels += [(f"label of {k}", v) for k, v in drawn.labels.items()]
    for i, (name_a, box_a) in enumerate(shapes_and_labels):
        for name_b, box_b in shapes_and_labels[i + 1 :]:
            if not (name_a.startswith("label") or name_b.startswith("label")):
                continue  # shapes against shapes: checked above, with nesting and boundary events
            subprocess = [
                n for n in (name_a, name_b) if n.startswith("shape") and nodes[n[6:]].tag == bpmn("subProcess")
            ]
            if subprocess and drawn.shapes[subprocess[0][6:]].contains(box_b if name_a in subprocess else box_a):
                continue  # a label inside an expanded subprocess
            if box_a.overlaps(box_b):
                problems.append(f"{name_a} overlaps {name_b}")
    # Lanes: every node is drawn inside the lane that holds it; lanes inside the pool.
    pools = {p.get("processRef"): p.get("id") for p in tree.getroot().iter(bpmn("participant"))}
    for process in tree.getroot().iter(bpmn("process")):
        pool = drawn.shapes.get(pools.get(process.get("id")) or "")
        for lane in process.iter(bpmn("lane")):
            lane_box = drawn.shapes[lane.get("id") or ""]
            if pool is not None and not pool.contains(lane_box):
                problems.append(f"lane {lane.get('id')} is not inside its pool")
            for ref in lane.iterchildren(bpmn("flowNodeRef")):
                ident = (ref.text or "").strip()
                if ident in drawn.shapes and not lane_box.contains(drawn.shapes[ident]):
                    problems.append(f"{ident} is not drawn inside its lane {lane.get('id')}")
    # Edges start on their source, end on their target, and cross no other shape or label.
    for flow in tree.getroot().iter(bpmn("sequenceFlow")):
        ident, source_id, target_id = flow.get("id") or "", flow.get("sourceRef") or "", flow.get("targetRef") or ""
        points = drawn.edges.get(ident) or []
        if len(points) < 2:
            continue
        source, target = drawn.shapes[source_id], drawn.shapes[target_id]
        if not source.touches(*points[0]):
            problems.append(f"edge {ident} does not start on {source_id}")
        if not target.touches(*points[-1]):
            problems.append(f"edge {ident} does not end on {target_id}")
        exempt = {source_id, target_id} | {a for a in nodes if nested(a, source_id) or nested(a, target_id)}
        obstacles = [(f"shape {k}", v) for k, v in drawn.shapes.items() if k in nodes and k not in exempt]
        obstacles += [(f"label of {k}", v) for k, v in drawn.labels.items() if k not in {ident, source_id, target_id}]
        for name, box in obstacles:
            if any(crosses(a, b, box) for a, b in itertools.pairwise(points)):
                problems.append(f"edge {ident} crosses {name}")
    assert not problems, "\n".join(problems)


def crosses(a: tuple[float, float], b: tuple[float, float], box: Box, margin: float = 1) -> bool:
    """Whether the segment a-b passes through the inside of ``box`` (touching its border is fine)."""
    x0, y0, x1, y1 = box.x + margin, box.y + margin, box.right - margin, box.bottom - margin
    (ax, ay), (bx, by) = a, b
    low, high = 0.0, 1.0
    for p, q in ((ax - bx, ax - x0), (bx - ax, x1 - ax), (ay - by, ay - y0), (by - ay, y1 - ay)):
        if p == 0:
            if q < 0:
                return False
            continue
        r = q / p
        if p < 0:
            low = max(low, r)
        else:
            high = min(high, r)
        if low > high:
            return False
    return True


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_user_tasks_name_known_roles(path: Path) -> None:
    problems = []
    for node in flow_nodes(tree_of(path)):
        if local_name(node) not in ("userTask", "manualTask"):
            continue
        groups = [g.strip() for g in (camunda_attr(node, "candidateGroups") or "").split(",") if g.strip()]
        if not groups:
            problems.append(f"{node.get('id')}: no camunda:candidateGroups")
        unknown = set(groups) - ROLES
        if unknown:
            problems.append(f"{node.get('id')}: unknown candidate groups {sorted(unknown)}")
        organisation = properties(node).get("organisation")
        if organisation is not None and Role.MOUO not in groups:
            problems.append(f"{node.get('id')}: an organisation is set but the task is not for a МОУО")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_multi_instance_tasks_go_to_each_member(path: Path) -> None:
    """A МОУО task repeated over a list of members goes to each member's own organisation."""
    tree = tree_of(path)
    for loop in tree.getroot().iter(bpmn("multiInstanceLoopCharacteristics")):
        activity = loop.getparent()
        assert activity is not None
        variable = camunda_attr(loop, "elementVariable")
        assert camunda_attr(loop, "collection"), activity.get("id")
        assert variable, f"{activity.get('id')}: name the element variable"
        tasks = [activity] if local_name(activity) == "userTask" else list(activity.iter(bpmn("userTask")))
        for task in tasks:
            groups = camunda_attr(task, "candidateGroups") or ""
            if Role.MOUO in groups:
                assert properties(task).get("organisation") == f"${{{variable}}}", task.get("id")


def _date_fields(schema: Any) -> Iterator[str]:
    if isinstance(schema, Mapping):
        for name, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, Mapping) and prop.get("format") == "date":
                yield name


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_deadline_reminder_and_escalation_properties_are_well_formed(path: Path) -> None:
    tree = tree_of(path)
    _, resources = load_process(path)
    dates = {name for raw in resources.values() for name in _date_fields(json.loads(raw))}
    problems = []
    holders = list(tree.getroot().iter(bpmn("process"))) + list(flow_nodes(tree))
    for holder in holders:
        ident = holder.get("id")
        props = properties(holder)
        rule_text = props.get("deadline")
        if rule_text is not None:
            if local_name(holder) not in ("userTask", "manualTask"):
                problems.append(f"{ident}: a deadline on a {local_name(holder)}")
            try:
                rule = parse_rule(rule_text)
            except BadInput as exc:
                problems.append(f"{ident}: deadline {rule_text!r} does not parse: {exc}")
            else:
                if rule.kind != "fixed" and rule.anchor != "task.created" and rule.anchor not in dates:
                    problems.append(f"{ident}: deadline anchor {rule.anchor!r} is no date field of this file's forms")
        before = props.get("reminders.before")
        if before is not None and before != "none" and not re.fullmatch(r"\d+(,\d+)*", before):
            problems.append(f"{ident}: reminders.before={before!r}")
        on_due = props.get("reminders.on_due_day")
        if on_due is not None and on_due not in ("true", "false"):
            problems.append(f"{ident}: reminders.on_due_day={on_due!r}")
        for key in ("reminders.overdue_every", "escalation.after"):
            value = props.get(key)
            if value is not None and not value.isdigit():
                problems.append(f"{ident}: {key}={value!r}")
        escalate_to = props.get("escalation.to")
        if escalate_to is not None and escalate_to not in ROLES:
            problems.append(f"{ident}: escalation.to={escalate_to!r} is not a role")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_form_schemas_are_valid_json_schemas(path: Path) -> None:
    _, resources = load_process(path)
    tree = tree_of(path)
    keys = [camunda_attr(n, "formKey") for n in flow_nodes(tree)]
    named = {k.removeprefix("schema:").strip() for k in keys if k}
    assert named == set(resources), f"form schemas named but missing: {sorted(named - set(resources))}"
    on_disk = {p.name for p in path.parent.glob("*.schema.json")}
    assert on_disk <= named, f"schema files no form uses: {sorted(on_disk - named)}"
    for name, raw in sorted(resources.items()):
        schema = json.loads(raw)
        Draft202012Validator.check_schema(schema)
        assert schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema", name
        assert schema.get("type") == "object", name
        assert schema.get("additionalProperties") is False, name
        assert schema.get("title"), name
        for prop, spec in (schema.get("properties") or {}).items():
            assert spec.get("title"), f"{name}: {prop} has no title"
            if "enum" in spec:
                assert len(spec.get("x-enumNames") or []) == len(spec["enum"]), f"{name}: {prop} needs x-enumNames"
        assert set(schema.get("required") or []) <= set(schema.get("properties") or {}), name


# -- running the processes -------------------------------------------------------------------------

TEXT = "Проверочное значение для формы"
PATTERN_SAMPLES = (
    "https://example.org/agglo",
    "troitsk-go",
    "ПД-1/2026",
    "+7 (351) 263-32-95",
    "12345",
    TEXT,
)


def sample(schema: Mapping[str, Any], hint: Any = None, today: str = "2026-03-02") -> Any:
    """A valid value for ``schema`` (every property filled, so if/then branches are satisfied),
    preferring ``hint`` where one is given."""
    kind = schema.get("type")
    if kind == "object":
        hints = hint if isinstance(hint, Mapping) else {}
        props = schema.get("properties") or {}
        return {name: sample(prop, hints.get(name), today) for name, prop in props.items() if not prop.get("readOnly")}
    if hint is not None:
        return hint
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "array":
        items = schema.get("items") or {}
        count = max(int(schema.get("minItems", 1)), 1)
        if "enum" in items:
            return list(items["enum"][:count])
        return [sample(items, None, today) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return True
    if schema.get("format") == "date":
        return today
    if schema.get("format") == "email":
        return "specialist@example.org"
    low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 10_000))
    candidates = PATTERN_SAMPLES if "pattern" in schema else (TEXT,)
    for candidate in candidates:
        value = (candidate * (low // len(candidate) + 1))[: max(low, min(len(candidate), high))]
        if "pattern" not in schema or re.search(schema["pattern"], value):
            return value
    raise AssertionError(f"no sample value for {schema}")


def actor_for(task: TaskRecord) -> Actor:
    roles = set(task.candidate_roles)
    if Role.MOUO in roles:
        assert task.organisation, f"{task.element_id}: a МОУО task without an organisation"
        return Actor(task.organisation, task.organisation, frozenset({Role.MOUO}))
    if Role.COORDINATOR in roles:
        return COORDINATOR
    if Role.MINISTRY in roles:
        return MINISTRY
    if Role.EXPERT in roles:
        return Actor("expert", "chipkro", frozenset({Role.EXPERT}))
    raise AssertionError(f"{task.element_id}: no actor for roles {sorted(roles)}")


def starter_for(groups: tuple[str, ...]) -> Actor:
    for role, actor in ((Role.MINISTRY, MINISTRY), (Role.COORDINATOR, COORDINATOR), (Role.MOUO, TROITSK)):
        if not groups or role in groups:
            return actor
    raise AssertionError(f"no starter for {groups}")


@dataclass
class Scenario:
    name: str
    start: dict[str, Any] = field(default_factory=dict)
    # element id -> the answers for its 1st, 2nd, ... task (the last one repeats)
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    expect_counts: dict[str, int] = field(default_factory=dict)  # completed tasks per element
    expect_missing: tuple[str, ...] = ()  # elements that must not run
    expect_variables: dict[str, Any] = field(default_factory=dict)


MEMBERS = ["troitsk-go", "kopeysk-go"]
APPROVE_ANALYTICS_WITH_AWARDS = {"analytics_decision": "approve", "awards_planned": True}

SCENARIOS: dict[str, list[Scenario]] = {
    "day": [
        Scenario(
            "two members, both documents returned once, awards",
            start={"day_date": "2026-09-17", "members": MEMBERS, "day_order_date": "2026-03-02"},
            answers={
                "Task_ApproveProgramme": [{"programme_decision": "return"}, {"programme_decision": "approve"}],
                "Task_ApproveAnalytics": [{"analytics_decision": "return"}, APPROVE_ANALYTICS_WITH_AWARDS],
                "Task_HoldDay": [{"day_held_on": "2026-09-17", "participants_count": 180}],
            },
            expect_counts={
                "Task_SubmitProposal": 2,
                "Task_DraftProgramme": 2,
                "Task_ApproveProgramme": 2,
                "Task_PublishMinistry": 1,
                "Task_PublishCoordinator": 1,
                "Task_HoldDay": 1,
                "Task_RecordResolution": 1,
                "Task_PrepareAnalytics": 2,
                "Task_ApproveAnalytics": 2,
                "Task_RecordAwards": 1,
            },
            expect_variables={"programme_decision": "approve", "analytics_decision": "approve"},
        ),
        Scenario(
            "no members, approved at once, no awards",
            start={"day_date": "2026-09-17", "members": []},
            answers={"Task_ApproveAnalytics": [{"analytics_decision": "approve", "awards_planned": False}]},
            expect_counts={"Task_DraftProgramme": 1, "Task_HoldDay": 1, "Task_PrepareAnalytics": 1},
            expect_missing=("Task_SubmitProposal", "Task_RecordAwards"),
        ),
    ],
    "annual-results": [
        Scenario(
            "two members, returned once, awards",
            start={"year": 2026, "members": MEMBERS, "proposals_due": "2026-12-15"},
            answers={
                "Task_ApproveAnalytics": [{"analytics_decision": "return"}, APPROVE_ANALYTICS_WITH_AWARDS],
                "Task_PlanNextYear": [{"next_year": 2027}],
            },
            expect_counts={
                "Task_SubmitProposals": 2,
                "Task_PrepareAnalytics": 2,
                "Task_ApproveAnalytics": 2,
                "Task_PlanNextYear": 1,
                "Task_RecordAwards": 1,
            },
        ),
        Scenario(
            "no members, approved at once, no awards",
            start={"year": 2026, "members": [], "proposals_due": "2026-12-15"},
            answers={"Task_ApproveAnalytics": [{"analytics_decision": "approve", "awards_planned": False}]},
            expect_counts={"Task_PrepareAnalytics": 1, "Task_PlanNextYear": 1},
            expect_missing=("Task_SubmitProposals", "Task_RecordAwards"),
        ),
    ],
    "contract": [
        Scenario(
            "returned once, then signed and registered",
            start={"term_until": "2026-12-31"},
            answers={"Task_ReviewApplication": [{"review_decision": "return"}, {"review_decision": "accept"}]},
            expect_counts={"Task_ReviewApplication": 2, "Task_ReviseApplication": 1, "Task_RegisterContract": 1},
        ),
    ],
}


def _process_keys() -> list[tuple[Path, str]]:
    result = []
    for path in FILES:
        for process in tree_of(path).getroot().iter(bpmn("process")):
            if (process.get("isExecutable") or "").lower() == "true":
                result.append((path, process.get("id") or ""))
    return result


RUNS = [
    (path, key, scenario)
    for path, key in _process_keys()
    for scenario in SCENARIOS.get(key, [Scenario("generated data")])
]


@dataclass
class Run:
    view: InstanceView
    completed: Counter[str]
    tasks: list[TaskRecord]


def drive(engine: Engine, clock: VirtualClock, key: str, scenario: Scenario) -> Run:
    """Start ``key`` and act on every task it offers until it ends; timers fire as the clock moves."""
    definition = next(d for d in engine.definitions() if d.key == key)
    compiled = engine.definition(definition.id)
    starter = starter_for(compiled.model.candidate_starter_groups)
    start_data = sample(compiled.start_schema or {"type": "object"}, scenario.start)
    iid = engine.start(key, starter, start_data).instance.id
    visits: Counter[str] = Counter()
    for _ in range(MAX_STEPS):
        view = engine.instance(iid, ADMIN)
        if view.instance.status == InstanceStatus.COMPLETED:
            with engine.store.transaction() as tx:
                tasks = tx.list_tasks(TaskQuery(status=None, instance_id=iid, all_tasks=True))
            done = Counter(t.element_id for t in tasks if t.status == TaskStatus.COMPLETED)
            return Run(view, done, tasks)
        assert view.instance.status in (InstanceStatus.RUNNING, InstanceStatus.WAITING), (
            view.instance.status,
            view.instance.incident,
        )
        with engine.store.transaction() as tx:
            open_tasks = tx.list_tasks(TaskQuery(instance_id=iid, all_tasks=True))
        if open_tasks:
            for task in open_tasks:
                answers = scenario.answers.get(task.element_id) or [{}]
                answer = answers[min(visits[task.element_id], len(answers) - 1)]
                visits[task.element_id] += 1
                form = engine.task(task.id, ADMIN).form or {"type": "object"}
                today = clock.now().date().isoformat()
                engine.complete(task.id, actor_for(task), sample(form, answer, today))
        elif view.instance.next_due_at is not None:
            clock.set(max(clock.now(), view.instance.next_due_at) + timedelta(minutes=1))
            engine.fire_timers(iid, background=False)
        else:
            raise AssertionError(f"{key}: waiting with no task and no timer")
    raise AssertionError(f"{key}: not finished after {MAX_STEPS} steps")


@pytest.mark.parametrize(("path", "key", "scenario"), RUNS, ids=[f"{file_id(p)}:{k}:{s.name}" for p, k, s in RUNS])
def test_runs_from_start_to_end(engine: Engine, clock: VirtualClock, path: Path, key: str, scenario: Scenario) -> None:
    source, resources = load_process(path)
    engine.deploy(source, file_id(path), ADMIN, resources)
    run = drive(engine, clock, key, scenario)
    assert run.view.instance.status == InstanceStatus.COMPLETED
    assert run.view.history[-1].action == "instance.completed"
    for element, count in scenario.expect_counts.items():
        assert run.completed[element] == count, (element, dict(run.completed))
    for element in scenario.expect_missing:
        assert element not in run.completed, element
    for name, value in scenario.expect_variables.items():
        assert run.view.variables.get(name) == value, name


# -- the Day and the annual results in detail -------------------------------------------------------

DAY = PROCESSES / "day" / "day.bpmn"
ANNUAL = PROCESSES / "annual-results" / "annual-results.bpmn"


@pytest.mark.parametrize(
    ("path", "key", "task_id", "collected"),
    [
        (DAY, "day", "Task_SubmitProposal", "programme_proposals"),
        (ANNUAL, "annual-results", "Task_SubmitProposals", "member_proposals"),
    ],
    ids=["day", "annual-results"],
)
def test_each_member_answers_for_itself_and_no_answer_is_lost(
    engine: Engine, clock: VirtualClock, path: Path, key: str, task_id: str, collected: str
) -> None:
    """One task per member, for that member's organisation only; every member's proposals are kept
    under its code (a plain multi-instance user task would keep only the last answer)."""
    source, resources = load_process(path)
    engine.deploy(source, file_id(path), ADMIN, resources)
    scenario = next(s for s in SCENARIOS[key] if s.start.get("members"))
    run = drive(engine, clock, key, scenario)
    member_tasks = [t for t in run.tasks if t.element_id == task_id]
    assert sorted(t.organisation or "" for t in member_tasks) == sorted(MEMBERS)
    assert all(t.candidate_roles == (Role.MOUO,) for t in member_tasks)
    assert all(t.completed_by == t.organisation for t in member_tasks)
    assert all(t.lane and "МОУО" in t.lane for t in member_tasks)
    proposals = run.view.variables[collected]
    assert sorted(proposals) == sorted(MEMBERS)
    assert all(isinstance(p, dict) and p for p in proposals.values())
    assert "proposal" not in run.view.variables and "member" not in run.view.variables


def test_a_member_cannot_answer_for_another(engine: Engine) -> None:
    source, resources = load_process(ANNUAL)
    engine.deploy(source, file_id(ANNUAL), ADMIN, resources)
    engine.start("annual-results", COORDINATOR, {"year": 2026, "members": MEMBERS, "proposals_due": "2026-12-15"})
    troitsk = [v.task for v in engine.tasks(TROITSK)]
    assert [t.organisation for t in troitsk] == ["troitsk-go"]
    kopeysk = Actor("kopeysk-go", "kopeysk-go", frozenset({Role.MOUO}))
    assert [v.task.organisation for v in engine.tasks(kopeysk)] == ["kopeysk-go"]
    with pytest.raises(NotFound):
        engine.complete(troitsk[0].id, kopeysk, {"proposal": {"regional": "abc", "agglomeration": "abc"}})


def _day_waiting_for_its_date(engine: Engine, day_date: str) -> str:
    """A Day instance run up to its timer: the programme approved and published, no members."""
    source, resources = load_process(DAY)
    engine.deploy(source, file_id(DAY), ADMIN, resources)
    definition = next(d for d in engine.definitions() if d.key == "day")
    start = sample(engine.definition(definition.id).start_schema or {}, {"day_date": day_date, "members": []})
    iid = engine.start("day", MINISTRY, start).instance.id
    for _ in range(10):
        with engine.store.transaction() as tx:
            open_tasks = tx.list_tasks(TaskQuery(instance_id=iid, all_tasks=True))
        if not open_tasks:
            break
        for task in open_tasks:
            form = engine.task(task.id, ADMIN).form or {"type": "object"}
            engine.complete(task.id, actor_for(task), sample(form))
    view = engine.instance(iid, ADMIN)
    assert view.instance.status == InstanceStatus.WAITING
    return iid


def test_the_day_is_held_on_its_date(engine: Engine, clock: VirtualClock) -> None:
    """«Провести День» appears at 00:00 of the Day's date in Chelyabinsk, not before."""
    iid = _day_waiting_for_its_date(engine, "2026-09-17")
    due = engine.instance(iid, ADMIN).instance.next_due_at
    assert due is not None and due.astimezone(REGION_TZ).isoformat() == "2026-09-17T00:00:00+05:00"
    clock.set(due - timedelta(minutes=1))
    engine.fire_timers(iid, background=False)
    assert not engine.instance(iid, ADMIN).tasks
    clock.set(due)
    engine.fire_timers(iid, background=False)
    assert [t.task.element_id for t in engine.instance(iid, ADMIN).tasks] == ["Task_HoldDay"]


def test_moving_the_day_moves_the_timer(engine: Engine, clock: VirtualClock) -> None:
    """The Ministry moves the Day by order (DAY 2.4, 3.1): the timer follows the new day_date."""
    iid = _day_waiting_for_its_date(engine, "2026-09-17")
    first_due = engine.instance(iid, ADMIN).instance.next_due_at
    assert first_due is not None
    changed = engine.set_variables(iid, MINISTRY, {"day_date": "2026-09-24"})
    assert changed.variables.get("day_date") == "2026-09-24"
    moved = engine.instance(iid, ADMIN).instance.next_due_at
    assert moved is not None and moved - first_due == timedelta(days=7)
    clock.set(first_due + timedelta(hours=1))
    engine.fire_timers(iid, background=False)
    assert not engine.instance(iid, ADMIN).tasks, "the Day must not be held before its new date"
