"""Authorisation rules, table-driven: roles, organisations, assignees, candidates."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine import access
from engine.directory import Actor, Role
from engine.errors import NotFound, NotPermitted

MINISTRY = Actor("ministry", "minobr", frozenset({Role.MINISTRY}))
COORD = Actor("coordinator", "rcoko", frozenset({Role.COORDINATOR}))
ADMIN = Actor("admin", "rcoko", frozenset({Role.ADMIN}))
TROITSK = Actor("troitsk-go", "troitsk-go", frozenset({Role.MOUO}))
TROITSK2 = Actor("troitsk-2", "troitsk-go", frozenset({Role.MOUO}))
KOPEYSK = Actor("kopeysk-go", "kopeysk-go", frozenset({Role.MOUO}))


@dataclass
class T:
    id: str = "t1"
    candidate_roles: tuple[str, ...] = ()
    candidate_users: tuple[str, ...] = ()
    organisation: str | None = None
    assignee: str | None = None


MOUO_TASK = T(candidate_roles=("mouo",), organisation="troitsk-go")
COORD_TASK = T(candidate_roles=("coordinator",), organisation="rcoko")
MINISTRY_TASK = T(candidate_roles=("ministry",), organisation="minobr")
OPEN_TASK = T()


@pytest.mark.parametrize(
    ("actor", "task", "sees", "acts"),
    [
        (TROITSK, MOUO_TASK, True, True),
        (TROITSK2, MOUO_TASK, True, True),
        (KOPEYSK, MOUO_TASK, False, False),
        (COORD, MOUO_TASK, False, False),
        (MINISTRY, MOUO_TASK, False, False),
        (ADMIN, MOUO_TASK, True, False),
        (COORD, COORD_TASK, True, True),
        (TROITSK, COORD_TASK, False, False),
        (MINISTRY, COORD_TASK, False, False),
        (MINISTRY, MINISTRY_TASK, True, True),
        (COORD, MINISTRY_TASK, False, False),
        (COORD, OPEN_TASK, True, True),
        (ADMIN, OPEN_TASK, True, True),
        (TROITSK, OPEN_TASK, False, False),
        (KOPEYSK, T(candidate_users=("kopeysk-go",)), True, True),
        (TROITSK, T(candidate_roles=("mouo",), organisation="troitsk-go", assignee="troitsk-2"), True, False),
        (TROITSK2, T(candidate_roles=("mouo",), organisation="troitsk-go", assignee="troitsk-2"), True, True),
        (KOPEYSK, T(candidate_roles=("mouo", "coordinator"), organisation="troitsk-go"), False, False),
        (COORD, T(candidate_roles=("mouo", "coordinator"), organisation="troitsk-go"), True, True),
    ],
)
def test_task_visibility_and_action(actor: Actor, task: T, sees: bool, acts: bool) -> None:
    assert access.can_see_task(actor, task) is sees
    assert access.can_act_on_task(actor, task) is acts


def test_invisible_tasks_are_not_found_and_visible_ones_not_permitted() -> None:
    with pytest.raises(NotFound):
        access.check_task_actionable(KOPEYSK, MOUO_TASK, "complete")
    claimed = T(candidate_roles=("mouo",), organisation="troitsk-go", assignee="troitsk-2")
    with pytest.raises(NotPermitted) as caught:
        access.check_task_actionable(TROITSK, claimed, "complete")
    assert "claimed by troitsk-2" in str(caught.value)


@pytest.mark.parametrize(
    ("actor", "groups", "users", "allowed"),
    [
        (TROITSK, ("mouo",), (), True),
        (COORD, ("mouo",), (), False),
        (COORD, (), (), True),
        (MINISTRY, (), (), True),
        (TROITSK, (), (), False),
        (KOPEYSK, (), ("kopeysk-go",), True),
    ],
)
def test_who_may_start(actor: Actor, groups: tuple[str, ...], users: tuple[str, ...], allowed: bool) -> None:
    assert access.can_start(actor, groups, users) is allowed


@dataclass
class Inst:
    id: str = "i1"
    organisation: str | None = "troitsk-go"


def test_instance_visibility() -> None:
    access.check_instance_visible(TROITSK, Inst())
    access.check_instance_visible(COORD, Inst())
    access.check_instance_visible(MINISTRY, Inst())
    access.check_instance_visible(KOPEYSK, Inst(organisation="minobr"), {"kopeysk-go"})
    with pytest.raises(NotFound):
        access.check_instance_visible(KOPEYSK, Inst())
