"""Service tasks: what does the work behind ``camunda:class``, ``delegateExpression``,
``expression`` and ``type="external" topic``.

Handlers are registered by key; a deployment whose service task resolves to no handler is
refused (unless its expression is one we can evaluate ourselves, such as
``${execution.setVariable('x', 1)}``). Handlers run inside the command's transaction, so what
they write (e.g. a membership) commits or rolls back with the instance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lxml import etree

from .model import camunda_attr, local_name

if TYPE_CHECKING:
    from .directory import Actor
    from .ports import Tx


@dataclass(frozen=True)
class ServiceImplementation:
    """How a service task says its work is done."""

    kind: str  # "class", "delegateExpression", "expression", "external", "connector", "none"
    value: str  # the class name, expression or topic
    result_variable: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.value}"

    def describe(self) -> str:
        attr = {"external": "camunda:topic"}.get(self.kind, f"camunda:{self.kind}")
        return f"{attr}={self.value!r}"


def implementation_of(node: etree._Element) -> ServiceImplementation:
    """Read a service task's implementation attributes."""
    result = camunda_attr(node, "resultVariable")
    for attr, kind in (("class", "class"), ("delegateExpression", "delegateExpression"), ("expression", "expression")):
        value = camunda_attr(node, attr)
        if value is not None:
            return ServiceImplementation(kind, value.strip(), result)
    if (camunda_attr(node, "type") or "").strip() == "external":
        return ServiceImplementation("external", (camunda_attr(node, "topic") or "").strip(), result)
    for ext in node.iterchildren("{http://www.omg.org/spec/BPMN/20100524/MODEL}extensionElements"):
        for child in ext.iter():
            if local_name(child) == "connector":
                return ServiceImplementation("connector", "connector", result)
    return ServiceImplementation("none", "", result)


@dataclass(frozen=True)
class ServiceContext:
    """What a handler gets: the instance's variables (a copy) and the command's transaction."""

    instance_id: str
    process_key: str
    business_key: str | None
    organisation: str | None  # the instance's organisation (e.g. the applicant МОУО)
    element_id: str
    implementation: ServiceImplementation
    variables: Mapping[str, Any]
    now: datetime
    actor: Actor
    tx: Tx


ServiceHandler = Callable[[ServiceContext], Mapping[str, Any] | None]


class ServiceRegistry:
    """Handlers by key: ``external:<topic>``, ``class:<name>``, ``delegateExpression:<expr>``, ``expression:<expr>``."""

    def __init__(self, fallback: ServiceHandler | None = None) -> None:
        self._handlers: dict[str, ServiceHandler] = {}
        self.fallback = fallback

    def register(self, key: str, handler: ServiceHandler) -> None:
        self._handlers[key] = handler

    def topic(self, topic: str) -> Callable[[ServiceHandler], ServiceHandler]:
        """Decorator: register a handler for ``camunda:type="external" camunda:topic=...``."""

        def decorate(handler: ServiceHandler) -> ServiceHandler:
            self.register(f"external:{topic}", handler)
            return handler

        return decorate

    def resolve(self, implementation: ServiceImplementation) -> ServiceHandler | None:
        return self._handlers.get(implementation.key) or self.fallback

    def keys(self) -> list[str]:
        return sorted(self._handlers)
