"""The one error hierarchy of the product.

Every error raised on purpose derives from :class:`AggloError`. Each class carries the
fields a caller needs to explain the failure; none of them knows about HTTP. The web layer
maps classes to status codes in exactly one place, the CLI prints ``str(error)``.

Library errors (SpiffWorkflow, lxml, jsonschema, SQLAlchemy) are translated at the adapter
that calls the library, with ``raise ... from``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any


class AggloError(Exception):
    """Root of every error the product raises on purpose.

    ``code`` is a stable machine-readable identifier (used in API problem documents and
    ``--json`` CLI output); ``str()`` is a one-line human explanation.
    """

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, Any]:
        """Structured fields beyond the message, for machine consumers."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details()}


@dataclass(frozen=True)
class Problem:
    """One reason a definition was refused, located as precisely as the source allows."""

    reason: str
    file: str | None = None
    line: int | None = None
    element_id: str | None = None

    def __str__(self) -> str:
        where = self.file or "<bpmn>"
        if self.line:
            where += f":{self.line}"
        if self.element_id:
            where += f" [{self.element_id}]"
        return f"{where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "element_id": self.element_id, "reason": self.reason}


class DefinitionInvalid(AggloError):
    """A process definition (or any XML document) was refused; nothing was stored.

    ``problems`` lists every reason found, each naming the file, line and element id.
    ``file``, ``line`` and ``element_id`` repeat the first problem's location.
    """

    code = "definition_invalid"

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("DefinitionInvalid needs at least one problem")
        self.problems = list(problems)
        first = self.problems[0]
        self.file = first.file
        self.line = first.line
        self.element_id = first.element_id
        extra = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{first}{extra}")

    def details(self) -> dict[str, Any]:
        return {"problems": [p.to_dict() for p in self.problems]}


class UnsafeXml(DefinitionInvalid):
    """An XML document used a DTD, entities, external references or was too large."""

    code = "unsafe_xml"


class NotFound(AggloError):
    """The object does not exist, or the actor may not know that it exists."""

    code = "not_found"

    def __init__(self, kind: str, ident: object) -> None:
        self.kind = kind
        self.ident = str(ident)
        super().__init__(f"{kind} {self.ident!r} not found")

    def details(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.ident}


class NotPermitted(AggloError):
    """The actor's role or organisation does not allow this action on this object."""

    code = "not_permitted"

    def __init__(self, actor: str, action: str, target: str, reason: str = "") -> None:
        self.actor = actor
        self.action = action
        self.target = target
        self.reason = reason
        tail = f": {reason}" if reason else ""
        super().__init__(f"{actor} may not {action} {target}{tail}")

    def details(self) -> dict[str, Any]:
        return {"actor": self.actor, "action": self.action, "target": self.target, "reason": self.reason}


class ConcurrencyConflict(AggloError):
    """Someone else changed the object first; nothing of this command was written.

    Re-read and retry if the action still makes sense.
    """

    code = "concurrency_conflict"

    def __init__(self, target: str, reason: str = "changed by another command") -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"{target}: {reason}")

    def details(self) -> dict[str, Any]:
        return {"target": self.target, "reason": self.reason}


class InvalidState(AggloError):
    """The action is not possible in the object's current state (e.g. cancel a completed instance)."""

    code = "invalid_state"


class BadInput(AggloError):
    """An argument is malformed: not JSON, the wrong type, an unknown option."""

    code = "bad_input"

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)

    def details(self) -> dict[str, Any]:
        return {"field": self.field} if self.field else {}


@dataclass(frozen=True)
class FieldError:
    """One bad field of submitted form data; ``field`` is a dotted path ('' for the whole form)."""

    field: str
    code: str
    message: str
    extra: dict[str, Any] = dataclass_field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "code": self.code, "message": self.message, **self.extra}


class FormInvalid(AggloError):
    """Submitted data does not satisfy the task's form; ``errors`` lists every bad field."""

    code = "form_invalid"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        listed = "; ".join(f"{e.field or '(form)'}: {e.message}" for e in self.errors)
        super().__init__(f"form data rejected: {listed}")

    def details(self) -> dict[str, Any]:
        return {"errors": [e.to_dict() for e in self.errors]}


class ExpressionError(AggloError):
    """A script or expression failed: it raised, referenced an unknown name, or returned junk."""

    code = "expression_error"

    def __init__(self, message: str, source: str | None = None, line: int | None = None) -> None:
        self.source = source
        self.line = line
        super().__init__(message)

    def details(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line}


class SandboxViolation(ExpressionError):
    """A script or expression used something the restricted evaluator refuses
    (imports, dunder attributes, file access, introspection, oversized values)."""

    code = "sandbox_violation"


class EvaluationTimeout(ExpressionError):
    """A script or expression ran longer than its CPU time limit and was stopped."""

    code = "evaluation_timeout"


class StepFailed(AggloError):
    """An automatic step of an instance (script, service call, gateway condition, timer) failed.

    Raised to the caller when the step ran in the foreground (nothing is written); recorded
    as an incident on the instance when it ran in the background.
    """

    code = "step_failed"

    def __init__(self, element_id: str, reason: str, instance_id: str | None = None) -> None:
        self.element_id = element_id
        self.reason = reason
        self.instance_id = instance_id
        super().__init__(f"step {element_id!r} failed: {reason}")

    def details(self) -> dict[str, Any]:
        return {"element_id": self.element_id, "reason": self.reason, "instance_id": self.instance_id}


class NotAuthenticated(AggloError):
    """No valid credentials: a wrong login or password, an unknown or revoked token, an ended session.

    The message never says which part was wrong.
    """

    code = "not_authenticated"

    def __init__(self, message: str = "login or password is wrong") -> None:
        super().__init__(message)


class TooManyAttempts(AggloError):
    """Too many failed logins for this account or from this address; try again later."""

    code = "too_many_attempts"

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed login attempts; try again in {retry_after} s")

    def details(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}


class TooLarge(BadInput):
    """An upload or a request body is over its size limit."""

    code = "too_large"

    def __init__(self, what: str, size: int, limit: int, field: str | None = None) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes", field=field)

    def details(self) -> dict[str, Any]:
        return {**super().details(), "size": self.size, "limit": self.limit}


class UnsupportedType(BadInput):
    """An uploaded file's type is not one we accept, or its content does not match its name."""

    code = "unsupported_type"


class AttachmentCorrupt(AggloError):
    """A stored document's content no longer matches its SHA-256; it is not served."""

    code = "attachment_corrupt"


class StaleVersion(ConcurrencyConflict):
    """The caller acted on a version of the object that is no longer current (HTTP If-Match)."""

    code = "stale_version"

    def __init__(self, target: str, expected: int, current: int) -> None:
        self.expected = expected
        self.current = current
        super().__init__(target, f"you saw version {expected}, it is now at version {current}; reload and retry")

    def details(self) -> dict[str, Any]:
        return {**super().details(), "expected_version": self.expected, "current_version": self.current}


class InvalidRequest(BadInput):
    """A request's parameters or body do not match its schema; ``errors`` lists every bad field."""

    code = "invalid_request"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        listed = "; ".join(f"{e.field or '(body)'}: {e.message}" for e in self.errors)
        super().__init__(f"request rejected: {listed}", field=self.errors[0].field if self.errors else None)

    def details(self) -> dict[str, Any]:
        return {"errors": [e.to_dict() for e in self.errors]}
