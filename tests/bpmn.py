"""Tiny builders for BPMN documents in tests (readable XML, no DI)."""

from __future__ import annotations

from itertools import pairwise

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs" targetNamespace="http://agglo.test">\n'
)


def document(
    body: str,
    pid: str = "p",
    *,
    name: str = "Test process",
    executable: bool = True,
    attrs: str = "",
    outside: str = "",
) -> bytes:
    """A definitions element with one process holding ``body``."""
    flag = "true" if executable else "false"
    return (
        HEADER + f'{outside}<bpmn:process id="{pid}" name="{name}" isExecutable="{flag}" {attrs}>\n{body}\n'
        "</bpmn:process>\n</bpmn:definitions>\n"
    ).encode("utf-8")


def flows(*ids: str, prefix: str = "f") -> str:
    """Sequence flows a->b->c ... with ids f_a_b."""
    return "\n".join(
        f'<bpmn:sequenceFlow id="{prefix}_{a}_{b}" sourceRef="{a}" targetRef="{b}"/>' for a, b in pairwise(ids)
    )


def cond_flow(source: str, target: str, condition: str, ident: str | None = None) -> str:
    ident = ident or f"f_{source}_{target}"
    return (
        f'<bpmn:sequenceFlow id="{ident}" sourceRef="{source}" targetRef="{target}">'
        f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"><![CDATA[{condition}]]>'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>"
    )


def user_task(ident: str, name: str | None = None, attrs: str = "", inner: str = "") -> str:
    label = f' name="{name}"' if name else ""
    return f'<bpmn:userTask id="{ident}"{label} {attrs}>{inner}</bpmn:userTask>'


def sequential(n: int, pid: str = "seq", attrs: str = 'camunda:candidateGroups="coordinator"') -> bytes:
    """start -> t1 -> ... -> tn -> end, every task for ``attrs``."""
    tasks = [f"t{i}" for i in range(1, n + 1)]
    body = '<bpmn:startEvent id="start"/>\n' + "\n".join(user_task(t, f"Task {t}", attrs) for t in tasks)
    body += '\n<bpmn:endEvent id="end"/>\n' + flows("start", *tasks, "end")
    return document(body, pid, name=f"{n} tasks in sequence")
