"""JUEL: recognition, parsing to a Python AST, runtime semantics and the Camunda corpus."""

from __future__ import annotations

import ast
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from engine import juel
from engine.errors import ExpressionError, SandboxViolation
from engine.sandbox import Sandbox, is_expression_language


class Execution:
    """The shape of the context object the engine passes as ``execution``."""

    def __init__(self, **variables: Any) -> None:
        self.variables = dict(variables)
        self.processInstanceId = "pi-1"

    def getVariable(self, name: str) -> Any:
        return self.variables.get(name)

    def setVariable(self, name: str, value: Any) -> None:
        self.variables[name] = value

    def getBusinessKey(self) -> str:
        return "bk-7"


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(time_limit=0.2)


def run(sandbox: Sandbox, text: str, **variables: Any) -> Any:
    return sandbox.evaluate(text, variables)


# --- recognition ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "whole", "composite"),
    [
        ("${x}", True, False),
        ("#{x}", True, False),
        ("  ${ a > 1 }\n", True, False),
        ("${a == '}'}", True, False),
        ('${a == "}"}', True, False),
        ("${a}${b}", False, True),
        ("Dear ${name}", False, True),
        ("${a} and #{b}", False, True),
        ("Dear ${name", False, True),  # unterminated: still JUEL, reported as a syntax error
        ("plain text", False, False),
        ("amount > 1000", False, False),
        ("price $5 {x}", False, False),
        ("\\${escaped}", False, False),
        ("", False, False),
    ],
)
def test_recognition(text: str, whole: bool, composite: bool) -> None:
    assert juel.is_juel(text) is whole
    assert juel.is_composite(text) is composite


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${x}", True),
        ("Dear ${name}", True),
        ('x = "${a}"', False),  # valid Python: a string literal, not a template
        ("y = 1  # see ${x}", False),  # a Python comment
        ("#{approved}", True),  # a Python comment too, but exactly one JUEL eval
        ("a > 1", False),
    ],
)
def test_is_expression_language(text: str, expected: bool) -> None:
    assert is_expression_language(text) is expected


# --- the AST ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "python"),
    [
        ("${a}", "a"),
        ("${a.b}", "__juel_prop(a, 'b')"),
        ("${a['b'][0]}", "__juel_prop(__juel_prop(a, 'b'), 0)"),
        ("${!a}", "not __juel_bool(a)"),
        ("${a && b || c}", "__juel_bool(a) and __juel_bool(b) or __juel_bool(c)"),
        ("${a < b == c}", "__juel_eq(__juel_lt(a, b), c)"),
        ("${a != null}", "not __juel_eq(a, None)"),
        ("${a ? 1 : -2}", "1 if __juel_bool(a) else -2"),
        ("${-a}", "__juel_neg(a)"),
        ("${execution.setVariable('x', 1)}", "execution.setVariable('x', 1)"),
        ("${now()}", "now()"),
        ("Hi ${a}!", "__juel_concat('Hi ', a, '!')"),
        ("${1 + 2 * 3}", "__juel_add(1, __juel_mul(2, 3))"),
        ("${(1 + 2) * 3}", "__juel_mul(__juel_add(1, 2), 3)"),
        ("${a div b mod c}", "__juel_mod(__juel_div(a, b), c)"),
        ("${a lt b and a ge c}", "__juel_lt(a, b) and __juel_ge(a, c)"),
    ],
)
def test_translation_builds_the_expected_ast(text: str, python: str) -> None:
    tree = juel.to_python_ast(text)
    assert isinstance(tree, ast.Expression)
    assert ast.unparse(tree) == python


def test_translation_has_locations_and_compiles() -> None:
    tree = juel.to_python_ast("${a.b(c) > 1}")
    compile(tree, "<test>", "eval")  # raises if any node lacks a location
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute))
    assert call.col_offset == 4  # the method name 'b'


# --- the Camunda corpus -----------------------------------------------------------------

# Every expression in camunda-bpm-examples that does not call a Java bean method (as they
# appear after XML decoding).
CORPUS = [
    ("${score <= 5}", {"score": 5}, True),
    ("${score <= 5}", {"score": 6}, False),
    ("${score > 5}", {"score": 6}, True),
    ("${score > 5}", {"score": "4"}, False),  # form data arrives as text: EL coerces
    ("${not approved}", {"approved": False}, True),
    ("${approved}", {"approved": True}, True),
    ("#{approved}", {"approved": False}, False),
    ("#{!approved}", {"approved": False}, True),
    ("${isHoliday}", {"isHoliday": True}, True),
    ("${!isHoliday}", {"isHoliday": True}, False),
    ("${invoiceId != null}", {"invoiceId": "INV-1"}, True),
    ("${invoiceId != null}", {"invoiceId": None}, False),
    ("${foo == 'bar'}", {"foo": "bar"}, True),
    ("${foo == 'bar'}", {"foo": "baz"}, False),
    ("${foo != 'bar'}", {"foo": "baz"}, True),
    ("${customers}", {"customers": ["a", "b"]}, ["a", "b"]),
    ("${creditScores}", {"creditScores": [1, 2]}, [1, 2]),
    ("${initiator}", {"initiator": "ann"}, "ann"),
    ("#{twitter}", {"twitter": True}, True),
    ("#{facebook}", {"facebook": False}, False),
    ("#{!twitter}", {"twitter": True}, False),
    ("#{!facebook}", {"facebook": False}, True),
    # delegate references are plain identifiers: whatever the engine binds to them
    ("${sayHelloDelegate}", {"sayHelloDelegate": "bound"}, "bound"),
    ("#{emailAdapter}", {"emailAdapter": "bound"}, "bound"),
]


@pytest.mark.parametrize(("text", "variables", "expected"), CORPUS)
def test_corpus_expressions(sandbox: Sandbox, text: str, variables: dict[str, Any], expected: object) -> None:
    assert sandbox.evaluate(text, variables) == expected


@pytest.mark.parametrize(
    ("text", "name", "value"),
    [
        ("${execution.setVariable('foo', 'bar')}", "foo", "bar"),
        ("${execution.setVariable('finished', true)}", "finished", True),
    ],
)
def test_corpus_set_variable(sandbox: Sandbox, text: str, name: str, value: object) -> None:
    execution = Execution()
    assert sandbox.evaluate(text, {}, {"execution": execution}) is None
    assert execution.variables == {name: value}


def test_execution_methods_and_bean_properties(sandbox: Sandbox) -> None:
    execution = Execution(x=41)
    extra = {"execution": execution}
    assert sandbox.evaluate("${execution.getVariable('x') + 1}", {}, extra) == 42
    assert sandbox.evaluate("${execution.processInstanceId}", {}, extra) == "pi-1"
    assert sandbox.evaluate("${execution.businessKey}", {}, extra) == "bk-7"  # getBusinessKey()


BEAN_CALLS = [
    ("${exampleBean.invoke()}", ["exampleBean.invoke"]),
    ("#{jobAnnouncementService.postToWebsite(jobAnnouncementId)}", ["jobAnnouncementService.postToWebsite"]),
    ("#{jobAnnouncementService.findRequester(jobAnnouncementId)}", ["jobAnnouncementService.findRequester"]),
    (
        "${ calledElementTenantIdProvider.resolveTenantId(execution) }",
        ["calledElementTenantIdProvider.resolveTenantId"],
    ),
    ('${customer.prop("age").numberValue() < 21}', ["customer.prop", "customer.prop(...).numberValue"]),
    ('${customer.prop("age").numberValue() >= 21}', ["customer.prop", "customer.prop(...).numberValue"]),
    ("${execution.setVariable('foo', 'bar')}", ["execution.setVariable"]),
    ("${a.b.c(x)[0].d()}", ["a.b.c", "a.b.c(...)[...].d"]),
    ("${now()} and ${execution.getVariable(now())}", ["execution.getVariable"]),  # functions are not methods
    ("${x.y()} ${x.y()}", ["x.y"]),
    ("${a + b}", []),
]


@pytest.mark.parametrize(("text", "calls"), BEAN_CALLS)
def test_method_calls_lists_calls_for_the_deploy_validator(text: str, calls: list[str]) -> None:
    assert juel.method_calls(text) == calls


def test_bean_method_without_bean_is_an_unknown_variable(sandbox: Sandbox) -> None:
    with pytest.raises(ExpressionError, match="unknown variable 'exampleBean'"):
        sandbox.evaluate("${exampleBean.invoke()}", {})


@pytest.mark.parametrize("text", ['${customer.prop("age").numberValue() < 21}', '${customer.prop("age") >= 21}'])
def test_spin_method_on_a_plain_dict_is_refused_at_run_time(sandbox: Sandbox, text: str) -> None:
    with pytest.raises(ExpressionError, match="method 'prop' not found on a dict value"):
        sandbox.evaluate(text, {"customer": {"age": 30}})
    # ... and the deploy validator can see it coming:
    assert [c for c in juel.method_calls(text) if not c.startswith("execution.")]


# --- semantics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        # literals
        ("${42}", {}, 42),
        ("${1.5e2}", {}, 150.0),
        ("${.5}", {}, 0.5),
        ("${'it\\'s'}", {}, "it's"),
        ('${"say \\"hi\\""}', {}, 'say "hi"'),
        ("${'back\\\\slash'}", {}, "back\\slash"),
        ('${"it\'s"}', {}, "it's"),
        ("${true}", {}, True),
        ("${null}", {}, None),
        # empty
        ("${empty x}", {"x": None}, True),
        ("${empty x}", {"x": ""}, True),
        ("${empty x}", {"x": []}, True),
        ("${empty x}", {"x": {}}, True),
        ("${empty x}", {"x": [0]}, False),
        ("${empty x}", {"x": "a"}, False),
        ("${empty x}", {"x": 0}, False),
        ("${not empty x}", {"x": [1]}, True),
        # division is floating point
        ("${7 / 2}", {}, 3.5),
        ("${8 div 2}", {}, 4.0),
        ("${x / 4}", {"x": Decimal("1")}, Decimal("0.25")),
        # remainder follows Java (sign of the dividend)
        ("${7 % 3}", {}, 1),
        ("${-7 mod 3}", {}, -1),
        ("${7 mod -3}", {}, 1),
        ("${7.5 % 2}", {}, 1.5),
        # arithmetic
        ("${a + b}", {"a": 1, "b": 2.5}, 3.5),
        ("${a + b}", {"a": Decimal("0.1"), "b": 0.2}, Decimal("0.3")),
        ("${a - 1}", {"a": None}, -1),
        ("${a * 2}", {"a": "21"}, 42),  # numeric text is coerced, never repeated
        ("${-a}", {"a": "3"}, -3),
        ("${null + null}", {}, 0),
        # equality
        ("${a == null}", {"a": None}, True),
        ("${null == a}", {"a": 0}, False),
        ("${a == 5}", {"a": "5"}, True),
        ("${a eq 5.0}", {"a": 5}, True),
        ("${a ne 'x'}", {"a": "x"}, False),
        ("${a == true}", {"a": "TRUE"}, True),
        ("${a == b}", {"a": [1], "b": [1]}, True),
        ("${d == '2024-05-01'}", {"d": date(2024, 5, 1)}, True),
        # relational
        ("${a < b}", {"a": "apple", "b": "banana"}, True),
        ("${a gt 3}", {"a": 3.5}, True),
        ("${a le 3}", {"a": None}, False),
        ("${a >= b}", {"a": None, "b": None}, True),
        ("${a < b}", {"a": date(2024, 1, 1), "b": date(2024, 1, 2)}, True),
        # logic and choice
        ("${a && b}", {"a": True, "b": "true"}, True),
        ("${a and b}", {"a": True, "b": None}, False),
        ("${a || b}", {"a": False, "b": "yes"}, False),  # EL: only 'true' is true
        ("${a ? 'yes' : 'no'}", {"a": False}, "no"),
        ("${a ? b ? 1 : 2 : 3}", {"a": True, "b": False}, 2),
        # properties
        ("${a.b.c}", {"a": {"b": {"c": 1}}}, 1),
        ("${a['b c']}", {"a": {"b c": 2}}, 2),
        ("${a.missing}", {"a": {}}, None),
        ("${a.b}", {"a": None}, None),  # null.b is null
        ("${a[1]}", {"a": [10, 20]}, 20),
        ("${a[5]}", {"a": [10, 20]}, None),  # out of range is null, as in JUEL
        ("${a['1']}", {"a": [10, 20]}, 20),
        ("${a._id}", {"a": {"_id": 7}}, 7),  # mapping keys are data
        ("${d.year}", {"d": date(2024, 5, 1)}, 2024),
        # composite text
        ("Dear ${name}!", {"name": "Ann"}, "Dear Ann!"),
        ("${a}-${b}", {"a": None, "b": True}, "-true"),
        ("n=${n}", {"n": 3}, "n=3"),
        ("\\${not} ${x}", {"x": 1}, "${not} 1"),
        # functions from extra/helpers
        ("${len(items) > 1}", {"items": [1, 2]}, True),
    ],
)
def test_semantics(sandbox: Sandbox, text: str, variables: dict[str, Any], expected: object) -> None:
    result = sandbox.evaluate(text, variables)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "variables"),
    [
        ("${false && missing.x > 1}", {}),
        ("${true || missing}", {}),
        ("${a != null && a.b > 1}", {"a": None}),
        ("${x ? 1 : missing}", {"x": True}),
    ],
)
def test_and_or_choice_short_circuit(sandbox: Sandbox, text: str, variables: dict[str, Any]) -> None:
    sandbox.evaluate(text, variables)  # 'missing' is never evaluated


@pytest.mark.parametrize(
    ("text", "variables", "message"),
    [
        ("${name + 1}", {"name": "x"}, "'\\+' adds numbers only, got str and int"),
        ("${1 + name}", {"name": "2"}, "'\\+' adds numbers only"),
        ("${'a' + 'b'}", {}, "composite expression"),
        ("${true + 1}", {}, "cannot use a bool value as a number"),
        ("${'abc' * 2}", {}, "cannot convert 'abc' to a number"),
        ("${a / 0}", {"a": 1}, "division by zero"),
        ("${a % 0}", {"a": 1}, "division by zero"),
        ("${a == 5}", {"a": "five"}, "cannot convert 'five' to a number"),
        ("${a < b}", {"a": date(2024, 1, 1), "b": "x"}, "cannot compare date with str"),
        ("${1 < 2 < 3}", {}, "bool value as a number"),
        ("${a && b}", {"a": True, "b": 1}, "cannot use a int value as a boolean"),
        ("${a.nope}", {"a": 1}, "property 'nope' not found on a int value"),
        ("${a.upper}", {"a": "x"}, "'upper' is a method"),
        ("${a[true]}", {"a": [1]}, "must be a number"),
        ("${a[x]}", {"a": {}, "x": []}, "map key"),
        ("${missing}", {}, "^unknown variable 'missing'$"),
        ("${a.b(1)}", {"a": {}}, "method 'b' not found on a dict value"),
    ],
)
def test_errors_are_clear(sandbox: Sandbox, text: str, variables: dict[str, Any], message: str) -> None:
    with pytest.raises(ExpressionError, match=message) as info:
        sandbox.evaluate(text, variables)
    assert not isinstance(info.value, SandboxViolation)
    assert info.value.source == text


# --- syntax -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${}", "column 3: empty expression"),
        ("${1 +}", "column 6: expected a value"),
        ("${a ? b}", "column 8: expected ':'"),
        ("${(a}", "column 5: expected '\\)'"),
        ("${a b}", "column 5: expected an operator"),
        ("${'abc}", "never closed"),
        ("Hi ${name", "column 4: '\\$\\{' is never closed"),
        ("${'a\\n'}", "invalid escape sequence"),
        ("${a = 1}", "EL 3.0"),
        ("${x -> x + 1}", "EL 3.0"),
        ("${a += 'b'}", "EL 3.0"),
        ("${a; b}", "EL 3.0"),
        ("${[1, 2]}", "collection literals"),
        ("${{1: 2}}", "column 3"),
        ("${a instanceof b}", "'instanceof' is not supported"),
        ("${a & b}", "expected an operator"),
        ("${a @ b}", "unexpected character '@'"),
        ("${(a)(1)}", "only a name or 'value.method' can be called"),
        ("${a.}", "expected a property or method name"),
        ("${class}", "identifier 'class' is not supported"),
        ("${empty}", "expected a value"),
        ("${a} and #{b}", "cannot mix"),
        ("plain", "not a JUEL expression"),
        ("${a\n + }", "line 2, column 4"),
    ],
)
def test_syntax_errors_name_the_column(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message) as info:
        juel.to_python_ast(text)
    assert not isinstance(info.value, SandboxViolation)
    assert info.value.source == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${a.__class__}", "property '__class__' is not allowed"),
        ("${a['__class__']}", "property '__class__' is not allowed"),
        ("${__import__('os')}", "name '__import__' is not allowed"),
        ("${a._private()}", "method '_private' is not allowed"),
    ],
)
def test_refused_at_translation(text: str, message: str) -> None:
    with pytest.raises(SandboxViolation, match=message):
        juel.to_python_ast(text)


@pytest.mark.parametrize(
    ("text", "variables", "message"),
    [
        ("${a.format()}", {"a": "{0}"}, "attribute 'format' is not allowed"),
        ("${d.today()}", {"d": date(2024, 1, 1)}, "attribute 'today' is not allowed"),
        ("${eval('1')}", {}, "name 'eval' is not allowed"),
        ("${g.gi_frame}", {"g": None}, None),  # null.x is null: no attribute is read
        ("${d.today}", {"d": date(2024, 1, 1)}, "attribute 'today' is not allowed"),
        ("${a._x}", {"a": 1}, "attribute '_x' is not allowed"),
        ("${a.mro}", {"a": 1}, "attribute 'mro' is not allowed"),
    ],
)
def test_refused_in_the_sandbox(sandbox: Sandbox, text: str, variables: dict[str, Any], message: str | None) -> None:
    if message is None:
        assert sandbox.evaluate(text, variables) is None
        return
    with pytest.raises(SandboxViolation, match=message):
        sandbox.evaluate(text, variables)


def test_juel_runtime_names_are_not_reachable_from_python(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxViolation, match="__juel_prop"):
        sandbox.evaluate("__juel_prop(a, 'b')", {"a": {"b": 1}})


def test_variable_named_like_a_helper_does_not_break_translation(sandbox: Sandbox) -> None:
    # The runtime helpers are '__' names, so no process variable can shadow them.
    assert sandbox.evaluate("${a.b}", {"a": {"b": 1}, "juel_prop": "junk", "prop": "junk"}) == 1


# --- runtime helpers directly ------------------------------------------------------------


def test_juel_prop_rules() -> None:
    class Bean:
        name = "n"

        def isActive(self) -> bool:
            return True

    assert juel.juel_prop(None, "x") is None
    assert juel.juel_prop({"x": 1}, "x") == 1
    assert juel.juel_prop((1, 2), 1) == 2
    assert juel.juel_prop([1, 2], -1) is None
    assert juel.juel_prop(Bean(), "name") == "n"
    assert juel.juel_prop(Bean(), "active") is True
    for refused in ("__class__", "_secret", "format", "now", "gi_frame", "f_globals", "mro"):
        with pytest.raises(SandboxViolation):
            juel.juel_prop(Bean(), refused)


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("year", True),
        ("timestamp", True),
        ("getVariable", True),
        ("_x", False),
        ("__class__", False),
        ("now", False),
        ("utcnow", False),
        ("fromtimestamp", False),
        ("format_map", False),
        ("tb_frame", False),
        ("cr_frame", False),
        ("co_code", False),
        ("func_globals", False),
        ("with_traceback", False),
    ],
)
def test_attribute_refusal(name: str, allowed: bool) -> None:
    assert (juel.attribute_refusal(name) is None) is allowed


def test_juel_str_and_concat() -> None:
    assert juel.juel_concat("a", None, True, False, 1, 2.5) == "atruefalse12.5"
    assert juel.juel_str(date(2024, 5, 1)) == "2024-05-01"


def test_runtime_mapping_matches_translation() -> None:
    names = {
        node.id
        for text in (
            "${a.b + -c * d / e % f - g}",
            "${empty a == b && a < b || a > b ? a <= b : a >= b}",
            "x${a}",
        )
        for node in ast.walk(juel.to_python_ast(text))
        if isinstance(node, ast.Name) and node.id.startswith("__")
    }
    assert names <= set(juel.RUNTIME)


def test_type_is_an_ordinary_juel_variable() -> None:
    from engine.sandbox import Sandbox

    assert Sandbox().evaluate("${type == 'x'}", {"type": "x"}) is True
