"""Deadlines with their explanation, reminders, and extension requests with their decisions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Response

from engine.errors import BadInput
from engine.ports import DeadlineQuery, ExtensionQuery
from engine.records import DeadlineStatus, ExtensionStatus

from . import present
from .common import actor, engine, listing, paged
from .spec import PAGING, PROBLEM, Api, Param, Reply, json_response, page_of, ref


def install(api: Api) -> None:
    @api.op(
        "GET",
        "/deadlines",
        summary="Deadlines you may see, soonest first",
        tag="Deadlines",
        query=[
            Param("instance_id", {"type": "string", "maxLength": 64}),
            Param("organisation", {"type": "string", "maxLength": 64}),
            Param("status", {"type": "string", "enum": [s.value for s in DeadlineStatus], "default": "open"}),
            Param("due_before", {"type": "string", "format": "date-time"}),
            Param("due_after", {"type": "string", "format": "date-time"}),
            Param("overdue", {"type": "boolean"}, "Only open deadlines already past."),
            *PAGING,
        ],
        replies=[Reply(200, "A page of deadlines.", page_of("Deadline"))],
    )
    def list_deadlines(
        instance_id: str | None,
        organisation: str | None,
        status: str,
        due_before: datetime | None,
        due_after: datetime | None,
        overdue: bool | None,
        page: int,
        per_page: int,
    ) -> Response:
        p, n, limit, offset = paged(page, per_page)
        now = engine().clock.now()
        if overdue:
            status = "open"
            due_before = min(due_before, now) if due_before else now
        query = DeadlineQuery(
            instance_id=instance_id,
            organisation=organisation,
            status=DeadlineStatus(status or "open"),
            due_before=due_before,
            due_after=due_after,
            limit=limit,
            offset=offset,
        )
        items, total = engine().deadlines_page(actor(), query)
        return listing([present.deadline(d, now) for d in items], total, p, n)

    @api.op(
        "GET",
        "/deadlines/<deadline_id>",
        summary="One deadline: its rule, anchor, dates and explanation, reminders sent, extension requests",
        tag="Deadlines",
        replies=[Reply(200, "The deadline.", ref("DeadlineDetail"))],
    )
    def get_deadline(deadline_id: str) -> Response:
        who = actor()
        eng = engine()
        d = eng.deadline(deadline_id, who)
        reminders = [r for r in eng.reminders_of(d.instance_id, who) if r.deadline_id == d.id]
        requests = eng.extension_requests(who, ExtensionQuery(deadline_id=d.id))
        return json_response(
            {
                **present.deadline(d, eng.clock.now()),
                "reminders": [present.reminder(r) for r in reminders],
                "extension_requests": [present.extension(e) for e in requests],
            }
        )

    @api.op(
        "GET",
        "/extension-requests",
        summary="Extension requests you decide (by role) or made (by organisation)",
        tag="Deadlines",
        query=[
            Param("status", {"type": "string", "enum": [s.value for s in ExtensionStatus]}),
            Param("instance_id", {"type": "string", "maxLength": 64}),
            *PAGING,
        ],
        replies=[Reply(200, "A page of requests, oldest first.", page_of("ExtensionRequest"))],
    )
    def list_extension_requests(status: str | None, instance_id: str | None, page: int, per_page: int) -> Response:
        p, n, limit, offset = paged(page, per_page)
        query = ExtensionQuery(
            status=ExtensionStatus(status) if status else None, instance_id=instance_id, limit=limit, offset=offset
        )
        items, total = engine().extension_requests_page(actor(), query)
        return listing([present.extension(e) for e in items], total, p, n)

    @api.op(
        "POST",
        "/extension-requests/<request_id>/decision",
        summary="Approve or refuse an extension request (the controlling role)",
        description="Approval moves the deadline (the original is kept), its reminders and timers that depend on it.",
        tag="Deadlines",
        body={
            "type": "object",
            "required": ["approve"],
            "additionalProperties": False,
            "properties": {
                "approve": {"type": "boolean"},
                "comment": {"type": "string", "maxLength": 4000},
                "new_date": {"type": "string", "format": "date", "description": "Grant another date than proposed."},
            },
        },
        replies=[
            Reply(200, "The decided request.", ref("ExtensionRequest")),
            Reply(409, "The request was already decided.", ref("Problem"), PROBLEM),
        ],
    )
    def decide_extension_request(request_id: str, body: dict[str, Any]) -> Response:
        new_date = None
        if body.get("new_date"):
            try:
                new_date = date.fromisoformat(body["new_date"])
            except ValueError:
                raise BadInput("new_date must be a date (YYYY-MM-DD)", field="new_date") from None
        req = engine().decide_extension(request_id, actor(), body["approve"], body.get("comment"), new_date)
        return json_response(present.extension(req))
