"""Comments and attached documents of a task.

Anyone who may see a task may comment on it and read its comments and documents; only those
who may act on an open task attach documents to it. A МОУО reads the documents of its own
organisation's tasks and of the instances it started (the coordinator's review of its
application, say), never another municipality's.

Attachments have a size limit and an allow-list of types checked three ways: the file name's
extension, the declared content type, and the first bytes of the content (a ``.pdf`` must
start with ``%PDF-``, an Office file must be a ZIP or an OLE compound file). The SHA-256 of
the content is stored and checked again on every download, so silent corruption is caught.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import access
from .directory import Actor
from .errors import AttachmentCorrupt, BadInput, InvalidState, NotFound, TooLarge, UnsupportedType
from .ports import Tx
from .records import AttachmentRecord, AuditEntry, CommentRecord, InstanceRecord, TaskRecord, TaskStatus

if TYPE_CHECKING:
    from .engine import Engine

MAX_COMMENT = 10_000

_ZIP = (b"PK\x03\x04",)
_OLE = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)


@dataclass(frozen=True)
class FileType:
    extension: str
    content_types: tuple[str, ...]
    magic: tuple[bytes, ...] | None  # None: text, must be UTF-8


FILE_TYPES: dict[str, FileType] = {
    ft.extension: ft
    for ft in (
        FileType("pdf", ("application/pdf",), (b"%PDF-",)),
        FileType("docx", ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",), _ZIP),
        FileType("xlsx", ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",), _ZIP),
        FileType("pptx", ("application/vnd.openxmlformats-officedocument.presentationml.presentation",), _ZIP),
        FileType("odt", ("application/vnd.oasis.opendocument.text",), _ZIP),
        FileType("ods", ("application/vnd.oasis.opendocument.spreadsheet",), _ZIP),
        FileType("doc", ("application/msword",), _OLE),
        FileType("xls", ("application/vnd.ms-excel",), _OLE),
        FileType("rtf", ("application/rtf", "text/rtf"), (b"{\\rtf",)),
        FileType("txt", ("text/plain",), None),
        FileType("csv", ("text/csv", "text/plain"), None),
        FileType("png", ("image/png",), (b"\x89PNG\r\n\x1a\n",)),
        FileType("jpg", ("image/jpeg",), (b"\xff\xd8\xff",)),
        FileType("jpeg", ("image/jpeg",), (b"\xff\xd8\xff",)),
        FileType("zip", ("application/zip", "application/x-zip-compressed"), _ZIP),
        FileType("sig", ("application/pkcs7-signature", "application/octet-stream"), (b"0\x82", b"0\x80", b"-----")),
    )
}
# Browsers send this for types they do not know; the extension and the magic bytes then decide.
GENERIC_TYPES = ("application/octet-stream", "")


def clean_filename(filename: str) -> str:
    """The base name without directories, control characters or leading dots; NFC-normalised."""
    name = unicodedata.normalize("NFC", filename or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().lstrip(".")
    if not name:
        raise BadInput("the file has no name", field="file")
    if len(name.encode()) > 255:
        raise BadInput("the file name is longer than 255 bytes", field="file")
    return name


def check_file(filename: str, content_type: str, content: bytes, limit: int) -> tuple[str, str]:
    """Validate an upload; return (clean file name, content type to store)."""
    name = clean_filename(filename)
    if len(content) > limit:
        raise TooLarge(f"file {name!r}", len(content), limit, field="file")
    if not content:
        raise BadInput(f"file {name!r} is empty", field="file")
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    file_type = FILE_TYPES.get(extension)
    if file_type is None:
        allowed = ", ".join(sorted(FILE_TYPES))
        raise UnsupportedType(f"files of type {extension or '(none)'!r} are not accepted; allowed: {allowed}", "file")
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared not in GENERIC_TYPES and declared not in file_type.content_types:
        raise UnsupportedType(f"file {name!r} is declared as {declared!r}, which does not match .{extension}", "file")
    if file_type.magic is None:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsupportedType(f"file {name!r} is not UTF-8 text", "file") from exc
    elif not content.startswith(file_type.magic):
        raise UnsupportedType(f"the content of {name!r} is not a .{extension} file", "file")
    return name, file_type.content_types[0]


def _load(tx: Tx, task_id: str) -> tuple[TaskRecord, InstanceRecord]:
    found = tx.get_task_with_instance(task_id)
    if found is None:
        raise NotFound("task", task_id)
    return found


def check_document_visible(actor: Actor, task: TaskRecord, instance: InstanceRecord) -> None:
    if not access.can_see_documents(actor, task, instance):
        raise NotFound("task", task.id)


def add_comment(engine: Engine, task_id: str, actor: Actor, text: str) -> CommentRecord:
    text = (text or "").strip()
    if not text:
        raise BadInput("the comment is empty", field="text")
    if len(text) > MAX_COMMENT:
        raise BadInput(f"the comment is longer than {MAX_COMMENT} characters", field="text")
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        task, instance = _load(tx, task_id)
        check_document_visible(actor, task, instance)
        comment = CommentRecord(engine._new_id(), task.id, task.instance_id, actor.login, actor.organisation, now, text)
        tx.insert_comment(comment)
        tx.append_audit(
            [
                AuditEntry(
                    now,
                    actor.login,
                    actor.organisation,
                    "task.commented",
                    instance_id=task.instance_id,
                    task_id=task.id,
                    element_id=task.element_id,
                    details={"comment": comment.id, "length": len(text)},
                )
            ]
        )
        return comment


def comments(engine: Engine, task_id: str, actor: Actor) -> list[CommentRecord]:
    with engine.store.transaction() as tx:
        task, instance = _load(tx, task_id)
        check_document_visible(actor, task, instance)
        return tx.list_comments(task_id=task_id)


def add_attachment(
    engine: Engine, task_id: str, actor: Actor, filename: str, content_type: str, content: bytes
) -> AttachmentRecord:
    name, stored_type = check_file(filename, content_type, content, engine.settings.max_upload_bytes)
    checksum = hashlib.sha256(content).hexdigest()
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        task, _instance = _load(tx, task_id)
        access.check_task_actionable(actor, task, "attach documents to")
        if task.status != TaskStatus.OPEN:
            raise InvalidState(f"task {task_id} is {task.status.value}; documents are attached to open tasks")
        record = AttachmentRecord(
            id=engine._new_id(),
            task_id=task.id,
            instance_id=task.instance_id,
            filename=name,
            content_type=stored_type,
            size=len(content),
            sha256=checksum,
            uploaded_by=actor.login,
            organisation=actor.organisation,
            at=now,
        )
        tx.insert_attachment(record, content)
        tx.append_audit(
            [
                AuditEntry(
                    now,
                    actor.login,
                    actor.organisation,
                    "task.attachment_added",
                    instance_id=task.instance_id,
                    task_id=task.id,
                    element_id=task.element_id,
                    details={"attachment": record.id, "filename": name, "size": len(content)},
                    data_digest=checksum,
                )
            ]
        )
        return record


def attachments(engine: Engine, task_id: str, actor: Actor) -> list[AttachmentRecord]:
    with engine.store.transaction() as tx:
        task, instance = _load(tx, task_id)
        check_document_visible(actor, task, instance)
        return tx.list_attachments(task_id=task_id)


def instance_documents(
    engine: Engine, instance_id: str, actor: Actor
) -> tuple[list[AttachmentRecord], list[CommentRecord]]:
    """The documents and comments of an instance that the actor may read."""
    with engine.store.transaction() as tx:
        instance = tx.get_instance(instance_id)
        if instance is None:
            raise NotFound("instance", instance_id)
        access.check_instance_visible(actor, instance, tx.task_organisations(instance_id))
        files = tx.list_attachments(instance_id=instance_id)
        notes = tx.list_comments(instance_id=instance_id)
        task_ids = {a.task_id for a in files} | {c.task_id for c in notes}
        readable = set()
        for task_id in task_ids:
            task = tx.get_task(task_id)
            if task is not None and access.can_see_documents(actor, task, instance):
                readable.add(task_id)
        return [a for a in files if a.task_id in readable], [c for c in notes if c.task_id in readable]


def download(engine: Engine, attachment_id: str, actor: Actor) -> tuple[AttachmentRecord, bytes]:
    with engine.store.transaction() as tx:
        found = tx.get_attachment(attachment_id)
        if found is None:
            raise NotFound("attachment", attachment_id)
        record, content = found
        task, instance = _load(tx, record.task_id)
        if not access.can_see_documents(actor, task, instance):
            raise NotFound("attachment", attachment_id)
    if hashlib.sha256(content).hexdigest() != record.sha256 or len(content) != record.size:
        raise AttachmentCorrupt(f"attachment {attachment_id} does not match its stored SHA-256; it was not served")
    return record, content
