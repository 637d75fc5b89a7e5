"""Human tasks, with Camunda 7's task API as the reference for their semantics."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from flask import Response, url_for
from werkzeug.datastructures import FileStorage

from engine.documents import FILE_TYPES
from engine.errors import BadInput, TooLarge
from engine.records import TaskQuery, TaskStatus

from . import present
from .common import actor, created, engine, listing, paged
from .spec import PAGING, PROBLEM, Api, Param, Reply, json_response, page_of, ref

SORTS = ["due", "created", "priority", "name"]
BINARY = {"type": "string", "format": "binary"}
# The content types documents are stored (and served) as.
DOCUMENT_TYPES = sorted({file_type.content_types[0] for file_type in FILE_TYPES.values()})


def _file_bytes(file: FileStorage, limit: int) -> bytes:
    data: bytes = file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"file {file.filename!r}", len(data), limit, field="file")
    return data


def install(api: Api) -> None:
    @api.op(
        "GET",
        "/tasks",
        summary="List the tasks you may see",
        description=(
            "Open tasks by default, overdue first. Filters combine with AND. `assignee=me` and "
            "`organisation=mine` refer to the caller."
        ),
        tag="Tasks",
        query=[
            Param("assignee", {"type": "string", "maxLength": 64}, "A login, or `me`."),
            Param("organisation", {"type": "string", "maxLength": 64}, "An organisation code, or `mine`."),
            Param("candidate_role", {"type": "string", "enum": ["ministry", "coordinator", "mouo", "expert", "admin"]}),
            Param("process_key", {"type": "string", "maxLength": 255}),
            Param("instance_id", {"type": "string", "maxLength": 64}),
            Param("due_before", {"type": "string", "format": "date-time"}, "Due strictly before this moment."),
            Param("due_after", {"type": "string", "format": "date-time"}, "Due at or after this moment."),
            Param("overdue", {"type": "boolean"}, "Only tasks past their due time."),
            Param("without_due", {"type": "boolean"}, "Only tasks with no due date."),
            Param("status", {"type": "string", "enum": [s.value for s in TaskStatus], "default": "open"}),
            Param("sort", {"type": "string", "enum": SORTS, "default": "due"}),
            *PAGING,
        ],
        replies=[Reply(200, "A page of tasks.", page_of("Task"))],
    )
    def list_tasks(
        assignee: str | None,
        organisation: str | None,
        candidate_role: str | None,
        process_key: str | None,
        instance_id: str | None,
        due_before: datetime | None,
        due_after: datetime | None,
        overdue: bool | None,
        without_due: bool | None,
        status: str,
        sort: str,
        page: int,
        per_page: int,
    ) -> Response:
        who = actor()
        p, n, limit, offset = paged(page, per_page)
        now = engine().clock.now()
        if overdue:
            due_before = min(due_before, now) if due_before else now
        query = TaskQuery(
            status=TaskStatus(status or "open"),
            instance_id=instance_id,
            assignee=who.login if assignee == "me" else assignee,
            process_key=process_key,
            role=candidate_role,
            only_organisation=who.organisation if organisation == "mine" else organisation,
            due_before=due_before,
            due_after=due_after,
            without_due=bool(without_due),
            sort=sort or "due",
            limit=limit,
            offset=offset,
        )
        views, total = engine().tasks_page(who, query)
        return listing([present.task(v) for v in views], total, p, n)

    @api.op(
        "GET",
        "/tasks/<task_id>",
        summary="One task with its form, documentation, clause and deadline",
        tag="Tasks",
        replies=[Reply(200, "The task.", ref("Task"))],
    )
    def get_task(task_id: str) -> Response:
        return json_response(present.task(engine().task(task_id, actor())))

    @api.op(
        "GET",
        "/tasks/<task_id>/form",
        summary="The JSON Schema of the task's form",
        tag="Tasks",
        replies=[Reply(200, "A JSON Schema (2020-12); `{}` when the task has no form.", {"type": "object"})],
    )
    def get_task_form(task_id: str) -> Response:
        view = engine().task(task_id, actor())
        return json_response(view.form or {})

    @api.op(
        "POST",
        "/tasks/<task_id>/claim",
        summary="Claim a task: it becomes yours",
        tag="Tasks",
        replies=[
            Reply(200, "The claimed task.", ref("Task")),
            Reply(409, "Someone else has claimed it, or it is closed.", ref("Problem"), PROBLEM),
        ],
    )
    def claim_task(task_id: str) -> Response:
        return json_response(present.task(engine().claim(task_id, actor())))

    @api.op(
        "POST",
        "/tasks/<task_id>/unclaim",
        summary="Give a claimed task back to its candidates",
        tag="Tasks",
        replies=[
            Reply(200, "The task, unassigned.", ref("Task")),
            Reply(409, "The task is closed or not claimed.", ref("Problem"), PROBLEM),
        ],
    )
    def unclaim_task(task_id: str) -> Response:
        return json_response(present.task(engine().unclaim(task_id, actor())))

    @api.op(
        "POST",
        "/tasks/<task_id>/complete",
        summary="Complete a task with its form data",
        description="The data is checked against the task's form; a 422 lists every bad field and nothing is written.",
        tag="Tasks",
        body={
            "type": "object",
            "additionalProperties": False,
            "properties": {"data": {"type": "object"}},
        },
        if_match=True,
        replies=[
            Reply(200, "The instance after the step, with the tasks it created.", ref("InstanceDetail")),
            Reply(409, "The task is already closed.", ref("Problem"), PROBLEM),
            Reply(412, "The instance changed since the version in If-Match.", ref("Problem"), PROBLEM),
            Reply(422, "The form data was refused.", ref("Problem"), PROBLEM),
        ],
    )
    def complete_task(task_id: str, body: dict[str, Any], expected_version: int | None) -> Response:
        view = engine().complete(task_id, actor(), body.get("data") or {}, expected_version=expected_version)
        return json_response(view.to_dict(), headers={"ETag": f'"{view.instance.version}"'})

    @api.op(
        "GET",
        "/tasks/<task_id>/comments",
        summary="Comments on a task",
        tag="Tasks",
        replies=[Reply(200, "Comments, oldest first.", {"type": "array", "items": ref("Comment")})],
    )
    def list_comments(task_id: str) -> Response:
        return json_response([present.comment(c) for c in engine().comments(task_id, actor())])

    @api.op(
        "POST",
        "/tasks/<task_id>/comments",
        summary="Comment on a task",
        tag="Tasks",
        body={
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 10000}},
        },
        replies=[Reply(201, "The comment.", ref("Comment"))],
    )
    def add_comment(task_id: str, body: dict[str, Any]) -> Response:
        comment = engine().add_comment(task_id, actor(), body["text"])
        return created(present.comment(comment), url_for("api.list_comments", task_id=task_id))

    @api.op(
        "GET",
        "/tasks/<task_id>/attachments",
        summary="Documents attached to a task",
        tag="Tasks",
        replies=[Reply(200, "Attachments, oldest first.", {"type": "array", "items": ref("Attachment")})],
    )
    def list_attachments(task_id: str) -> Response:
        return json_response(
            [
                present.attachment(a, url_for("api.download_attachment", task_id=task_id, attachment_id=a.id))
                for a in engine().attachments(task_id, actor())
            ]
        )

    @api.op(
        "POST",
        "/tasks/<task_id>/attachments",
        summary="Attach a document to an open task",
        description=(
            "Accepted: pdf, docx, xlsx, pptx, odt, ods, doc, xls, rtf, txt, csv, png, jpg, zip, sig; the content "
            "must match the extension. The size limit is AGGLO_MAX_UPLOAD_BYTES (10 MiB by default)."
        ),
        tag="Tasks",
        multipart={
            "type": "object",
            "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}},
        },
        replies=[
            Reply(201, "The stored attachment with its SHA-256.", ref("Attachment")),
            Reply(409, "The task is closed.", ref("Problem"), PROBLEM),
        ],
    )
    def upload_attachment(task_id: str, file: FileStorage) -> Response:
        eng = engine()
        content = _file_bytes(file, eng.settings.max_upload_bytes)
        record = eng.add_attachment(task_id, actor(), file.filename or "", file.mimetype or "", content)
        url = url_for("api.download_attachment", task_id=task_id, attachment_id=record.id)
        return created(present.attachment(record, url), url)

    @api.op(
        "GET",
        "/tasks/<task_id>/attachments/<attachment_id>",
        summary="Download a document (its SHA-256 is checked first)",
        tag="Tasks",
        replies=[
            Reply(
                200,
                "The file, as the type it was stored as.",
                BINARY,
                DOCUMENT_TYPES[0],
                alternatives={kind: BINARY for kind in DOCUMENT_TYPES[1:]},
            ),
        ],
    )
    def download_attachment(task_id: str, attachment_id: str) -> Response:
        record, content = engine().attachment(attachment_id, actor())
        if record.task_id != task_id:
            from engine.errors import NotFound

            raise NotFound("attachment", attachment_id)
        disposition = f"attachment; filename*=UTF-8''{quote(record.filename)}"
        return Response(
            content,
            mimetype=record.content_type,
            headers={
                "Content-Disposition": disposition,
                "Digest": f"sha-256={record.sha256}",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "private, no-store",
            },
        )

    @api.op(
        "POST",
        "/tasks/<task_id>/extension-requests",
        summary="Ask for a later deadline, with a reason",
        tag="Deadlines",
        body={
            "type": "object",
            "required": ["reason", "proposed_date"],
            "additionalProperties": False,
            "properties": {
                "reason": {"type": "string", "minLength": 3, "maxLength": 4000},
                "proposed_date": {"type": "string", "format": "date"},
            },
        },
        replies=[
            Reply(201, "The request, waiting for the controlling role's decision.", ref("ExtensionRequest")),
            Reply(409, "The task has no open deadline, or a request is already waiting.", ref("Problem"), PROBLEM),
        ],
    )
    def request_extension(task_id: str, body: dict[str, Any]) -> Response:
        try:
            proposed = date.fromisoformat(body["proposed_date"])
        except ValueError:
            raise BadInput("proposed_date must be a date (YYYY-MM-DD)", field="proposed_date") from None
        req = engine().request_extension(task_id, actor(), body["reason"], proposed)
        return created(present.extension(req), url_for("api.list_extension_requests"))
