"""BPMN messages from outside: correlate to the instance that waits, buffer when none does yet.

A message has a name (the BPMN message's ``name``, e.g. ``contract.registered``), correlation
keys and variables. Correlation keys pick the instance: ``business_key`` and ``instance_id``
match the instance itself, ``process_key`` its process, any other key a process variable of
that name (compared as text). Exactly one waiting instance must match; several are an error
naming how many (add keys). The message's variables become process variables and the instance
runs on (an interrupting boundary message event ends the task it sits on).

When no instance waits yet, the message is kept (``buffered``) until its time to live ends,
and the worker tries it again each tick — as Camunda 8 and SpiffArena buffer messages. When
nothing waits but a process starts on that message, it starts one.

Every message carries an idempotency key (the inbound webhook's ``<source>:<webhook-id>``,
or the API caller's key); the same key a second time returns the first outcome and moves
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import access
from .directory import SYSTEM_ACTOR, Actor, Role
from .errors import AggloError, BadInput, InvalidState, NotPermitted
from .records import AuditEntry, InboundMessage, InstanceRecord, InstanceStatus, MessageStatus, digest

if TYPE_CHECKING:
    from .definitions import CompiledDefinition
    from .engine import Engine

DEFAULT_TTL = timedelta(days=7)
MAX_TTL = timedelta(days=90)
SENDER_ROLES = frozenset({Role.ADMIN, Role.COORDINATOR, Role.MINISTRY})
INSTANCE_KEYS = ("business_key", "instance_id", "process_key")
CANDIDATE_LIMIT = 500


@dataclass(frozen=True)
class Outcome:
    """What a message did: ``correlated`` (moved ``instance_id``), ``started``, ``buffered``, or
    ``duplicate`` (this key was seen before; ``first`` is what it did then)."""

    status: str
    message: InboundMessage
    instance_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message_id": self.message.id,
            "name": self.message.name,
            "instance_id": self.instance_id or self.message.instance_id,
            "buffered_until": self.message.expires_at.isoformat()
            if self.message.status == MessageStatus.BUFFERED
            else None,
        }


def _check(name: str, correlation: Mapping[str, Any], variables: Mapping[str, Any]) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise BadInput("a message needs a name of 1-200 characters", field="name")
    if not isinstance(correlation, Mapping):
        raise BadInput("correlation must be an object of keys and values", field="correlation")
    for key, value in correlation.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise BadInput(f"correlation key {key!r} is not a name", field="correlation")
        if not isinstance(value, str | int | float | bool) or isinstance(value, bool):
            raise BadInput(f"correlation value of {key!r} must be a string or a number", field=f"correlation.{key}")
    if not isinstance(variables, Mapping):
        raise BadInput("variables must be an object", field="variables")
    for key in variables:
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise BadInput(f"variable name {key!r} is not allowed", field=f"variables.{key}")


def _matches(instance: InstanceRecord, variables: Mapping[str, Any], correlation: Mapping[str, Any]) -> bool:
    for key, expected in correlation.items():
        if key == "business_key":
            actual: Any = instance.business_key
        elif key == "instance_id":
            actual = instance.id
        elif key == "process_key":
            actual = instance.process_key
        else:
            actual = variables.get(key)
        if actual is None or str(actual) != str(expected):
            return False
    return True


def receive(
    engine: Engine,
    actor: Actor,
    *,
    name: str,
    correlation: Mapping[str, Any],
    variables: Mapping[str, Any],
    key: str,
    source: str,
    ttl: timedelta | None = None,
) -> Outcome:
    """Accept a message: correlate it now, start a process on it, or buffer it."""
    if not (actor.roles & SENDER_ROLES):
        raise NotPermitted(actor.login, "send", "messages", "the coordinator, the Ministry and administrators do")
    _check(name, correlation, variables)
    if not key or len(key) > 300:
        raise BadInput("a message needs an idempotency key of 1-300 characters", field="key")
    ttl = ttl if ttl is not None else DEFAULT_TTL
    if ttl <= timedelta(0) or ttl > MAX_TTL:
        raise BadInput(f"time to live must be between 1 second and {MAX_TTL.days} days", field="ttl_seconds")
    now = engine.clock.now()
    message = InboundMessage(
        id=engine._new_id(),
        key=key,
        source=source,
        name=name.strip(),
        correlation=dict(correlation),
        variables=dict(variables),
        received_at=now,
        expires_at=now + ttl,
    )
    with engine.store.transaction() as tx:
        first = tx.get_message_by_key(key)
    if first is not None:
        return Outcome("duplicate", first, first.instance_id)
    # A refusal (several instances match, or the sender may not start the process the message
    # starts) keeps nothing: a message the sender was told is refused must not be a "duplicate"
    # of its retry, nor move an instance later from the buffer.
    candidates = _waiting(engine, message)
    _check_unambiguous(message, candidates)
    if not candidates:
        _check_may_start(engine, actor, message)
    with engine.store.transaction() as tx:
        first = tx.get_message_by_key(key)
        if first is not None:
            return Outcome("duplicate", first, first.instance_id)
        tx.insert_message(message)
        tx.append_audit(
            [
                AuditEntry(
                    now,
                    actor.login,
                    actor.organisation,
                    "message.received",
                    details={
                        "message": message.id,
                        "name": message.name,
                        "source": source,
                        "key": key,
                        "correlation": dict(correlation),
                    },
                    data_digest=digest(dict(variables)),
                )
            ]
        )
    return deliver(engine, message, actor, candidates)


def _check_unambiguous(message: InboundMessage, candidates: list[InstanceRecord]) -> None:
    if len(candidates) > 1:
        ids = ", ".join(sorted(i.id for i in candidates)[:5])
        raise InvalidState(
            f"{len(candidates)} instances wait for message {message.name!r} with these keys ({ids}…); "
            "add correlation keys so that exactly one matches"
        )


def _starters(engine: Engine, name: str) -> list[CompiledDefinition]:
    """The latest definitions whose start event catches message ``name`` (compiled)."""
    compiled = [engine.definition(d.id) for d in engine.definitions()]
    return [c for c in compiled if name in c.model.start_messages]


def _check_may_start(engine: Engine, actor: Actor, message: InboundMessage) -> None:
    if message.correlation:
        return
    for compiled in _starters(engine, message.name):
        model = compiled.model
        if not access.can_start(actor, model.candidate_starter_groups, model.candidate_starter_users):
            raise NotPermitted(
                actor.login, "start", f"process {compiled.record.key!r}", "your role may not start this process"
            )


def deliver(
    engine: Engine,
    message: InboundMessage,
    actor: Actor = SYSTEM_ACTOR,
    candidates: list[InstanceRecord] | None = None,
) -> Outcome:
    """Try a stored message: correlate it, or start a process, or leave it buffered."""
    if candidates is None:
        candidates = _waiting(engine, message)
    _check_unambiguous(message, candidates)
    now = engine.clock.now()
    if candidates:
        instance = candidates[0]
        view = engine.catch_message(instance.id, message, actor)
        if view is not None:
            return Outcome(
                "correlated",
                replace(message, status=MessageStatus.CORRELATED, instance_id=instance.id, correlated_at=now),
                instance.id,
            )
    if not message.correlation and _starters(engine, message.name):
        views = engine.start_by_message(message.name, actor, message.variables)
        started = views[0].instance.id if views else None
        with engine.store.transaction() as tx:
            tx.update_message(message.id, status=MessageStatus.CORRELATED, instance_id=started, correlated_at=now)
        return Outcome("started", replace(message, status=MessageStatus.CORRELATED, instance_id=started), started)
    return Outcome("buffered", message)


def _waiting(engine: Engine, message: InboundMessage) -> list[InstanceRecord]:
    """Running instances that wait for this message now and match its correlation keys."""
    with engine.store.transaction() as tx:
        waiting = tx.instances_waiting_for(message.name, CANDIDATE_LIMIT)
    found = []
    for instance in waiting:
        if instance.status not in (InstanceStatus.RUNNING, InstanceStatus.WAITING):
            continue
        if not message.correlation or any(k not in INSTANCE_KEYS for k in message.correlation):
            variables = engine.instance(instance.id, SYSTEM_ACTOR).variables
        else:
            variables = {}
        if _matches(instance, variables, message.correlation):
            found.append(instance)
    return found


def retry_buffered(engine: Engine, limit: int = 200) -> tuple[int, int]:
    """The worker's sweep: correlate buffered messages whose instance now waits; expire old ones.

    Returns (correlated, expired)."""
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        buffered = tx.buffered_messages(limit)
    correlated = expired = 0
    for message in buffered:
        if message.expires_at <= now:
            with engine.store.transaction() as tx:
                tx.update_message(message.id, status=MessageStatus.EXPIRED)
                tx.append_audit(
                    [
                        AuditEntry(
                            now,
                            SYSTEM_ACTOR.login,
                            None,
                            "message.expired",
                            details={"message": message.id, "name": message.name, "key": message.key},
                        )
                    ]
                )
            expired += 1
            continue
        try:
            outcome = deliver(engine, message)
        except AggloError:
            # Ambiguous for now, or refused (the process it would start may not be started by the
            # sweep): it stays buffered until it expires, and the sweep goes on to the next one.
            continue
        if outcome.status in ("correlated", "started"):
            correlated += 1
    return correlated, expired
