"""Organisations, members by year, users and API tokens, the caller's own account, notifications,
the audit log and the execution-discipline report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, g, url_for

from engine.credentials import UserChange
from engine.directory import Actor, Role
from engine.errors import InvalidState, NotFound, NotPermitted
from engine.ports import AuditQuery

from .. import exports
from ..auth import refresh_session_fingerprint
from . import present
from .common import actor, created, engine, listing, paged
from .spec import PAGING, PROBLEM, Api, Param, Reply, json_response, page_of, ref

ROLES = [r.value for r in Role]
ROLE_LIST = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "enum": ROLES}}
LOGIN = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{1,63}$"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def install(api: Api) -> None:
    # -- directory ------------------------------------------------------------------------------
    @api.op(
        "GET",
        "/organisations",
        summary="The Ministry, the coordinator and the municipal education authorities",
        tag="Directory",
        replies=[Reply(200, "Organisations by name.", {"type": "array", "items": ref("Organisation")})],
    )
    def list_organisations() -> Response:
        actor()
        return json_response([present.organisation(o) for o in engine().organisations()])

    @api.op(
        "GET",
        "/members",
        summary="Members of the agglomeration in a year (REG 5.6)",
        tag="Directory",
        query=[Param("year", {"type": "integer", "minimum": 2000, "maximum": 2100}, "Default: this year.")],
        replies=[Reply(200, "Members by name.", {"type": "array", "items": ref("Member")})],
    )
    def list_members(year: int | None) -> Response:
        actor()
        eng = engine()
        year = year or eng.clock.now().year
        return json_response([present.member(m) for m in eng.members(year)])

    @api.op(
        "GET",
        "/members/dynamics",
        summary="How many members the agglomeration had each year",
        tag="Directory",
        query=[
            Param("from_year", {"type": "integer", "minimum": 2000, "maximum": 2100}),
            Param("to_year", {"type": "integer", "minimum": 2000, "maximum": 2100}),
        ],
        replies=[
            Reply(
                200,
                "Counts by year.",
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["year", "members"],
                        "properties": {"year": {"type": "integer"}, "members": {"type": "integer"}},
                    },
                },
            )
        ],
    )
    def members_dynamics(from_year: int | None, to_year: int | None) -> Response:
        actor()
        return json_response([{"year": y, "members": c} for y, c in engine().membership_dynamics(from_year, to_year)])

    # -- the caller -----------------------------------------------------------------------------
    @api.op(
        "GET",
        "/me",
        summary="Who you are: login, organisation, roles",
        tag="Account",
        replies=[
            Reply(
                200,
                "The caller.",
                {
                    "type": "object",
                    "required": ["login", "organisation", "roles"],
                    "properties": {
                        "login": {"type": "string"},
                        "name": {"type": ["string", "null"]},
                        "organisation": {"type": "string"},
                        "roles": {"type": "array", "items": {"type": "string"}},
                    },
                },
            )
        ],
    )
    def get_me() -> Response:
        who = actor()
        return json_response(
            {"login": who.login, "name": who.name, "organisation": who.organisation, "roles": sorted(who.roles)}
        )

    @api.op(
        "POST",
        "/me/password",
        summary="Change your password (your other sessions end)",
        tag="Account",
        body={
            "type": "object",
            "required": ["old_password", "new_password"],
            "additionalProperties": False,
            "properties": {
                "old_password": {"type": "string", "maxLength": 256},
                "new_password": {"type": "string", "minLength": 10, "maxLength": 256},
            },
        },
        replies=[Reply(204, "Changed.")],
    )
    def change_password(body: dict[str, Any]) -> Response:
        who = _person("change the password of")
        eng = engine()
        eng.change_password(who, body["old_password"], body["new_password"])
        refresh_session_fingerprint(eng.user(who.login, who).password_hash)
        return Response(status=204)

    @api.op(
        "POST",
        "/me/calendar-token",
        summary="A new private iCalendar URL of your deadlines (the old one stops working)",
        tag="Account",
        replies=[
            Reply(
                201,
                "The feed's URL; keep it private.",
                {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}},
            )
        ],
    )
    def rotate_calendar_token() -> Response:
        secret = engine().rotate_calendar_token(_person("get a calendar feed for"))
        url = url_for("feeds.calendar_feed", token=secret, _external=True)
        return created({"url": url}, url)

    # -- users and tokens (administrators) --------------------------------------------------------
    @api.op(
        "GET",
        "/users",
        summary="Users (administrators)",
        tag="Administration",
        query=[Param("organisation", {"type": "string", "maxLength": 64}), *PAGING],
        replies=[Reply(200, "A page of users.", page_of("User"))],
    )
    def list_users(organisation: str | None, page: int, per_page: int) -> Response:
        who = actor()
        _admin(who)
        p, n, limit, offset = paged(page, per_page)
        users = [u for u in engine().users() if organisation is None or u.organisation == organisation]
        return listing([present.user(u) for u in users[offset : offset + limit]], len(users), p, n)

    user_body = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 300},
            "organisation": {"type": "string", "minLength": 1, "maxLength": 64},
            "roles": ROLE_LIST,
            "email": {"type": "string", "format": "email", "maxLength": 300},
            "active": {"type": "boolean"},
            "password": {"type": "string", "minLength": 10, "maxLength": 256},
        },
    }

    @api.op(
        "POST",
        "/users",
        summary="Create a user (administrators)",
        tag="Administration",
        body={
            **user_body,
            "required": ["login", "name", "organisation", "roles"],
            "properties": {"login": LOGIN, **user_body["properties"]},  # type: ignore[dict-item]
        },
        replies=[Reply(201, "The user.", ref("User")), Reply(409, "The login is taken.", ref("Problem"), PROBLEM)],
    )
    def create_user(body: dict[str, Any]) -> Response:
        who = actor()
        eng = engine()
        _admin(who)
        if any(u.login == body["login"] for u in eng.users()):
            raise InvalidState(f"login {body['login']!r} is taken")
        user = eng.save_user(who, _change(body["login"], body))
        return created(present.user(user), url_for("api.get_user", login=user.login))

    @api.op(
        "GET",
        "/users/<login>",
        summary="One user (administrators)",
        tag="Administration",
        replies=[Reply(200, "The user.", ref("User"))],
    )
    def get_user(login: str) -> Response:
        who = actor()
        _admin(who)
        found = next((u for u in engine().users() if u.login == login), None)
        if found is None:
            raise NotFound("user", login)
        return json_response(present.user(found))

    @api.op(
        "PATCH",
        "/users/<login>",
        summary="Change a user: name, organisation, roles, e-mail, active, password (administrators)",
        tag="Administration",
        body={**user_body, "minProperties": 1},
        replies=[Reply(200, "The user.", ref("User"))],
    )
    def update_user(login: str, body: dict[str, Any]) -> Response:
        who = actor()
        eng = engine()
        _admin(who)
        if not any(u.login == login for u in eng.users()):
            raise NotFound("user", login)
        return json_response(present.user(eng.save_user(who, _change(login, body))))

    @api.op(
        "GET",
        "/tokens",
        summary="API tokens (administrators); secrets are never shown again",
        tag="Administration",
        replies=[Reply(200, "Tokens.", {"type": "array", "items": ref("Token")})],
    )
    def list_tokens() -> Response:
        return json_response([present.token(t) for t in engine().tokens(actor())])

    @api.op(
        "POST",
        "/tokens",
        summary="Create an API token scoped to roles and an organisation (administrators)",
        description="The response carries `secret` once; only its SHA-256 is stored.",
        tag="Administration",
        body={
            "type": "object",
            "required": ["name", "roles", "organisation"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,59}$"},
                "roles": ROLE_LIST,
                "organisation": {"type": "string", "minLength": 1, "maxLength": 64},
            },
        },
        replies=[
            Reply(
                201,
                "The token and its secret.",
                {
                    "allOf": [ref("Token")],
                    "type": "object",
                    "required": ["secret"],
                    "properties": {"secret": {"type": "string"}},
                },
            )
        ],
    )
    def create_token(body: dict[str, Any]) -> Response:
        token, secret = engine().create_token(actor(), body["name"], body["roles"], body["organisation"])
        return created({**present.token(token), "secret": secret}, url_for("api.list_tokens"))

    @api.op(
        "DELETE",
        "/tokens/<token_id>",
        summary="Revoke an API token (administrators)",
        tag="Administration",
        replies=[Reply(200, "The revoked token.", ref("Token"))],
    )
    def revoke_token(token_id: str) -> Response:
        return json_response(present.token(engine().revoke_token(actor(), token_id)))

    # -- notifications --------------------------------------------------------------------------
    @api.op(
        "GET",
        "/notifications",
        summary="Your in-app notifications, newest first",
        tag="Notifications",
        query=[
            Param("unread", {"type": "boolean", "default": False}),
            *PAGING,
        ],
        replies=[Reply(200, "A page of notifications, newest first.", page_of("Notification"))],
    )
    def list_notifications(unread: bool, page: int, per_page: int) -> Response:
        p, n, limit, offset = paged(page, per_page)
        items, total = engine().notifications_page(actor(), bool(unread), limit, offset)
        return listing([present.notification(x) for x in items], total, p, n)

    @api.op(
        "POST",
        "/notifications/read",
        summary="Mark notifications read (all of them when `ids` is absent)",
        tag="Notifications",
        body={
            "type": "object",
            "additionalProperties": False,
            "properties": {"ids": {"type": "array", "maxItems": 1000, "items": {"type": "string", "maxLength": 64}}},
        },
        replies=[
            Reply(
                200,
                "How many were marked.",
                {"type": "object", "required": ["marked"], "properties": {"marked": {"type": "integer"}}},
            )
        ],
    )
    def mark_notifications_read(body: dict[str, Any]) -> Response:
        return json_response({"marked": engine().mark_notifications_read(actor(), body.get("ids"))})

    # -- audit ------------------------------------------------------------------------------------
    @api.op(
        "GET",
        "/audit",
        summary="The audit trail (the Ministry, the coordinator, administrators)",
        tag="Audit",
        query=[
            Param("instance_id", {"type": "string", "maxLength": 64}),
            Param("task_id", {"type": "string", "maxLength": 64}),
            Param("actor", {"type": "string", "maxLength": 64}, "Who acted (a login).", arg="by"),
            Param("organisation", {"type": "string", "maxLength": 64}),
            Param("action", {"type": "string", "maxLength": 64}, "e.g. task.completed, deadline.escalated"),
            Param("since", {"type": "string", "format": "date-time"}),
            Param("until", {"type": "string", "format": "date-time"}),
            Param("order", {"type": "string", "enum": ["asc", "desc"], "default": "asc"}),
            *PAGING,
        ],
        replies=[Reply(200, "A page of audit entries.", page_of("AuditEntry"))],
    )
    def list_audit(
        instance_id: str | None,
        task_id: str | None,
        by: str | None,
        organisation: str | None,
        action: str | None,
        since: datetime | None,
        until: datetime | None,
        order: str,
        page: int,
        per_page: int,
    ) -> Response:
        p, n, limit, offset = paged(page, per_page)
        query = AuditQuery(
            instance_id=instance_id,
            task_id=task_id,
            actor=by,
            organisation=organisation,
            action=action,
            since=since,
            until=until,
            newest_first=order == "desc",
            limit=limit,
            offset=offset,
        )
        entries, total = engine().audit_page(actor(), query)
        return listing([present.audit(e) for e in entries], total, p, n)

    # -- reports -----------------------------------------------------------------------------------
    @api.op(
        "GET",
        "/reports/overdue",
        summary="Overdue tasks by organisation (the execution-discipline report): JSON, CSV or XLSX",
        tag="Reports",
        query=[
            Param("organisation", {"type": "string", "maxLength": 64}),
            Param("format", {"type": "string", "enum": ["json", "csv", "xlsx"], "default": "json"}, arg="fmt"),
        ],
        replies=[
            Reply(
                200,
                "Groups, the worst first; or the same rows as CSV or XLSX.",
                {"type": "array", "items": ref("OverdueGroup")},
                alternatives={
                    "text/csv": {"type": "string"},
                    XLSX: {"type": "string", "format": "binary"},
                },
            ),
        ],
    )
    def overdue_report(organisation: str | None, fmt: str) -> Response:
        eng = engine()
        groups = eng.overdue_report(actor(), organisation)
        stamp = eng.clock.now().strftime("%Y-%m-%d")
        if fmt == "csv":
            return Response(
                exports.to_csv(groups),
                mimetype="text/csv",
                headers={"Content-Disposition": f'attachment; filename="overdue-{stamp}.csv"'},
            )
        if fmt == "xlsx":
            data = exports.to_xlsx(groups, f"Просроченные задачи на {eng.clock.now():%d.%m.%Y}")
            return Response(
                data,
                mimetype=XLSX,
                headers={"Content-Disposition": f'attachment; filename="overdue-{stamp}.xlsx"'},
            )
        return json_response([present.overdue_group(group) for group in groups])


def _person(action: str) -> Actor:
    """The caller, who must be a user: an API token has no password and no calendar of its own."""
    who = actor()
    if g.get("auth") == "bearer":
        raise NotPermitted(who.login, action, "an API token", "only a signed-in user has a password and a calendar")
    return who


def _admin(who: Actor) -> None:
    if not who.is_admin:
        raise NotPermitted(who.login, "manage", "users", "administrators manage users")


def _change(login: str, body: dict[str, Any]) -> UserChange:
    return UserChange(
        login=login,
        name=body.get("name"),
        organisation=body.get("organisation"),
        roles=tuple(body["roles"]) if "roles" in body else None,
        email=body.get("email"),
        active=body.get("active"),
        password=body.get("password"),
    )
