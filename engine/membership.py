"""The membership registry of the agglomeration (REG 5.6).

"По результатам заключения проектного договора МОУО получает статус проектной площадки и
становится участником образовательной агломерации." A registered project contract makes the
МОУО a project site and a member for the years of the contract's term. The contract process
ends with a service task ``camunda:type="external" camunda:topic="membership.grant"`` whose
handler is :func:`grant_membership`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from .directory import Membership
from .errors import BadInput
from .records import AuditEntry
from .services import ServiceContext, ServiceRegistry

GRANT_TOPIC = "membership.grant"


def _as_date(value: Any, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError as exc:
            raise BadInput(f"variable {name!r} is not a date: {value!r}", field=name) from exc
    raise BadInput(f"variable {name!r} is missing or not a date", field=name)


def grant_membership(ctx: ServiceContext) -> Mapping[str, Any]:
    """Make the contract's МОУО a member for the years of the contract's term.

    Reads ``contract_number``, ``contract_date`` (the registration date) and ``term_until``
    (the end of the contract's term; defaults to the end of the registration year).
    """
    organisation = ctx.organisation
    if not organisation:
        raise BadInput("the contract instance has no applicant organisation")
    number = ctx.variables.get("contract_number")
    if not isinstance(number, str) or not number.strip():
        raise BadInput("variable 'contract_number' is missing", field="contract_number")
    registered = _as_date(ctx.variables.get("contract_date"), "contract_date")
    until_raw = ctx.variables.get("term_until")
    until = _as_date(until_raw, "term_until") if until_raw else date(registered.year, 12, 31)
    if until < registered:
        raise BadInput("the contract's term ends before its registration", field="term_until")
    membership = Membership(
        organisation=organisation,
        since_year=registered.year,
        until_year=until.year,
        source="contract",
        contract_number=number.strip(),
        contract_date=registered,
        instance_id=ctx.instance_id,
        granted_at=ctx.now,
    )
    created = ctx.tx.add_membership(membership)
    if created:
        ctx.tx.append_audit(
            [
                AuditEntry(
                    ctx.now,
                    ctx.actor.login,
                    ctx.actor.organisation,
                    "membership.granted",
                    instance_id=ctx.instance_id,
                    element_id=ctx.element_id,
                    details={
                        "organisation": organisation,
                        "since_year": membership.since_year,
                        "until_year": membership.until_year,
                        "contract_number": membership.contract_number,
                        "contract_date": registered.isoformat(),
                    },
                )
            ]
        )
    return {"membership_years": list(range(registered.year, until.year + 1)), "membership_new": created}


def register(registry: ServiceRegistry) -> None:
    registry.register(f"external:{GRANT_TOPIC}", grant_membership)
