"""Deploy-time validation: refusals name the file, the line, the element and the reason, and store nothing."""

from __future__ import annotations

import pytest

from engine.engine import Engine
from engine.errors import DefinitionInvalid, UnsafeXml
from engine.services import ServiceRegistry
from tests.bpmn import cond_flow, document, flows, user_task
from tests.conftest import ADMIN

OK_TAIL = user_task("t", "T") + '<bpmn:endEvent id="end"/>'


def refusal(engine: Engine, source: bytes, filename: str = "bad.bpmn") -> DefinitionInvalid:
    with pytest.raises(DefinitionInvalid) as caught:
        engine.deploy(source, filename, ADMIN)
    assert not engine.definitions(), "a refused deployment stores nothing"
    for problem in caught.value.problems:
        assert problem.file == filename
    return caught.value


def line_of(source: bytes, needle: str) -> int:
    text = source.decode()
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(
    ("body", "element_id", "reason"),
    [
        ('<bpmn:startEvent id="Start"/>' + OK_TAIL + flows("Start", "t", "end"), "Start", "collides with a name"),
        (
            '<bpmn:startEvent id="s"/>' + user_task("End") + '<bpmn:endEvent id="e"/>' + flows("s", "End", "e"),
            "End",
            "collides with a name",
        ),
        (
            '<bpmn:startEvent id="s"/>'
            + OK_TAIL
            + '<bpmn:sequenceFlow sourceRef="s" targetRef="t"/>'
            + flows("t", "end"),
            "s",
            "has no id",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:scriptTask id="groovy" scriptFormat="groovy"><bpmn:script>x=1</bpmn:script>'
            '</bpmn:scriptTask><bpmn:endEvent id="e"/>' + flows("s", "groovy", "e"),
            "groovy",
            "script language 'groovy'",
        ),
        (
            '<bpmn:startEvent id="s"/>'
            + user_task("t")
            + user_task("a")
            + user_task("b")
            + '<bpmn:endEvent id="e"/>'
            + flows("s", "t", "a", "e")
            + '<bpmn:sequenceFlow id="x" sourceRef="t" targetRef="b"/>'
            + '<bpmn:sequenceFlow id="y" sourceRef="b" targetRef="e"/>',
            "t",
            "2 unconditional outgoing flows",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:intermediateCatchEvent id="m">'
            '<bpmn:messageEventDefinition messageRef="nope"/>'
            '</bpmn:intermediateCatchEvent><bpmn:endEvent id="e"/>' + flows("s", "m", "e"),
            "m",
            "messageRef 'nope'",
        ),
        (
            '<bpmn:startEvent id="s"/>' + user_task("t") + '<bpmn:boundaryEvent id="err" attachedToRef="t">'
            '<bpmn:errorEventDefinition errorRef="E404"/></bpmn:boundaryEvent><bpmn:endEvent id="e"/>'
            '<bpmn:endEvent id="e2"/>' + flows("s", "t", "e") + flows("err", "e2", prefix="g"),
            "err",
            "errorRef 'E404'",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:exclusiveGateway id="gw"/><bpmn:endEvent id="a"/><bpmn:endEvent id="b"/>'
            + flows("s", "gw")
            + cond_flow("gw", "a", "${x}")
            + '<bpmn:sequenceFlow id="plain" sourceRef="gw" targetRef="b"/>',
            "plain",
            "has no condition and is not the default",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>'
            "<bpmn:timeDuration>"
            'PT5X</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent><bpmn:endEvent id="e"/>'
            + flows("s", "wait", "e"),
            "wait",
            "timeDuration 'PT5X'",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:businessRuleTask id="dmn"/><bpmn:endEvent id="e"/>'
            + flows("s", "dmn", "e"),
            "dmn",
            "DMN business rule tasks are not supported",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:serviceTask id="java" camunda:class="org.example.Delegate"/>'
            '<bpmn:endEvent id="e"/>' + flows("s", "java", "e"),
            "java",
            "no handler is registered for camunda:class",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:serviceTask id="bare"/><bpmn:endEvent id="e"/>' + flows("s", "bare", "e"),
            "bare",
            "service task has no implementation",
        ),
        (
            '<bpmn:startEvent id="s"><bpmn:extensionElements><camunda:executionListener class="x.Y" event="start"/>'
            '</bpmn:extensionElements></bpmn:startEvent><bpmn:endEvent id="e"/>' + flows("s", "e"),
            "s",
            "execution listeners are not supported",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:exclusiveGateway id="gw" default="d"/><bpmn:endEvent id="a"/>'
            '<bpmn:endEvent id="b"/>'
            + flows("s", "gw")
            + cond_flow("gw", "a", "${bean.check(x)}", "java")
            + '<bpmn:sequenceFlow id="d" sourceRef="gw" targetRef="b"/>',
            "java",
            "calls bean.check(), which is a Java method",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:exclusiveGateway id="gw" default="d"/><bpmn:endEvent id="a"/>'
            '<bpmn:endEvent id="b"/>'
            + flows("s", "gw")
            + cond_flow("gw", "a", "x.__class__", "dunder")
            + '<bpmn:sequenceFlow id="d" sourceRef="gw" targetRef="b"/>',
            "dunder",
            "condition 'x.__class__'",
        ),
        (
            '<bpmn:startEvent id="s"/>'
            + user_task(
                "f",
                "F",
                "",
                "<bpmn:extensionElements><camunda:formData>"
                '<camunda:formField id="a" type="color"/></camunda:formData></bpmn:extensionElements>',
            )
            + '<bpmn:endEvent id="e"/>'
            + flows("s", "f", "e"),
            "f",
            "has type 'color'",
        ),
        (
            '<bpmn:startEvent id="s"/>'
            + user_task(
                "f",
                "F",
                "",
                "<bpmn:extensionElements><camunda:formData>"
                '<camunda:formField id="a" type="string"><camunda:validation><camunda:constraint name="validator" '
                'config="com.x.V"/></camunda:validation></camunda:formField></camunda:formData></bpmn:extensionElements>',
            )
            + '<bpmn:endEvent id="e"/>'
            + flows("s", "f", "e"),
            "f",
            "constraint 'validator' is not supported",
        ),
        (
            '<bpmn:startEvent id="s"/>'
            + user_task("f", "F", 'camunda:formKey="schema:missing.schema.json"')
            + '<bpmn:endEvent id="e"/>'
            + flows("s", "f", "e"),
            "f",
            "form schema 'missing.schema.json' was not supplied",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:callActivity id="call" calledElement="elsewhere"/><bpmn:endEvent id="e"/>'
            + flows("s", "call", "e"),
            "call",
            "called process 'elsewhere' is neither in this file nor deployed",
        ),
        (
            '<bpmn:startEvent id="s"/>'
            + user_task("t", "T", 'camunda:dueDate="next tuesday"')
            + '<bpmn:endEvent id="e"/>'
            + flows("s", "t", "e"),
            "t",
            "camunda:dueDate 'next tuesday'",
        ),
    ],
)
def test_refusals_name_file_line_element_and_reason(engine: Engine, body: str, element_id: str, reason: str) -> None:
    source = document(body, "bad", outside='<bpmn:error id="Err" errorCode="1"/>')
    error = refusal(engine, source)
    matching = [p for p in error.problems if p.element_id == element_id and reason in p.reason]
    assert matching, [str(p) for p in error.problems]
    assert matching[0].line is not None and matching[0].line >= 1


def test_line_numbers_point_at_the_element(engine: Engine) -> None:
    source = document(
        '<bpmn:startEvent id="s"/>\n<bpmn:scriptTask id="js" scriptFormat="javascript">'
        '<bpmn:script>1</bpmn:script></bpmn:scriptTask>\n<bpmn:endEvent id="e"/>' + flows("s", "js", "e")
    )
    error = refusal(engine, source)
    assert error.line == line_of(source, '<bpmn:scriptTask id="js"')
    assert str(error).startswith(f"bad.bpmn:{error.line} [js]: script language 'javascript'")


def test_every_problem_is_reported_at_once(engine: Engine) -> None:
    body = (
        '<bpmn:startEvent id="Start"/><bpmn:scriptTask id="g" scriptFormat="groovy"><bpmn:script>1</bpmn:script>'
        '</bpmn:scriptTask><bpmn:businessRuleTask id="d"/><bpmn:endEvent id="End"/>' + flows("Start", "g", "d", "End")
    )
    error = refusal(engine, document(body))
    assert {p.element_id for p in error.problems} >= {"Start", "g", "d", "End"}
    assert "and 4 more" in str(error) or "more)" in str(error)


def test_non_executable_processes_are_refused(engine: Engine) -> None:
    error = refusal(engine, document('<bpmn:startEvent id="s"/>', "draft", executable=False))
    assert error.element_id == "draft" and "not executable" in error.problems[0].reason


def test_not_bpmn_is_refused(engine: Engine) -> None:
    error = refusal(engine, b'<?xml version="1.0"?><html><body/></html>', "page.bpmn")
    assert "not a BPMN 2.0 document" in str(error)


def test_xxe_at_deploy_is_refused_and_nothing_is_stored(engine: Engine) -> None:
    evil = (
        b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + document('<bpmn:startEvent id="s"/><bpmn:endEvent id="e"/>' + flows("s", "e")).split(b"\n", 1)[1]
    )
    with pytest.raises(UnsafeXml) as caught:
        engine.deploy(evil, "xxe.bpmn", ADMIN)
    assert caught.value.file == "xxe.bpmn" and caught.value.line == 2
    assert not engine.definitions()


def test_registered_handlers_make_service_tasks_deployable(engine: Engine, services: ServiceRegistry) -> None:
    services.register("class:org.example.Delegate", lambda ctx: {"done": True})
    body = (
        '<bpmn:startEvent id="s"/><bpmn:serviceTask id="java" camunda:class="org.example.Delegate"/>'
        '<bpmn:endEvent id="e"/>' + flows("s", "java", "e")
    )
    engine.deploy(document(body, "svc"), "svc.bpmn", ADMIN)
    view = engine.start("svc", ADMIN)
    assert view.variables["done"] is True


def test_expression_service_tasks_run_without_a_handler(engine: Engine) -> None:
    body = (
        '<bpmn:startEvent id="s"/><bpmn:serviceTask id="set" '
        "camunda:expression=\"${execution.setVariable('foo', 'bar')}\"/><bpmn:endEvent id=\"e\"/>"
        + flows("s", "set", "e")
    )
    engine.deploy(document(body, "expr"), "expr.bpmn", ADMIN)
    assert engine.start("expr", ADMIN).variables["foo"] == "bar"


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("().__class__.__base__.__subclasses__()", "correlation messagePath"),
        ("__import__('os').system('id')", "correlation messagePath"),
    ],
)
def test_correlation_expressions_are_checked_at_deploy(engine: Engine, expression: str, reason: str) -> None:
    """A correlation key's expression runs in the sandbox when a message arrives: a bad one is
    refused at deploy, naming the correlation property, never first met at run time."""
    outside = (
        '<bpmn:message id="m" name="contract.registered"/>'
        '<bpmn:correlationProperty id="cp_number" name="number">'
        '<bpmn:correlationPropertyRetrievalExpression messageRef="m">'
        f"<bpmn:messagePath>{expression}</bpmn:messagePath>"
        "</bpmn:correlationPropertyRetrievalExpression></bpmn:correlationProperty>"
    )
    body = (
        '<bpmn:startEvent id="s"/>'
        '<bpmn:intermediateCatchEvent id="wait"><bpmn:messageEventDefinition messageRef="m"/>'
        "</bpmn:intermediateCatchEvent>" + OK_TAIL + flows("s", "wait", "t", "end")
    )
    source = document(body, outside=outside)
    problems = refusal(engine, source).problems
    [problem] = [p for p in problems if reason in p.reason]
    assert problem.element_id == "cp_number" and problem.line == line_of(
        source, "<bpmn:correlationPropertyRetrievalExpression"
    )


def test_a_plain_correlation_path_deploys(engine: Engine) -> None:
    outside = (
        '<bpmn:message id="m" name="contract.registered"/>'
        '<bpmn:correlationProperty id="cp_number" name="number">'
        '<bpmn:correlationPropertyRetrievalExpression messageRef="m">'
        "<bpmn:messagePath>contract_number</bpmn:messagePath>"
        "</bpmn:correlationPropertyRetrievalExpression></bpmn:correlationProperty>"
    )
    body = (
        '<bpmn:startEvent id="s"/>'
        '<bpmn:intermediateCatchEvent id="wait"><bpmn:messageEventDefinition messageRef="m"/>'
        "</bpmn:intermediateCatchEvent>" + OK_TAIL + flows("s", "wait", "t", "end")
    )
    assert [d.key for d in engine.deploy(document(body, outside=outside), "ok.bpmn", ADMIN).definitions] == ["p"]
