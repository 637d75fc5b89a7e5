"""Deployments and process definitions: hardened parse, validation, compilation, versioning.

A deployment is one BPMN file plus the resources it names (JSON Schema forms). Its identity
is the SHA-256 of that content: deploying the same content again changes nothing. Each
executable process in it becomes a definition with the next version number of its key;
instances are pinned to the definition they started on, so a new version never disturbs
running instances.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree

from .errors import DefinitionInvalid, Problem
from .forms import SchemaProblem, form_schema
from .model import DocumentModel, ProcessModel, bpmn, read_document
from .records import DefinitionRecord, DeploymentRecord
from .sandbox import Sandbox
from .services import ServiceImplementation, ServiceRegistry, implementation_of
from .spiff.parser import CompiledSpecs, compile_specs
from .validation import ValidationContext, validate_document
from .xml import parse_xml

START_FORM = ""
"""Key of the start form in :attr:`CompiledDefinition.schemas`."""


def content_hash(source: bytes, resources: Mapping[str, bytes] | None = None) -> str:
    """SHA-256 over the BPMN bytes and every resource (name and bytes), order-independent."""
    digest = hashlib.sha256()
    digest.update(b"bpmn\0")
    digest.update(source)
    for name in sorted(resources or {}):
        digest.update(b"\0resource\0" + name.encode("utf-8") + b"\0")
        digest.update((resources or {})[name])
    return digest.hexdigest()


def referenced_resources(source: bytes, filename: str | None = None) -> set[str]:
    """Names of the schema files a BPMN document's forms refer to (for callers that load them)."""
    model = read_document(parse_xml(source, filename), filename)
    names: set[str] = set()
    for proc in model.processes:
        for element in proc.elements.values():
            if element.form is not None and element.form.schema_resource:
                names.add(element.form.schema_resource)
    return names


@dataclass(frozen=True)
class CompiledDefinition:
    """Everything needed to run and present one definition, built once and cached."""

    record: DefinitionRecord
    model: ProcessModel
    specs: CompiledSpecs
    schemas: Mapping[str, dict[str, Any] | None]
    services: Mapping[str, ServiceImplementation] = field(default_factory=dict)

    def form_schema(self, element_id: str) -> dict[str, Any] | None:
        return self.schemas.get(element_id)

    @property
    def start_schema(self) -> dict[str, Any] | None:
        return self.schemas.get(START_FORM)


@dataclass(frozen=True)
class PreparedDeployment:
    deployment: DeploymentRecord
    definitions: list[DefinitionRecord]
    compiled: dict[str, CompiledDefinition]


# Looks up the latest deployed definition of a process key, with its deployment.
DependencyLookup = Callable[[str], "tuple[DefinitionRecord, DeploymentRecord] | None"]


def _schemas(
    proc: ProcessModel, resources: Mapping[str, bytes], filename: str | None
) -> dict[str, dict[str, Any] | None]:
    schemas: dict[str, dict[str, Any] | None] = {}
    for element in proc.elements.values():
        if element.is_human_task:
            schemas[element.id] = form_schema(
                element.form, resources, element.label, filename, element.line, element.id
            )
    if proc.start_form is not None:
        schemas[START_FORM] = form_schema(proc.start_form, resources, proc.label, filename, proc.line, proc.id)
    return schemas


def _services(tree: etree._ElementTree, proc: ProcessModel) -> dict[str, ServiceImplementation]:
    result: dict[str, ServiceImplementation] = {}
    for node in tree.getroot().iter(bpmn("serviceTask")):
        ident = node.get("id")
        if ident and ident in proc.elements:
            result[ident] = implementation_of(node)
    return result


def _called_keys(tree: etree._ElementTree) -> set[str]:
    return {node.get("calledElement") or "" for node in tree.getroot().iter(bpmn("callActivity"))} - {""}


def _dependency_documents(
    tree: etree._ElementTree,
    own_ids: set[str],
    lookup: DependencyLookup,
) -> tuple[list[tuple[etree._ElementTree, str | None]], dict[str, str]]:
    """Trees of the deployed processes this document calls (transitively) and the pinned ids."""
    documents: list[tuple[etree._ElementTree, str | None]] = []
    pinned: dict[str, str] = {}
    pending = sorted(_called_keys(tree) - own_ids)
    seen_deployments: set[str] = set()
    while pending:
        key = pending.pop()
        if key in pinned or key in own_ids:
            continue
        found = lookup(key)
        if found is None:
            continue  # validation has already refused unknown called elements
        definition, deployment = found
        pinned[key] = definition.id
        if deployment.id in seen_deployments:
            continue
        seen_deployments.add(deployment.id)
        dep_tree = parse_xml(deployment.source, deployment.filename)
        documents.append((dep_tree, deployment.filename))
        dep_ids = {p.get("id") or "" for p in dep_tree.getroot().iter(bpmn("process"))}
        pending.extend(sorted(_called_keys(dep_tree) - own_ids - dep_ids - set(pinned)))
    return documents, pinned


def prepare_deployment(
    source: bytes,
    filename: str,
    resources: Mapping[str, bytes] | None,
    *,
    now: datetime,
    deployed_by: str,
    sandbox: Sandbox,
    services: ServiceRegistry,
    lookup: DependencyLookup,
    next_version: Callable[[str], int],
    new_id: Callable[[], str],
) -> PreparedDeployment:
    """Parse, validate and compile a BPMN file; raise :class:`DefinitionInvalid` with every problem."""
    resources = dict(resources or {})
    tree = parse_xml(source, filename)
    document = read_document(tree, filename)
    ctx = ValidationContext(filename, resources, sandbox, services, known_process=lambda key: lookup(key) is not None)
    problems = validate_document(tree, document, ctx)
    if problems:
        raise DefinitionInvalid(problems)
    return _compile(
        tree,
        document,
        source,
        filename,
        resources,
        now=now,
        deployed_by=deployed_by,
        lookup=lookup,
        next_version=next_version,
        new_id=new_id,
    )


def _compile(
    tree: etree._ElementTree,
    document: DocumentModel,
    source: bytes,
    filename: str,
    resources: dict[str, bytes],
    *,
    now: datetime,
    deployed_by: str,
    lookup: DependencyLookup,
    next_version: Callable[[str], int],
    new_id: Callable[[], str],
) -> PreparedDeployment:
    own_ids = {p.id for p in document.processes}
    dependencies, pinned = _dependency_documents(tree, own_ids, lookup)
    executable = document.executable_processes
    specs = compile_specs([(tree, filename), *dependencies], [p.id for p in executable])
    chash = content_hash(source, resources)
    deployment = DeploymentRecord(
        id=new_id(),
        filename=filename,
        content_hash=chash,
        source=source,
        resources=resources,
        deployed_at=now,
        deployed_by=deployed_by,
    )
    definitions: list[DefinitionRecord] = []
    compiled: dict[str, CompiledDefinition] = {}
    for proc in executable:
        try:
            schemas = _schemas(proc, resources, filename)
        except SchemaProblem as exc:  # pragma: no cover - validation checks schemas first
            raise DefinitionInvalid([exc.problem]) from exc
        record = DefinitionRecord(
            id=new_id(),
            deployment_id=deployment.id,
            key=proc.id,
            version=next_version(proc.id),
            name=proc.name,
            content_hash=chash,
            deployed_at=now,
            calls=dict(pinned),
        )
        definitions.append(record)
        compiled[record.id] = CompiledDefinition(record, proc, specs[proc.id], schemas, _services(tree, proc))
    return PreparedDeployment(deployment, definitions, compiled)


def load_compiled(
    record: DefinitionRecord, deployment: DeploymentRecord, called: Mapping[str, DeploymentRecord]
) -> CompiledDefinition:
    """Rebuild a stored definition (cache miss): no validation, it passed at deploy.

    ``called`` maps each pinned called process key to the deployment holding it.
    """
    tree = parse_xml(deployment.source, deployment.filename)
    document = read_document(tree, deployment.filename)
    proc = document.process(record.key)
    if proc is None:
        raise DefinitionInvalid(
            [Problem(f"process {record.key!r} is missing from its deployment", file=deployment.filename)]
        )
    documents: list[tuple[etree._ElementTree, str | None]] = [(tree, deployment.filename)]
    seen = {deployment.id}
    for dep in called.values():
        if dep.id not in seen:
            seen.add(dep.id)
            documents.append((parse_xml(dep.source, dep.filename), dep.filename))
    specs = compile_specs(documents, [record.key])
    return CompiledDefinition(
        record,
        proc,
        specs[record.key],
        _schemas(proc, deployment.resources, deployment.filename),
        _services(tree, proc),
    )
