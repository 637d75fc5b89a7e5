"""Reference data and demo content: organisations, users, historical memberships, processes.

Safe to run twice: organisations and users are upserted (existing users keep their
password), memberships are added once, and deploying unchanged processes is a no-op.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.definitions import referenced_resources
from engine.directory import (
    COORDINATOR_ORG,
    MINISTRY_ORG,
    SYSTEM_ACTOR,
    Membership,
    Organisation,
    OrgKind,
    Role,
    User,
)
from engine.engine import Engine
from engine.passwords import Passwords

REFERENCE = Path(__file__).parent / "reference"
PROCESSES = Path(__file__).resolve().parent.parent / "processes"

REGIONAL_ORGANISATIONS = [
    Organisation(
        MINISTRY_ORG,
        "Министерство образования и науки Челябинской области",
        OrgKind.MINISTRY,
        "Минобрнауки Челябинской области",
    ),
    Organisation(
        COORDINATOR_ORG,
        "ГБУ ДПО «Региональный центр оценки качества и информатизации образования»",
        OrgKind.COORDINATOR,
        "РЦОКИО",
    ),
    Organisation(
        "chipkro",
        "ГБУ ДПО «Челябинский институт переподготовки и повышения квалификации работников образования»",
        OrgKind.OTHER,
        "ЧИППКРО",
    ),
]


@dataclass(frozen=True)
class Municipality:
    organisation: Organisation
    member_since: int | None


def municipalities(path: Path = REFERENCE / "municipalities.csv") -> list[Municipality]:
    result = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            since = row.get("member_since", "").strip()
            result.append(
                Municipality(
                    Organisation(row["code"].strip(), row["name"].strip(), OrgKind.MOUO, None, row["kind"].strip()),
                    int(since) if since else None,
                )
            )
    return result


def demo_users(munis: list[Municipality], password_hash: str) -> list[User]:
    users = [
        User(
            "ministry",
            "Специалист Министерства образования и науки",
            MINISTRY_ORG,
            frozenset({Role.MINISTRY}),
            password_hash,
        ),
        User("coordinator", "Координатор РЦОКИО", COORDINATOR_ORG, frozenset({Role.COORDINATOR}), password_hash),
        User("admin", "Администратор системы", COORDINATOR_ORG, frozenset({Role.ADMIN}), password_hash),
        User("expert", "Эксперт ЧИППКРО", "chipkro", frozenset({Role.EXPERT}), password_hash),
    ]
    for muni in munis:
        users.append(
            User(
                muni.organisation.code,
                f"Специалист МОУО: {muni.organisation.name}",
                muni.organisation.code,
                frozenset({Role.MOUO}),
                password_hash,
            )
        )
    return users


def process_files(root: Path = PROCESSES) -> list[Path]:
    return sorted(root.glob("*/*.bpmn"))


def load_process(path: Path) -> tuple[bytes, dict[str, bytes]]:
    """A BPMN file and the schema files beside it that its forms name."""
    source = path.read_bytes()
    resources = {
        name: (path.parent / name).read_bytes()
        for name in sorted(referenced_resources(source, path.name))
        if (path.parent / name).is_file()
    }
    return source, resources


@dataclass
class DemoReport:
    password: str
    directory: dict[str, int] = field(default_factory=dict)
    processes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"demo_password": self.password, "directory": self.directory, "processes": self.processes}


def seed(engine: Engine, passwords: Passwords, demo_password: str) -> DemoReport:
    munis = municipalities()
    password_hash = passwords.hash(demo_password)
    memberships = [
        Membership(m.organisation.code, m.member_since, None, "registry") for m in munis if m.member_since is not None
    ]
    report = DemoReport(demo_password)
    report.directory = engine.import_directory(
        SYSTEM_ACTOR,
        REGIONAL_ORGANISATIONS + [m.organisation for m in munis],
        demo_users(munis, password_hash),
        memberships,
    )
    for path in process_files():
        source, resources = load_process(path)
        result = engine.deploy(source, f"{path.parent.name}/{path.name}", SYSTEM_ACTOR, resources)
        report.processes.append(
            {
                "file": f"{path.parent.name}/{path.name}",
                "created": result.created,
                "definitions": [{"key": d.key, "version": d.version} for d in result.definitions],
            }
        )
    return report
