"""The REST API under ``/api/v1``: one blueprint, one :class:`~web.api.spec.Api` registry."""

from __future__ import annotations

from flask import Blueprint, Response, request

from . import deadlines, definitions, instances, people, present, tasks, webhooks
from .spec import Api, Reply, json_response

VERSION = "1.0.0"


def create_api() -> Api:
    blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
    api = Api(
        blueprint,
        title="agglo API",
        version=VERSION,
        description=(
            "The regulated procedures of the Chelyabinsk region's educational agglomeration: process "
            "definitions, instances, human tasks, deadlines on the production calendar, the members "
            "registry and the audit trail. Errors are RFC 9457 problem documents."
        ),
    )
    present.register(api)
    definitions.install(api)
    instances.install(api)
    tasks.install(api)
    deadlines.install(api)
    people.install(api)
    webhooks.install(api)

    @api.op(
        "GET",
        "/openapi.json",
        summary="This document",
        tag="Meta",
        public=True,
        replies=[Reply(200, "The OpenAPI 3.1 description of the API.", {"type": "object"})],
    )
    def openapi() -> Response:
        return json_response(api.openapi(request.host_url.rstrip("/") + "/api/v1"))

    return api
