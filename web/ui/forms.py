"""HTML forms from a task's JSON Schema, and submitted form fields back into JSON.

The same schema the engine validates with drives the page: each property becomes a widget
(text, textarea, number, date, e-mail, checkbox, radio buttons or a select for an enum,
checkboxes for an array of an enum, a fieldset for a nested object, one item per line for an
array of strings). Field names are dotted paths (``contact.email``), the same paths the
engine's field errors use, so an error lands next to its field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from engine.errors import FieldError

LONG_TEXT = 300
RU_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")


@dataclass
class Widget:
    name: str  # dotted path
    # text | textarea | number | integer | date | datetime | email | checkbox | radio | select | decision
    # | checks | lines | json | group
    kind: str
    label: str
    description: str | None = None
    required: bool = False
    value: Any = None
    options: list[tuple[str, str]] = field(default_factory=list)
    children: list[Widget] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    readonly: bool = False

    @property
    def dom_id(self) -> str:
        return "f-" + self.name.replace(".", "-")


def _options(schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    values = list(schema.get("enum") or [])
    names = list(schema.get("x-enumNames") or [])
    return [(str(v), str(names[i]) if i < len(names) else str(v)) for i, v in enumerate(values)]


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        return "group" if schema.get("properties") else "json"
    if kind == "array":
        items = schema.get("items") or {}
        if items.get("enum"):
            return "checks"
        return "lines" if items.get("type", "string") == "string" else "json"
    if kind == "boolean":
        return "checkbox"
    if kind == "integer":
        return "integer"
    if kind == "number":
        return "number"
    if schema.get("enum"):
        return "radio" if len(schema["enum"]) <= 4 else "select"
    fmt = schema.get("format")
    if fmt == "date":
        return "date"
    if fmt == "date-time":
        return "datetime"
    if fmt == "email":
        return "email"
    if "pattern" in schema:
        return "text"  # a code, a number or a phone: one line
    if schema.get("maxLength", LONG_TEXT + 1) > LONG_TEXT:
        return "textarea"
    return "text"


def widgets(
    schema: Mapping[str, Any] | None,
    values: Mapping[str, Any] | None = None,
    errors: list[FieldError] | None = None,
    prefix: str = "",
) -> list[Widget]:
    """The widgets of an object schema, filled with ``values`` and annotated with ``errors``."""
    if not schema:
        return []
    values = values or {}
    by_field: dict[str, list[str]] = {}
    paths = _paths(schema, prefix) if errors else []
    for err in errors or []:
        owner = owner_of(err.field, paths)
        if owner is not None:
            by_field.setdefault(owner, []).append(message(err))
    required = set(schema.get("required") or ())
    result: list[Widget] = []
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, Mapping):
            continue
        path = f"{prefix}.{name}" if prefix else name
        kind = _kind(prop)
        widget = Widget(
            name=path,
            kind=kind,
            label=str(prop.get("title") or name),
            description=prop.get("description"),
            required=name in required,
            value=values.get(name, prop.get("default")),
            readonly=bool(prop.get("readOnly")),
        )
        if kind in ("radio", "select"):
            widget.options = _options(prop)
            if name.endswith("decision") and 2 <= len(widget.options) <= 3:
                widget.kind = "decision"  # rendered as the form's submit buttons
        if kind == "checks":
            widget.options = _options(prop.get("items") or {})
        if kind == "group":
            nested = values.get(name) if isinstance(values.get(name), Mapping) else {}
            widget.children = widgets(prop, nested, errors, path)
        for key in ("minLength", "maxLength", "minimum", "maximum", "pattern"):
            if key in prop:
                widget.attrs[key] = prop[key]
        widget.errors = by_field.get(path, [])
        result.append(widget)
    return result


def owner_of(field_path: str, paths: list[str]) -> str | None:
    """The widget an error belongs to: the deepest field path that is ``field_path`` or contains it
    (an error on ``directions.1``, an item of a list, belongs to the ``directions`` widget)."""
    owners = [p for p in paths if field_path == p or field_path.startswith(p + ".")]
    return max(owners, key=len) if field_path and owners else None


def form_errors(errors: list[FieldError], schema: Mapping[str, Any] | None) -> list[str]:
    """Errors that belong to no widget (the form as a whole, or an unknown field)."""
    paths = _paths(schema or {})
    return [f"{e.field + ': ' if e.field else ''}{message(e)}" for e in errors if owner_of(e.field, paths) is None]


def _paths(schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for name, prop in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        paths.append(path)
        if isinstance(prop, Mapping) and _kind(prop) == "group":
            paths += _paths(prop, path)
    return paths


def parse(schema: Mapping[str, Any] | None, form: MultiDict[str, str], prefix: str = "") -> dict[str, Any]:
    """Submitted fields back into JSON shaped by the schema. Empty fields are left out (so
    ``required`` reports them); values that do not parse are kept as text for the schema to reject."""
    if not schema:
        return {}
    data: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, Mapping) or prop.get("readOnly"):
            continue
        path = f"{prefix}.{name}" if prefix else name
        kind = _kind(prop)
        if kind == "group":
            nested = parse(prop, form, path)
            if nested:
                data[name] = nested
            continue
        if kind == "checks":
            chosen = [v for v in form.getlist(path) if v]
            if chosen:
                data[name] = chosen
            continue
        if kind == "checkbox":
            data[name] = form.get(path) in ("on", "true", "1")
            continue
        raw = (form.get(path) or "").strip()
        if raw == "":
            continue
        if kind == "integer":
            try:
                data[name] = int(raw)
            except ValueError:
                data[name] = raw
        elif kind == "number":
            try:
                data[name] = float(raw.replace(",", "."))
            except ValueError:
                data[name] = raw
        elif kind == "lines":
            data[name] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif kind == "json":
            try:
                data[name] = json.loads(raw)
            except ValueError:
                data[name] = raw
        elif kind == "date":
            data[name] = _iso_date(raw)
        else:
            data[name] = raw
    return data


def _iso_date(raw: str) -> str:
    """A date typed the Russian way (ДД.ММ.ГГГГ, where a browser has no date picker) as ISO 8601."""
    match = RU_DATE.match(raw)
    if match is None:
        return raw
    day, month, year = match.groups()
    return f"{year}-{int(month):02d}-{int(day):02d}"


def message(err: FieldError) -> str:
    """A Russian message for a field error, from its stable code."""
    extra = err.extra
    limit = extra.get("limit")
    texts = {
        "required": _("Заполните это поле."),
        "type": _("Неверный тип значения."),
        "enum": _("Выберите один из предложенных вариантов."),
        "format": {
            "date": _("Укажите дату."),
            "email": _("Укажите адрес электронной почты."),
            "date-time": _("Укажите дату и время."),
        }.get(str(extra.get("format")), _("Неверный формат.")),
        "min_length": _("Не короче %(n)s символов.", n=limit),
        "max_length": _("Не длиннее %(n)s символов.", n=limit),
        "minimum": _("Не меньше %(n)s.", n=limit),
        "maximum": _("Не больше %(n)s.", n=limit),
        "min_items": _("Выберите хотя бы %(n)s.", n=limit),
        "max_items": _("Не больше %(n)s вариантов.", n=limit),
        "unique_items": _("Значения не должны повторяться."),
        "pattern": _("Недопустимые символы."),
        "unknown_field": _("Это поле не относится к форме."),
        "read_only": _("Это поле нельзя изменить."),
        "const": _("Недопустимое значение."),
    }
    return str(texts.get(err.code, err.message))
