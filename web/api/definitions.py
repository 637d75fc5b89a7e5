"""Process definitions: deploy (multipart upload), list, one version with its steps, its BPMN XML; start."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from werkzeug.datastructures import FileStorage

from engine.errors import BadInput, TooLarge

from . import present
from .common import actor, created, engine, listing, paged
from .spec import PAGING, Api, Param, Reply, json_response, page_of, ref

MAX_BPMN = 5 * 1024 * 1024


def _read(file: FileStorage, limit: int, field: str) -> bytes:
    data: bytes = file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"file {file.filename!r}", len(data), limit, field=field)
    return data


def definition_detail(definition_id: str) -> dict[str, Any]:
    eng = engine()
    compiled = eng.definition(definition_id)
    model = compiled.model
    who = actor()
    return {
        **present.definition(compiled.record),
        "startable": eng.can_start(who, compiled),
        "start_form": compiled.start_schema,
        "elements": [
            {
                "id": e.id,
                "kind": e.kind,
                "name": e.name,
                "clause": e.clause,
                "documentation": e.documentation,
                "lane": e.lane,
            }
            for e in model.elements.values()
        ],
    }


def install(api: Api) -> None:
    @api.op(
        "GET",
        "/definitions",
        summary="List process definitions",
        tag="Definitions",
        query=[
            Param("key", {"type": "string", "maxLength": 255}, "Only this process key."),
            Param("all_versions", {"type": "boolean", "default": False}, "Every version, not only the latest."),
            *PAGING,
        ],
        replies=[Reply(200, "A page of definitions.", page_of("Definition"))],
    )
    def list_definitions(key: str | None, all_versions: bool, page: int, per_page: int) -> Response:
        actor()
        p, n, limit, offset = paged(page, per_page)
        items = [d for d in engine().definitions(latest_only=not all_versions) if key is None or d.key == key]
        items.sort(key=lambda d: (d.key, -d.version))
        return listing([present.definition(d) for d in items[offset : offset + limit]], len(items), p, n)

    @api.op(
        "POST",
        "/definitions",
        summary="Deploy a BPMN file",
        description=(
            "Upload a BPMN 2.0 file (`file`) and the JSON Schema form files it names (`resources`). "
            "The file is parsed with a hardened XML parser and validated; every problem is listed with "
            "its line and element id (422). Deploying identical content again changes nothing (200)."
        ),
        tag="Definitions",
        multipart={
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "The .bpmn file."},
                "resources": {
                    "type": "array",
                    "items": {"type": "string", "format": "binary"},
                    "description": "Form schema files (*.schema.json) the BPMN refers to.",
                },
            },
        },
        replies=[
            Reply(201, "Deployed: new versions were created.", ref("Deployment")),
            Reply(200, "The same content was deployed before; nothing changed.", ref("Deployment")),
            Reply(
                422, "The BPMN was refused; `errors` names every problem.", ref("Problem"), "application/problem+json"
            ),
        ],
    )
    def deploy(file: FileStorage, resources: list[FileStorage]) -> Response:
        who = actor()
        source = _read(file, MAX_BPMN, "file")
        extra: dict[str, bytes] = {}
        for resource in resources:
            name = (resource.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
            if not name:
                raise BadInput("a resource file has no name", field="resources")
            extra[name] = _read(resource, 1024 * 1024, "resources")
        filename = (file.filename or "process.bpmn").replace("\\", "/").rsplit("/", 1)[-1]
        result = engine().deploy(source, filename, who, extra)
        payload = {
            "deployment_id": result.deployment.id,
            "filename": result.deployment.filename,
            "created": result.created,
            "deployed_at": present.iso(result.deployment.deployed_at),
            "deployed_by": result.deployment.deployed_by,
            "definitions": [present.definition(d) for d in result.definitions],
        }
        if result.created:
            first = result.definitions[0].id if result.definitions else ""
            return created(payload, url_for("api.get_definition", definition_id=first))
        return json_response(payload)

    @api.op(
        "GET",
        "/definitions/<definition_id>",
        summary="One definition version, with its steps and the clauses they implement",
        tag="Definitions",
        replies=[Reply(200, "The definition.", ref("DefinitionDetail"))],
    )
    def get_definition(definition_id: str) -> Response:
        actor()
        return json_response(definition_detail(definition_id))

    @api.op(
        "GET",
        "/definitions/<definition_id>/xml",
        summary="The BPMN XML of a definition version",
        tag="Definitions",
        replies=[Reply(200, "The BPMN 2.0 XML as deployed.", {"type": "string"}, "application/xml")],
    )
    def get_definition_xml(definition_id: str) -> Response:
        actor()
        source = engine().definition_source(definition_id)
        return Response(source, mimetype="application/xml", headers={"Cache-Control": "private, max-age=3600"})

    @api.op(
        "POST",
        "/processes/<process_key>/start",
        summary="Start the latest version of a process",
        description="Variables are checked against the start form, if the process has one (422 lists every bad field).",
        tag="Instances",
        body={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "business_key": {"type": "string", "minLength": 1, "maxLength": 200},
                "variables": {"type": "object"},
            },
        },
        replies=[
            Reply(201, "The new instance, with its first tasks.", ref("InstanceDetail")),
            Reply(409, "The process cannot be started this way.", ref("Problem"), "application/problem+json"),
            Reply(422, "The start form's data was refused.", ref("Problem"), "application/problem+json"),
        ],
    )
    def start_process(process_key: str, body: dict[str, Any]) -> Response:
        view = engine().start(process_key, actor(), body.get("variables") or {}, body.get("business_key"))
        payload = view.to_dict()
        return created(payload, url_for("api.get_instance", instance_id=view.instance.id))
