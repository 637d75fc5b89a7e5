"""Authorisation, in one place: who may see and act on which task, instance and process.

Rules (REG 5.6 and DAY 2: the coordinator and the Ministry act by role; a МОУО acts only for
itself):

* A task names candidate roles (``camunda:candidateGroups``), candidate users and perhaps an
  organisation. A user may act on it when they are its assignee, a candidate user, or hold a
  candidate role and — if the task names an organisation — belong to that organisation.
  A task claimed by someone else can be seen by the other candidates but not completed.
* A task with no candidates at all (a generic Camunda file) is open to administrators and the
  coordinator, who operate the system.
* Administrators see everything; they act on tasks only where the rules above let them.
* Instances: the Ministry, the coordinator and administrators see all; a МОУО sees the
  instances its organisation started or has tasks in.
* Who may start a process: ``camunda:candidateStarterGroups`` / ``candidateStarterUsers``;
  without them, the Ministry, the coordinator and administrators.

A user who may not see an object gets :class:`NotFound` (as if it did not exist, so ids cannot
be probed); one who sees it but may not act gets :class:`NotPermitted`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .directory import ROLE_HOME_ORG, Actor, Role
from .errors import NotFound, NotPermitted

OVERSEER_ROLES = frozenset({Role.MINISTRY, Role.COORDINATOR, Role.ADMIN})
OPERATOR_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN})


class TaskLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def candidate_roles(self) -> tuple[str, ...]: ...
    @property
    def candidate_users(self) -> tuple[str, ...]: ...
    @property
    def organisation(self) -> str | None: ...
    @property
    def assignee(self) -> str | None: ...


class InstanceLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def organisation(self) -> str | None: ...


def is_candidate(actor: Actor, task: TaskLike) -> bool:
    """Whether the task is meant for this actor, ignoring who has claimed it."""
    if actor.login in task.candidate_users:
        return True
    if not task.candidate_roles and not task.candidate_users:
        return bool(OPERATOR_ROLES & actor.roles)
    if not set(task.candidate_roles) & actor.roles:
        return False
    if task.organisation is None or actor.organisation == task.organisation:
        return True
    # Users of another organisation act only through a role that is not bound to one
    # (the Ministry and the coordinator act by role); a МОУО acts only for itself.
    return bool((set(task.candidate_roles) & actor.roles) - {Role.MOUO})


def can_see_task(actor: Actor, task: TaskLike) -> bool:
    return actor.is_admin or task.assignee == actor.login or is_candidate(actor, task)


def can_act_on_task(actor: Actor, task: TaskLike) -> bool:
    if task.assignee is not None and task.assignee != actor.login:
        return False
    return task.assignee == actor.login or is_candidate(actor, task)


def check_task_visible(actor: Actor, task: TaskLike) -> None:
    if not can_see_task(actor, task):
        raise NotFound("task", task.id)


def check_task_actionable(actor: Actor, task: TaskLike, action: str) -> None:
    check_task_visible(actor, task)
    if task.assignee is not None and task.assignee != actor.login:
        raise NotPermitted(actor.login, action, f"task {task.id}", f"it is claimed by {task.assignee}")
    if not can_act_on_task(actor, task):
        raise NotPermitted(
            actor.login, action, f"task {task.id}", "the task is not assigned to your role or organisation"
        )


def sees_all_instances(actor: Actor) -> bool:
    return bool(OVERSEER_ROLES & actor.roles)


def check_instance_visible(actor: Actor, instance: InstanceLike, task_organisations: Iterable[str | None] = ()) -> None:
    if sees_all_instances(actor):
        return
    if instance.organisation == actor.organisation:
        return
    if actor.organisation in set(task_organisations):
        return
    raise NotFound("instance", instance.id)


def can_see_documents(actor: Actor, task: TaskLike, instance: InstanceLike) -> bool:
    """Comments and documents of a task: overseers, whoever sees the task, the task's own
    organisation, and the instance's organisation for a task bound to no organisation or to the
    Ministry or the coordinator (their review of its application), never to another municipality."""
    if sees_all_instances(actor) or can_see_task(actor, task):
        return True
    if task.organisation is not None and task.organisation == actor.organisation:
        return True
    return instance.organisation == actor.organisation and (
        task.organisation is None or task.organisation in ROLE_HOME_ORG.values()
    )


def can_start(actor: Actor, starter_groups: tuple[str, ...], starter_users: tuple[str, ...]) -> bool:
    if not starter_groups and not starter_users:
        return bool(OVERSEER_ROLES & actor.roles)
    return actor.login in starter_users or bool(set(starter_groups) & actor.roles)


def check_can_cancel(actor: Actor, instance: InstanceLike, started_by: str | None) -> None:
    check_instance_visible(actor, instance)
    if actor.is_admin or actor.has(Role.COORDINATOR) or (started_by is not None and started_by == actor.login):
        return
    raise NotPermitted(
        actor.login,
        "cancel",
        f"instance {instance.id}",
        "only its initiator, the coordinator or an administrator may cancel it",
    )


def check_can_deploy(actor: Actor) -> None:
    if not actor.is_admin:
        raise NotPermitted(actor.login, "deploy", "process definitions", "administrators deploy processes")
