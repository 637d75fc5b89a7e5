"""The API's operations, declared once: the same schemas validate requests and write the OpenAPI document.

Each view is registered with :meth:`Api.op`, naming its path, query parameters, JSON or
multipart body and responses as JSON Schema (2020-12, which OpenAPI 3.1 uses as is). The
wrapper parses and validates the query string and the body before the view runs, collecting
every bad field into one :class:`~engine.errors.InvalidRequest`; the view receives plain
Python values. :meth:`Api.openapi` turns the same declarations into the document served at
``/api/v1/openapi.json``, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import wraps
from typing import Any

from flask import Blueprint, Response, g, request

from engine.errors import BadInput, FieldError, InvalidRequest, TooLarge, UnsupportedType
from engine.forms import field_errors

from ..auth import require_actor

View = Callable[..., Any]
JSON = "application/json"
PROBLEM = "application/problem+json"

_PATH_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False
    arg: str | None = None  # the view's keyword, when the query name would shadow something

    @property
    def keyword(self) -> str:
        return self.arg or self.name


@dataclass(frozen=True)
class Reply:
    """One documented response: status, description, and a schema or a content type."""

    status: int
    description: str
    schema: dict[str, Any] | None = None
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    alternatives: dict[str, dict[str, Any]] = field(default_factory=dict)  # other media types


@dataclass
class Operation:
    method: str
    rule: str
    operation_id: str
    summary: str
    tag: str
    description: str
    query: list[Param]
    body: dict[str, Any] | None
    multipart: dict[str, Any] | None
    replies: list[Reply]
    public: bool
    if_match: bool

    @property
    def path(self) -> str:
        return _PATH_PARAM.sub(r"{\1}", self.rule)

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.rule)


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "total", "page", "per_page"],
        "properties": {
            "items": {"type": "array", "items": ref(name)},
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1},
        },
    }


PAGING = [
    Param("page", {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1}, "Page number, from 1."),
    Param("per_page", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Items per page."),
]

# Errors every authenticated operation can answer with.
COMMON_ERRORS = [
    Reply(400, "The request is malformed: bad JSON, a wrong type, a missing field.", ref("Problem"), PROBLEM),
    Reply(401, "No valid session or API token.", ref("Problem"), PROBLEM),
    Reply(403, "The role or organisation does not allow this action.", ref("Problem"), PROBLEM),
]


class Api:
    """A registry of operations on a Flask blueprint."""

    def __init__(self, blueprint: Blueprint, *, title: str, version: str, description: str) -> None:
        self.blueprint = blueprint
        self.title = title
        self.version = version
        self.description = description
        self.operations: list[Operation] = []
        self.schemas: dict[str, dict[str, Any]] = {}

    def schema(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Register a component schema; return a reference to it."""
        self.schemas[name] = schema
        return ref(name)

    def op(
        self,
        method: str,
        rule: str,
        *,
        summary: str,
        tag: str,
        replies: list[Reply],
        description: str = "",
        query: list[Param] | None = None,
        body: dict[str, Any] | None = None,
        multipart: dict[str, Any] | None = None,
        public: bool = False,
        if_match: bool = False,
    ) -> Callable[[View], View]:
        def decorator(view: View) -> View:
            operation = Operation(
                method.upper(),
                rule,
                view.__name__,
                summary,
                tag,
                description or (view.__doc__ or "").strip(),
                list(query or []),
                body,
                multipart,
                replies,
                public,
                if_match,
            )
            self.operations.append(operation)

            @wraps(view)
            def wrapper(**path: Any) -> Any:
                g.operation = operation
                if not operation.public:
                    # Who asks comes first: an anonymous caller gets 401, never feedback on its input,
                    # and its body is not parsed.
                    require_actor()
                kwargs = dict(path)
                kwargs.update(parse_query(operation))
                if operation.body is not None:
                    kwargs["body"] = parse_json_body(operation.body)
                if operation.multipart is not None:
                    kwargs.update(parse_multipart(operation.multipart))
                if operation.if_match:
                    kwargs["expected_version"] = parse_if_match()
                return view(**kwargs)

            self.blueprint.add_url_rule(rule, view.__name__, wrapper, methods=[operation.method])
            return view

        return decorator

    # -- the OpenAPI document ----------------------------------------------------------------------

    def openapi(self, server_url: str) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            item = paths.setdefault(op.path, {})
            parameters: list[dict[str, Any]] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                for name in op.path_params
            ]
            parameters += [
                {
                    "name": p.name,
                    "in": "query",
                    "required": p.required,
                    "schema": p.schema,
                    **({"description": p.description} if p.description else {}),
                }
                for p in op.query
            ]
            if op.if_match:
                parameters.append(
                    {
                        "name": "If-Match",
                        "in": "header",
                        "required": False,
                        "description": "The instance version you saw (its ETag); a newer version answers 412.",
                        "schema": {"type": "string", "pattern": '^(W/)?"?[0-9]+"?$'},
                    }
                )
            entry: dict[str, Any] = {
                "operationId": op.operation_id,
                "summary": op.summary,
                "tags": [op.tag],
                "parameters": parameters,
                "responses": {},
            }
            if op.description:
                entry["description"] = op.description
            if op.public:
                entry["security"] = []
            if op.body is not None:
                entry["requestBody"] = {"required": True, "content": {JSON: {"schema": op.body}}}
            if op.multipart is not None:
                entry["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": op.multipart}}}
            replies = list(op.replies)
            if not op.public:
                replies += COMMON_ERRORS
            if op.path_params:
                replies.append(Reply(404, "No such object, or you may not see it.", ref("Problem"), PROBLEM))
            if op.body is not None or op.multipart is not None:
                replies.append(Reply(413, "The body is over its size limit.", ref("Problem"), PROBLEM))
                replies.append(Reply(415, "The body's media type is not accepted.", ref("Problem"), PROBLEM))
            for reply in replies:
                if str(reply.status) in entry["responses"]:
                    continue
                doc: dict[str, Any] = {"description": reply.description}
                if reply.schema is not None or reply.content_type != JSON:
                    doc["content"] = {reply.content_type: {"schema": reply.schema or {"type": "string"}}}
                    doc["content"].update({kind: {"schema": schema} for kind, schema in reply.alternatives.items()})
                if reply.headers:
                    doc["headers"] = {
                        name: {"description": text, "schema": {"type": "string"}}
                        for name, text in reply.headers.items()
                    }
                entry["responses"][str(reply.status)] = doc
            item[op.method.lower()] = entry
        tags = sorted({op.tag for op in self.operations})
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version, "description": self.description},
            "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
            "servers": [{"url": server_url}],
            "tags": [{"name": t} for t in tags],
            "security": [{"bearer": []}, {"session": []}],
            "paths": paths,
            "components": {
                "schemas": self.schemas,
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API token (agt_…) created by an administrator.",
                    },
                    "session": {
                        "type": "apiKey",
                        "in": "cookie",
                        "name": "agglo_session",
                        "description": "The browser session; unsafe methods also need the X-CSRF-Token header.",
                    },
                },
            },
        }


# -- request parsing -------------------------------------------------------------------------------


def _convert(name: str, raw: str, schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise InvalidRequest([FieldError(name, "type", f"{raw!r} is not an integer")]) from None
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise InvalidRequest([FieldError(name, "type", f"{raw!r} is not true or false")])
    if kind == "string" and schema.get("format") == "date":
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise InvalidRequest([FieldError(name, "format", f"{raw!r} is not a date (YYYY-MM-DD)")]) from None
    if kind == "string" and schema.get("format") == "date-time":
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            value = None
        if value is None or value.tzinfo is None:
            raise InvalidRequest(
                [FieldError(name, "format", f"{raw!r} is not a date-time with a time zone (RFC 3339)")]
            ) from None
        return value
    return raw


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def parse_query(operation: Operation) -> dict[str, Any]:
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    for param in operation.query:
        raw = request.args.get(param.name)
        if raw is None:
            if param.required:
                errors.append(FieldError(param.name, "required", "this query parameter is required"))
            values[param.keyword] = param.schema.get("default")
            continue
        try:
            value = _convert(param.name, raw, param.schema)
        except InvalidRequest as exc:
            errors.extend(exc.errors)
            continue
        schema = {k: v for k, v in param.schema.items() if k not in ("format",)}
        errors.extend(FieldError(param.name, e.code, e.message, e.extra) for e in field_errors(schema, _plain(value)))
        values[param.keyword] = value
    if errors:
        raise InvalidRequest(errors)
    return values


def parse_json_body(schema: Mapping[str, Any]) -> Any:
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise TooLarge("the request body", request.content_length, limit)
    if request.mimetype != JSON:
        raise UnsupportedType(f"send the body as {JSON}, not {request.mimetype or 'nothing'!r}")
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"the body is not valid JSON: {exc}") from None
    errors = field_errors(schema, body)
    if errors:
        raise InvalidRequest(errors)
    return body


def parse_multipart(schema: Mapping[str, Any]) -> dict[str, Any]:
    if request.mimetype != "multipart/form-data":
        raise UnsupportedType(f"send the files as multipart/form-data, not {request.mimetype or 'nothing'!r}")
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    required = set(schema.get("required", ()))
    for name, prop in (schema.get("properties") or {}).items():
        is_file = prop.get("format") == "binary" or (
            prop.get("type") == "array" and (prop.get("items") or {}).get("format") == "binary"
        )
        if is_file:
            files = [f for f in request.files.getlist(name) if f.filename]
            if prop.get("type") == "array":
                values[name] = files
            else:
                values[name] = files[0] if files else None
            if name in required and not files:
                errors.append(FieldError(name, "required", "attach a file in this field"))
        else:
            value = request.form.get(name)
            if name in required and not value:
                errors.append(FieldError(name, "required", "this field is required"))
            if value is not None:
                errors.extend(FieldError(name, e.code, e.message) for e in field_errors(prop, value))
            values[name] = value
    if errors:
        raise InvalidRequest(errors)
    return values


def parse_if_match() -> int | None:
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    text = raw.strip()
    text = text.removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidRequest([FieldError("If-Match", "format", 'If-Match must be the instance\'s ETag, e.g. "7"')])
    return int(text)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    response = Response(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), status=status, mimetype=JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response
