"""Who is who: organisations, users, their roles, and the agglomeration's membership registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class Role(StrEnum):
    """What a user does in the procedures (REG 5.1-5.10, DAY 2.1-2.13)."""

    MINISTRY = "ministry"  # the Organizer: approves, issues orders
    COORDINATOR = "coordinator"  # РЦОКИО: drafts, signs contracts, runs the roadmap
    MOUO = "mouo"  # a municipal education authority
    EXPERT = "expert"  # reviews materials
    ADMIN = "admin"  # operates the system


class OrgKind(StrEnum):
    MINISTRY = "ministry"
    COORDINATOR = "coordinator"
    MOUO = "mouo"
    OTHER = "other"


MINISTRY_ORG = "minobr"
COORDINATOR_ORG = "rcoko"

# The organisation that acts for a role-wide task (a task for "the coordinator" is the coordinator's).
ROLE_HOME_ORG: dict[str, str] = {Role.MINISTRY: MINISTRY_ORG, Role.COORDINATOR: COORDINATOR_ORG}


@dataclass(frozen=True)
class Organisation:
    code: str
    name: str
    kind: OrgKind
    short_name: str | None = None
    municipality_kind: str | None = None  # "городской округ" / "муниципальный район"


@dataclass(frozen=True)
class User:
    login: str
    name: str
    organisation: str
    roles: frozenset[str]
    password_hash: str | None = None
    active: bool = True
    email: str | None = None


@dataclass(frozen=True)
class Actor:
    """The identity a command runs as: a user with their organisation and roles."""

    login: str
    organisation: str
    roles: frozenset[str] = field(default_factory=frozenset)
    name: str | None = None

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user.login, user.organisation, frozenset(user.roles), user.name)

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    def __str__(self) -> str:
        return f"{self.login}@{self.organisation}"


SYSTEM_ACTOR = Actor("system", COORDINATOR_ORG, frozenset({Role.ADMIN}), "Система")
"""The engine itself (timers, the worker, migrations); it is an administrator."""


@dataclass(frozen=True)
class Membership:
    """An organisation's membership of the agglomeration over a span of years (REG 5.6).

    ``until_year`` None means it continues until a later record ends it.
    """

    organisation: str
    since_year: int
    until_year: int | None
    source: str  # "registry" (historical records) or "contract"
    contract_number: str | None = None
    contract_date: date | None = None
    instance_id: str | None = None
    granted_at: datetime | None = None

    def covers(self, year: int) -> bool:
        return self.since_year <= year and (self.until_year is None or year <= self.until_year)


@dataclass(frozen=True)
class Member:
    """One row of the members list of a year."""

    organisation: Organisation
    membership: Membership
