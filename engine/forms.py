"""Task and start forms as JSON Schema, and validation that lists every bad field.

A form comes either from ``camunda:formField`` elements (converted here, with their
validation constraints) or from a JSON Schema file beside the BPMN, named by ``formKey``
(``schema:application.schema.json`` or ``application.schema.json``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

from .errors import FieldError, FormInvalid, Problem
from .model import FormFieldSpec, FormSpec

CAMUNDA_TYPES = frozenset({"string", "long", "boolean", "date", "enum"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    date.fromisoformat(value)
    return len(value) == 10


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return "T" in value.upper() and parsed.tzinfo is not None


@FORMATS.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or bool(_EMAIL.match(value))


def _field_schema(spec: FormFieldSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    if spec.label:
        schema["title"] = spec.label
    if spec.type == "long":
        schema["type"] = "integer"
    elif spec.type == "boolean":
        schema["type"] = "boolean"
    elif spec.type == "date":
        schema["type"] = "string"
        schema["format"] = "date"
    elif spec.type == "enum":
        schema["type"] = "string"
        schema["enum"] = [value for value, _ in spec.options]
        schema["x-enumNames"] = [label for _, label in spec.options]
    else:
        schema["type"] = "string"
        if spec.required:
            schema["minLength"] = 1
    if spec.min_length is not None:
        schema["minLength"] = spec.min_length
    if spec.max_length is not None:
        schema["maxLength"] = spec.max_length
    if spec.minimum is not None:
        schema["minimum"] = int(spec.minimum) if spec.type == "long" else spec.minimum
    if spec.maximum is not None:
        schema["maximum"] = int(spec.maximum) if spec.type == "long" else spec.maximum
    if spec.readonly:
        schema["readOnly"] = True
    default = typed_default(spec)
    if default is not None:
        schema["default"] = default
    return schema


def typed_default(spec: FormFieldSpec) -> Any:
    """The field's ``defaultValue`` as a value of its type (None when absent or not convertible)."""
    raw = spec.default
    if raw is None or raw.startswith(("${", "#{")):
        return None
    if spec.type == "long":
        try:
            return int(raw)
        except ValueError:
            return None
    if spec.type == "boolean":
        return raw.strip().lower() == "true"
    return raw


def schema_from_fields(fields: tuple[FormFieldSpec, ...], title: str | None = None) -> dict[str, Any]:
    """JSON Schema (2020-12) for a set of Camunda form fields."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {f.id: _field_schema(f) for f in fields},
        "additionalProperties": False,
    }
    if title:
        schema["title"] = title
    required = [f.id for f in fields if f.required]
    if required:
        schema["required"] = required
    return schema


def load_schema(
    name: str,
    resources: Mapping[str, bytes],
    filename: str | None = None,
    line: int | None = None,
    element_id: str | None = None,
) -> dict[str, Any]:
    """Load and check a JSON Schema resource; raise a Problem-bearing ValueError when it is unusable."""
    raw = resources.get(name)
    if raw is None:
        raise SchemaProblem(
            Problem(
                f"form schema {name!r} was not supplied with the BPMN file",
                file=filename,
                line=line,
                element_id=element_id,
            )
        )
    try:
        schema = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SchemaProblem(
            Problem(f"form schema {name!r} is not valid JSON: {exc}", file=filename, line=line, element_id=element_id)
        ) from exc
    if not isinstance(schema, dict):
        raise SchemaProblem(
            Problem(f"form schema {name!r} must be a JSON object", file=filename, line=line, element_id=element_id)
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise SchemaProblem(
            Problem(
                f"form schema {name!r} is not a valid JSON Schema: {exc.message}",
                file=filename,
                line=line,
                element_id=element_id,
            )
        ) from exc
    return schema


class SchemaProblem(Exception):
    """Internal: carries a deploy-time Problem out of :func:`load_schema`."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def form_schema(
    form: FormSpec | None,
    resources: Mapping[str, bytes],
    title: str | None = None,
    filename: str | None = None,
    line: int | None = None,
    element_id: str | None = None,
) -> dict[str, Any] | None:
    """The JSON Schema for a form, or None when the step has no form at all."""
    if form is None:
        return None
    resource = form.schema_resource
    if resource is not None:
        return load_schema(resource, resources, filename, line, element_id)
    if form.fields:
        return schema_from_fields(form.fields, title)
    return None


def _path(parts: Any) -> str:
    return ".".join(str(p) for p in parts)


def _join(base: str, name: str) -> str:
    return f"{base}.{name}" if base else name


def _messages(error: Any) -> list[FieldError]:
    """Turn one jsonschema error into field errors with stable codes and plain messages."""
    path = _path(error.absolute_path)
    validator = error.validator
    value = error.validator_value
    if validator == "required":
        missing = [name for name in value if isinstance(error.instance, dict) and name not in error.instance]
        return [FieldError(_join(path, name), "required", "this field is required") for name in missing]
    if validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
        return [FieldError(_join(path, name), "unknown_field", "this field is not part of the form") for name in extra]
    if validator == "type":
        expected = value if isinstance(value, str) else " or ".join(value)
        return [FieldError(path, "type", f"must be of type {expected}", {"expected": value})]
    if validator == "enum":
        return [FieldError(path, "enum", f"must be one of: {', '.join(map(str, value))}", {"allowed": list(value)})]
    if validator == "const":
        return [FieldError(path, "const", f"must be {value!r}")]
    if validator == "format":
        return [FieldError(path, "format", f"is not a valid {value}", {"format": value})]
    if validator == "minLength":
        if value == 1:
            return [FieldError(path, "required", "this field must not be empty")]
        return [FieldError(path, "min_length", f"must be at least {value} characters long", {"limit": value})]
    if validator == "maxLength":
        return [FieldError(path, "max_length", f"must be at most {value} characters long", {"limit": value})]
    if validator in ("minimum", "exclusiveMinimum"):
        return [
            FieldError(
                path,
                "minimum",
                f"must be {'>' if validator.startswith('exclusive') else '>='} {value}",
                {"limit": value},
            )
        ]
    if validator in ("maximum", "exclusiveMaximum"):
        return [
            FieldError(
                path,
                "maximum",
                f"must be {'<' if validator.startswith('exclusive') else '<='} {value}",
                {"limit": value},
            )
        ]
    if validator == "minItems":
        return [FieldError(path, "min_items", f"must have at least {value} item(s)", {"limit": value})]
    if validator == "maxItems":
        return [FieldError(path, "max_items", f"must have at most {value} item(s)", {"limit": value})]
    if validator == "uniqueItems":
        return [FieldError(path, "unique_items", "must not contain duplicates")]
    if validator == "pattern":
        return [FieldError(path, "pattern", f"must match the pattern {value}", {"pattern": value})]
    return [FieldError(path, str(validator), error.message)]


def field_errors(schema: Mapping[str, Any], data: Any) -> list[FieldError]:
    """Every way ``data`` breaks ``schema`` (JSON Schema 2020-12), one error per field and keyword."""
    validator = Draft202012Validator(schema, format_checker=FORMATS)
    errors: list[FieldError] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: (_path(e.absolute_path), str(e.validator))):
        errors.extend(_messages(error))
    if isinstance(data, Mapping):
        for name, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, dict) and prop.get("readOnly") and name in data and data[name] != prop.get("default"):
                errors.append(FieldError(name, "read_only", "this field is read-only"))
    # A field can be reported by several keywords (e.g. type and required): keep each once.
    unique: dict[tuple[str, str], FieldError] = {}
    for err in errors:
        unique.setdefault((err.field, err.code), err)
    return list(unique.values())


def validate(schema: Mapping[str, Any] | None, data: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``data`` against ``schema``; return the data to store, or raise :class:`FormInvalid`.

    Every bad field is reported at once. Read-only fields may be submitted only with their
    default value. Without a schema, any JSON object is accepted (Camunda's generic forms).
    """
    if not isinstance(data, Mapping):
        raise FormInvalid([FieldError("", "type", "form data must be a JSON object")])
    if schema is None:
        return dict(data)
    errors = field_errors(schema, dict(data))
    if errors:
        raise FormInvalid(errors)
    return dict(data)
