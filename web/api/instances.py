"""Process instances: list, one with its history, cancel, variables, incidents, the diagram's state, documents."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for

from engine.ports import InstanceQuery
from engine.records import InstanceStatus

from . import present
from .common import actor, engine, listing, paged
from .spec import PAGING, PROBLEM, Api, Param, Reply, json_response, page_of, ref

STATUSES = [s.value for s in InstanceStatus]


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def install(api: Api) -> None:
    @api.op(
        "GET",
        "/instances",
        summary="List process instances",
        tag="Instances",
        query=[
            Param("process_key", {"type": "string", "maxLength": 255}),
            Param("status", {"type": "string", "enum": STATUSES}),
            Param("organisation", {"type": "string", "maxLength": 64}, "The organisation the instance belongs to."),
            Param("business_key", {"type": "string", "maxLength": 200}),
            *PAGING,
        ],
        replies=[Reply(200, "A page of instances, newest first.", page_of("Instance"))],
    )
    def list_instances(
        process_key: str | None,
        status: str | None,
        organisation: str | None,
        business_key: str | None,
        page: int,
        per_page: int,
    ) -> Response:
        p, n, limit, offset = paged(page, per_page)
        query = InstanceQuery(
            process_key=process_key,
            status=InstanceStatus(status) if status else None,
            organisation=organisation,
            business_key=business_key,
            limit=limit,
            offset=offset,
        )
        items, total = engine().instances_page(actor(), query)
        return listing([present.instance(i) for i in items], total, p, n)

    @api.op(
        "GET",
        "/instances/<instance_id>",
        summary="One instance: variables, open tasks and its full history",
        tag="Instances",
        replies=[
            Reply(200, "The instance; its ETag is its version.", ref("InstanceDetail"), headers={"ETag": "version"})
        ],
    )
    def get_instance(instance_id: str) -> Response:
        view = engine().instance(instance_id, actor())
        return json_response(view.to_dict(), headers=_etag(view.instance.version))

    @api.op(
        "POST",
        "/instances/<instance_id>/cancel",
        summary="Cancel an instance (its initiator, the coordinator or an administrator)",
        tag="Instances",
        body={
            "type": "object",
            "additionalProperties": False,
            "properties": {"reason": {"type": "string", "maxLength": 2000}},
        },
        if_match=True,
        replies=[
            Reply(200, "The cancelled instance.", ref("InstanceDetail")),
            Reply(409, "The instance has already ended.", ref("Problem"), PROBLEM),
            Reply(412, "The instance changed since the version in If-Match.", ref("Problem"), PROBLEM),
        ],
    )
    def cancel_instance(instance_id: str, body: dict[str, Any], expected_version: int | None) -> Response:
        view = engine().cancel(instance_id, actor(), body.get("reason"), expected_version=expected_version)
        return json_response(view.to_dict(), headers=_etag(view.instance.version))

    @api.op(
        "GET",
        "/instances/<instance_id>/variables",
        summary="The instance's process variables",
        tag="Instances",
        replies=[Reply(200, "Variables by name.", {"type": "object"}, headers={"ETag": "version"})],
    )
    def get_variables(instance_id: str) -> Response:
        view = engine().instance(instance_id, actor())
        return json_response(view.to_dict()["variables"], headers=_etag(view.instance.version))

    @api.op(
        "PATCH",
        "/instances/<instance_id>/variables",
        summary="Change variables (the Ministry moves the Day: dependent deadlines are recomputed)",
        tag="Instances",
        body={
            "type": "object",
            "required": ["variables"],
            "additionalProperties": False,
            "properties": {"variables": {"type": "object", "minProperties": 1}},
        },
        if_match=True,
        replies=[
            Reply(200, "The instance after the change.", ref("InstanceDetail")),
            Reply(409, "The instance has ended.", ref("Problem"), PROBLEM),
            Reply(412, "The instance changed since the version in If-Match.", ref("Problem"), PROBLEM),
        ],
    )
    def patch_variables(instance_id: str, body: dict[str, Any], expected_version: int | None) -> Response:
        who = actor()
        engine().set_variables(instance_id, who, body["variables"], expected_version=expected_version)
        view = engine().instance(instance_id, who)
        return json_response(view.to_dict(), headers=_etag(view.instance.version))

    @api.op(
        "POST",
        "/instances/<instance_id>/retry",
        summary="Retry an instance in incident from its last good state",
        tag="Instances",
        replies=[
            Reply(200, "The instance after the retry (still `incident` if the step failed again).", ref("Instance")),
            Reply(409, "The instance is not in an incident.", ref("Problem"), PROBLEM),
        ],
    )
    def retry_instance(instance_id: str) -> Response:
        view = engine().retry_incident(instance_id, actor())
        return json_response(present.instance(view.instance))

    @api.op(
        "GET",
        "/instances/<instance_id>/diagram-state",
        summary="Completed, active and overdue elements, for highlighting the diagram",
        tag="Instances",
        replies=[Reply(200, "Element ids by state.", ref("DiagramState"))],
    )
    def get_diagram_state(instance_id: str) -> Response:
        return json_response(present.diagram(engine().diagram_state(instance_id, actor())))

    @api.op(
        "GET",
        "/instances/<instance_id>/documents",
        summary="The documents and comments of an instance that you may read",
        tag="Instances",
        replies=[
            Reply(
                200,
                "Attachments and comments.",
                {
                    "type": "object",
                    "required": ["attachments", "comments"],
                    "properties": {
                        "attachments": {"type": "array", "items": ref("Attachment")},
                        "comments": {"type": "array", "items": ref("Comment")},
                    },
                },
            )
        ],
    )
    def get_instance_documents(instance_id: str) -> Response:
        files, notes = engine().instance_documents(instance_id, actor())
        return json_response(
            {
                "attachments": [
                    present.attachment(a, url_for("api.download_attachment", task_id=a.task_id, attachment_id=a.id))
                    for a in files
                ],
                "comments": [present.comment(c) for c in notes],
            }
        )

    @api.op(
        "GET",
        "/incidents",
        summary="Instances in incident (the coordinator and administrators)",
        tag="Instances",
        query=[*PAGING],
        replies=[Reply(200, "A page of instances whose background step failed, newest first.", page_of("Instance"))],
    )
    def list_incidents(page: int, per_page: int) -> Response:
        p, n, limit, offset = paged(page, per_page)
        items, total = engine().incidents_page(actor(), limit, offset)
        return listing([present.instance(i) for i in items], total, p, n)
