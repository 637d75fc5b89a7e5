"""Forms: Camunda form fields become JSON Schema; every bad field is reported at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import FormInvalid
from engine.forms import form_schema, schema_from_fields, validate
from engine.model import FormFieldSpec, FormSpec

FIELDS = (
    FormFieldSpec("amount", "long", "Сумма", required=True, minimum=1, maximum=1000),
    FormFieldSpec("title", "string", "Название", required=True, min_length=3, max_length=10),
    FormFieldSpec("approved", "boolean", "Одобрено"),
    FormFieldSpec("due", "date", "Срок"),
    FormFieldSpec("kind", "enum", "Вид", options=(("a", "Первый"), ("b", "Второй"))),
    FormFieldSpec("fixed", "string", "Фикс", default="X", readonly=True),
)
SCHEMA = schema_from_fields(FIELDS)
CONTRACT = Path(__file__).resolve().parents[2] / "processes" / "contract"


def test_schema_carries_types_labels_and_constraints() -> None:
    props = SCHEMA["properties"]
    assert props["amount"] == {"title": "Сумма", "type": "integer", "minimum": 1, "maximum": 1000}
    assert props["title"]["minLength"] == 3 and props["title"]["maxLength"] == 10
    assert props["due"]["format"] == "date"
    assert props["kind"]["enum"] == ["a", "b"] and props["kind"]["x-enumNames"] == ["Первый", "Второй"]
    assert props["fixed"]["readOnly"] is True and props["fixed"]["default"] == "X"
    assert set(SCHEMA["required"]) == {"amount", "title"}
    assert SCHEMA["additionalProperties"] is False


def test_valid_data_passes() -> None:
    data = {"amount": 5, "title": "abcd", "approved": True, "due": "2026-03-01", "kind": "a"}
    assert validate(SCHEMA, data) == data


def test_every_bad_field_is_listed() -> None:
    with pytest.raises(FormInvalid) as caught:
        validate(SCHEMA, {"amount": "5", "title": "ab", "due": "01.03.2026", "kind": "z", "extra": 1, "fixed": "Y"})
    by_field = {e.field: e.code for e in caught.value.errors}
    assert by_field == {
        "amount": "type",
        "title": "min_length",
        "due": "format",
        "kind": "enum",
        "extra": "unknown_field",
        "fixed": "read_only",
    }


def test_missing_required_fields_are_each_named() -> None:
    with pytest.raises(FormInvalid) as caught:
        validate(SCHEMA, {})
    assert sorted(e.field for e in caught.value.errors) == ["amount", "title"]
    assert all(e.code == "required" for e in caught.value.errors)


def test_numbers_out_of_range() -> None:
    with pytest.raises(FormInvalid) as caught:
        validate(SCHEMA, {"amount": 0, "title": "abcd"})
    assert caught.value.errors[0].field == "amount" and caught.value.errors[0].code == "minimum"


def test_non_object_data_is_refused() -> None:
    with pytest.raises(FormInvalid):
        validate(SCHEMA, ["not", "an", "object"])  # type: ignore[arg-type]


def test_no_schema_accepts_any_object() -> None:
    assert validate(None, {"anything": [1, 2]}) == {"anything": [1, 2]}


def test_schema_file_resource_is_loaded_and_nested_errors_have_paths() -> None:
    resources = {"application.schema.json": (CONTRACT / "application.schema.json").read_bytes()}
    schema = form_schema(FormSpec(key="schema:application.schema.json"), resources)
    assert schema is not None and schema["title"].startswith("Заявка")
    with pytest.raises(FormInvalid) as caught:
        validate(
            schema,
            {
                "directions": [],
                "aspects": "short",
                "contact": {"name": "Иванов И.И.", "email": "nope"},
                "term_until": "2026-13-01",
            },
        )
    fields = {e.field: e.code for e in caught.value.errors}
    assert fields == {
        "directions": "min_items",
        "aspects": "min_length",
        "contact.email": "format",
        "term_until": "format",
    }


def test_conditional_requirement_in_review_schema() -> None:
    schema = json.loads((CONTRACT / "review.schema.json").read_text(encoding="utf-8"))
    validate(schema, {"review_decision": "accept"})
    with pytest.raises(FormInvalid) as caught:
        validate(schema, {"review_decision": "return"})
    assert [e.field for e in caught.value.errors] == ["review_comment"]
