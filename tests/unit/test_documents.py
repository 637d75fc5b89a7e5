"""Comments and attached documents of tasks: validation of uploads, checksums, and who may read
and write them (a municipality never sees another municipality's documents)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest

from engine.clock import VirtualClock
from engine.directory import Actor, Role
from engine.documents import MAX_COMMENT, clean_filename
from engine.engine import Engine
from engine.errors import (
    AttachmentCorrupt,
    BadInput,
    InvalidState,
    NotFound,
    NotPermitted,
    TooLarge,
    UnsupportedType,
)
from engine.ports import AuditQuery
from engine.records import TaskRecord
from tests.bpmn import document, flows, user_task
from tests.conftest import ADMIN, COORDINATOR, KOPEYSK, MINISTRY, TROITSK

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n"
PDF_TYPE = "application/pdf"
DOCX = b"PK\x03\x04" + b"\x00" * 60
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DOC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 60
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20

# An application: a МОУО applies, the coordinator reviews (as in the contract process).
APPLICATION = document(
    '<bpmn:startEvent id="start"/>'
    + user_task("apply", "Подать заявку", 'camunda:candidateGroups="mouo"')
    + user_task("review", "Рассмотреть заявку", 'camunda:candidateGroups="coordinator"')
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "apply", "review", "end"),
    "application",
    attrs='camunda:candidateStarterGroups="mouo"',
)


def _for(org: str) -> str:
    return (
        '<bpmn:extensionElements><camunda:properties><camunda:property name="organisation" '
        f'value="{org}"/></camunda:properties></bpmn:extensionElements>'
    )


# A survey the coordinator sends to two municipalities at once.
SURVEY = document(
    '<bpmn:startEvent id="start"/><bpmn:parallelGateway id="fork"/>'
    + user_task("answer_troitsk", "Ответ Троицка", 'camunda:candidateGroups="mouo"', _for("troitsk-go"))
    + user_task("answer_kopeysk", "Ответ Копейска", 'camunda:candidateGroups="mouo"', _for("kopeysk-go"))
    + '<bpmn:parallelGateway id="join"/><bpmn:endEvent id="end"/>'
    + flows("start", "fork")
    + flows("fork", "answer_troitsk", "join", prefix="a")
    + flows("fork", "answer_kopeysk", "join", prefix="b")
    + flows("join", "end", prefix="c"),
    "survey",
    attrs='camunda:candidateStarterGroups="coordinator"',
)

OTHER_TROITSK = Actor("troitsk-2", "troitsk-go", frozenset({Role.MOUO}))
CHELYABINSK = Actor("chelyabinsk-go", "chelyabinsk-go", frozenset({Role.MOUO}))


def task_for(engine: Engine, actor: Actor, element_id: str) -> TaskRecord:
    [view] = [v for v in engine.tasks(actor) if v.task.element_id == element_id]
    return view.task


@pytest.fixture
def application(engine: Engine) -> TaskRecord:
    """Troitsk's open application task."""
    engine.deploy(APPLICATION, "application.bpmn", ADMIN)
    engine.start("application", TROITSK)
    return task_for(engine, TROITSK, "apply")


# -- comments ---------------------------------------------------------------------------------------


def test_a_comment_is_stored_stripped_and_audited(engine: Engine, application: TaskRecord, clock) -> None:
    comment = engine.add_comment(application.id, TROITSK, "  Прикладываем устав, см. п. 3  \n")
    assert comment.text == "Прикладываем устав, см. п. 3"
    assert (comment.task_id, comment.instance_id) == (application.id, application.instance_id)
    assert (comment.author, comment.organisation, comment.at) == ("troitsk-go", "troitsk-go", clock.now())
    assert engine.comments(application.id, TROITSK) == [comment]
    [entry] = engine.audit(ADMIN, AuditQuery(action="task.commented"))
    assert entry.task_id == application.id and entry.element_id == "apply" and entry.actor == "troitsk-go"
    assert entry.details == {"comment": comment.id, "length": len(comment.text)}
    assert "устав" not in repr(entry), "the audit trail does not copy the text"


@pytest.mark.parametrize("text", ["", "   \n\t ", "x" * (MAX_COMMENT + 1)])
def test_empty_and_overlong_comments_are_refused(engine: Engine, application: TaskRecord, text: str) -> None:
    with pytest.raises(BadInput) as caught:
        engine.add_comment(application.id, TROITSK, text)
    assert caught.value.field == "text"
    assert engine.comments(application.id, TROITSK) == []
    assert not engine.audit(ADMIN, AuditQuery(action="task.commented"))


def test_a_comment_of_the_maximum_length_is_accepted(engine: Engine, application: TaskRecord) -> None:
    assert len(engine.add_comment(application.id, TROITSK, "я" * MAX_COMMENT).text) == MAX_COMMENT


def test_comments_are_read_by_whoever_sees_the_task(engine: Engine, application: TaskRecord, clock) -> None:
    first = engine.add_comment(application.id, TROITSK, "Заявка готова")
    clock.advance(timedelta(minutes=1))
    second = engine.add_comment(application.id, COORDINATOR, "Не хватает устава")
    for actor in (TROITSK, OTHER_TROITSK, COORDINATOR, MINISTRY, ADMIN):
        assert [c.id for c in engine.comments(application.id, actor)] == [first.id, second.id], actor
    assert second.author == "coordinator" and second.organisation == "rcoko"


def test_another_municipality_neither_reads_nor_writes_comments(engine: Engine, application: TaskRecord) -> None:
    engine.add_comment(application.id, TROITSK, "Внутреннее")
    with pytest.raises(NotFound):
        engine.comments(application.id, KOPEYSK)
    with pytest.raises(NotFound):
        engine.add_comment(application.id, KOPEYSK, "Чужой комментарий")
    assert [c.text for c in engine.comments(application.id, TROITSK)] == ["Внутреннее"]
    with pytest.raises(NotFound):
        engine.comments("no-such-task", ADMIN)
    with pytest.raises(NotFound):
        engine.add_comment("no-such-task", ADMIN, "x")


def test_the_applicant_reads_the_coordinators_review_comments(engine: Engine, application: TaskRecord) -> None:
    engine.complete(application.id, TROITSK, {})
    review = task_for(engine, COORDINATOR, "review")
    assert review.organisation == "rcoko"
    note = engine.add_comment(review.id, COORDINATOR, "Устав не подписан")
    # The МОУО that applied follows the review of its own application...
    assert engine.comments(review.id, TROITSK) == [note]
    # ...another municipality does not.
    with pytest.raises(NotFound):
        engine.comments(review.id, KOPEYSK)
    # The finished application task's history stays readable by its organisation.
    assert engine.comments(application.id, TROITSK) == []


# -- attachments: validation ---------------------------------------------------------------------------


def test_an_attachment_is_stored_with_its_checksum(engine: Engine, application: TaskRecord, clock) -> None:
    record = engine.add_attachment(application.id, TROITSK, "Устав.pdf", PDF_TYPE, PDF)
    assert record.filename == "Устав.pdf" and record.content_type == PDF_TYPE and record.size == len(PDF)
    assert record.sha256 == hashlib.sha256(PDF).hexdigest()
    assert (record.task_id, record.instance_id) == (application.id, application.instance_id)
    assert (record.uploaded_by, record.organisation, record.at) == ("troitsk-go", "troitsk-go", clock.now())
    assert engine.attachments(application.id, TROITSK) == [record]
    downloaded, content = engine.attachment(record.id, TROITSK)
    assert downloaded == record and content == PDF
    [entry] = engine.audit(ADMIN, AuditQuery(action="task.attachment_added"))
    assert entry.data_digest == record.sha256 and entry.task_id == application.id
    assert entry.details == {"attachment": record.id, "filename": "Устав.pdf", "size": len(PDF)}


def test_the_size_limit_comes_from_the_settings(engine: Engine, application: TaskRecord) -> None:
    engine.settings = engine.settings.with_(max_upload_bytes=64)
    content = b"%PDF-" + b"x" * 59
    assert engine.add_attachment(application.id, TROITSK, "ok.pdf", PDF_TYPE, content).size == 64
    with pytest.raises(TooLarge) as caught:
        engine.add_attachment(application.id, TROITSK, "big.pdf", PDF_TYPE, content + b"x")
    assert (caught.value.size, caught.value.limit, caught.value.field) == (65, 64, "file")
    assert [a.filename for a in engine.attachments(application.id, TROITSK)] == ["ok.pdf"]


@pytest.mark.parametrize(
    ("filename", "content_type", "content"),
    [
        ("setup.exe", "application/octet-stream", b"MZ\x90\x00"),
        ("script.js", "text/javascript", b"alert(1)"),
        ("no-extension", "application/pdf", PDF),
        ("page.html", "text/html", b"<html></html>"),
    ],
)
def test_unsupported_extensions_are_refused(
    engine: Engine, application: TaskRecord, filename: str, content_type: str, content: bytes
) -> None:
    with pytest.raises(UnsupportedType) as caught:
        engine.add_attachment(application.id, TROITSK, filename, content_type, content)
    assert caught.value.field == "file" and "not accepted" in caught.value.message
    assert engine.attachments(application.id, TROITSK) == []


@pytest.mark.parametrize(
    ("filename", "content_type", "content"),
    [
        ("scan.pdf", "image/png", PDF),  # the declared type contradicts the extension
        ("scan.png", PDF_TYPE, PNG),
        ("letter.docx", "application/msword", DOCX),
    ],
)
def test_a_declared_type_must_match_the_extension(
    engine: Engine, application: TaskRecord, filename: str, content_type: str, content: bytes
) -> None:
    with pytest.raises(UnsupportedType) as caught:
        engine.add_attachment(application.id, TROITSK, filename, content_type, content)
    assert "declared" in caught.value.message
    assert engine.attachments(application.id, TROITSK) == []


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("report.pdf", b"just some text pretending to be a PDF"),
        ("report.pdf", PNG),
        ("letter.docx", PDF),
        ("letter.doc", DOCX),  # an OOXML file renamed to .doc
        ("table.xlsx", b"plain text"),
        ("photo.jpg", PNG),
        ("photo.png", b"\xff\xd8\xff\xe0JFIF"),
    ],
)
def test_the_content_must_match_its_type(
    engine: Engine, application: TaskRecord, filename: str, content: bytes
) -> None:
    with pytest.raises(UnsupportedType) as caught:
        engine.add_attachment(application.id, TROITSK, filename, "application/octet-stream", content)
    assert "content" in caught.value.message
    assert engine.attachments(application.id, TROITSK) == []


@pytest.mark.parametrize(
    ("filename", "declared", "content", "stored"),
    [
        ("scan.pdf", "application/octet-stream", PDF, PDF_TYPE),  # browsers' "unknown type"
        ("scan.pdf", "", PDF, PDF_TYPE),
        ("scan.PDF", "Application/PDF; charset=binary", PDF, PDF_TYPE),
        ("letter.docx", DOCX_TYPE, DOCX, DOCX_TYPE),
        ("letter.doc", "application/msword", DOC, "application/msword"),
        ("photo.jpeg", "image/jpeg", b"\xff\xd8\xff\xe0JFIF", "image/jpeg"),
        ("list.csv", "text/plain", "ОО;Число учащихся\nШкола №1;512\n".encode(), "text/csv"),
        ("readme.txt", "text/plain; charset=utf-8", "Пояснительная записка".encode(), "text/plain"),
    ],
)
def test_accepted_files_are_stored_with_the_canonical_type(
    engine: Engine, application: TaskRecord, filename: str, declared: str, content: bytes, stored: str
) -> None:
    record = engine.add_attachment(application.id, TROITSK, filename, declared, content)
    assert record.content_type == stored
    assert engine.attachment(record.id, TROITSK)[1] == content


@pytest.mark.parametrize("filename", ["list.csv", "readme.txt"])
def test_text_files_must_be_utf8(engine: Engine, application: TaskRecord, filename: str) -> None:
    with pytest.raises(UnsupportedType) as caught:
        engine.add_attachment(application.id, TROITSK, filename, "text/plain", "Школа №1;512".encode("cp1251"))
    assert "UTF-8" in caught.value.message
    assert engine.attachments(application.id, TROITSK) == []


def test_an_empty_file_is_refused(engine: Engine, application: TaskRecord) -> None:
    with pytest.raises(BadInput) as caught:
        engine.add_attachment(application.id, TROITSK, "empty.txt", "text/plain", b"")
    assert caught.value.field == "file" and "empty" in caught.value.message


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("C:\\Users\\Иванова\\Desktop\\Устав.pdf", "Устав.pdf"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("/var/tmp/../scan.pdf", "scan.pdf"),
        ("re\x00po\x1brt\r\n.pdf", "report.pdf"),
        ("\u202eexe.pdf", "exe.pdf"),  # a right-to-left override is a format character
        ("...hidden.pdf", "hidden.pdf"),
        ("  spaced name.pdf  ", "spaced name.pdf"),
        ("Отче\u0308т.pdf", "Отчёт.pdf"),  # decomposed ё is normalised to NFC
    ],
)
def test_file_names_are_cleaned(engine: Engine, application: TaskRecord, given: str, kept: str) -> None:
    assert clean_filename(given) == kept
    record = engine.add_attachment(application.id, TROITSK, given, "application/octet-stream", PDF)
    assert record.filename == kept
    assert engine.attachments(application.id, TROITSK)[0].filename == kept


@pytest.mark.parametrize("given", ["", "dir/", "C:\\dir\\", "\x00\x01", "...", "я" * 127 + ".pdf"])
def test_file_names_that_clean_to_nothing_or_are_too_long_are_refused(
    engine: Engine, application: TaskRecord, given: str
) -> None:
    with pytest.raises(BadInput) as caught:
        engine.add_attachment(application.id, TROITSK, given, "application/octet-stream", PDF)
    assert caught.value.field == "file"
    assert engine.attachments(application.id, TROITSK) == []


def test_a_corrupted_document_is_not_served(engine: Engine, application: TaskRecord) -> None:
    record = engine.add_attachment(application.id, TROITSK, "scan.pdf", PDF_TYPE, PDF)
    with engine.store.transaction() as tx:
        # Simulate silent corruption: a row whose content no longer matches its checksum or size.
        tx.insert_attachment(replace(record, id="corrupt-hash", sha256="0" * 64), PDF)
        tx.insert_attachment(replace(record, id="corrupt-bytes"), PDF[:-1] + b"!")
        tx.insert_attachment(replace(record, id="corrupt-size", size=len(PDF) + 1), PDF)
    for attachment_id in ("corrupt-hash", "corrupt-bytes", "corrupt-size"):
        with pytest.raises(AttachmentCorrupt):
            engine.attachment(attachment_id, TROITSK)
    assert engine.attachment(record.id, TROITSK)[1] == PDF
    with pytest.raises(NotFound):
        engine.attachment("no-such-attachment", ADMIN)


# -- attachments: who may attach and read -----------------------------------------------------------------


def test_only_who_may_act_on_the_task_attaches(engine: Engine, application: TaskRecord) -> None:
    with pytest.raises(NotFound):
        engine.add_attachment(application.id, KOPEYSK, "scan.pdf", PDF_TYPE, PDF)
    for overseer in (COORDINATOR, MINISTRY):  # they read the documents but the task is not theirs
        with pytest.raises((NotFound, NotPermitted)):
            engine.add_attachment(application.id, overseer, "scan.pdf", PDF_TYPE, PDF)
    engine.claim(application.id, OTHER_TROITSK)
    with pytest.raises(NotPermitted):
        engine.add_attachment(application.id, TROITSK, "scan.pdf", PDF_TYPE, PDF)
    assert engine.attachments(application.id, TROITSK) == []
    assert engine.add_attachment(application.id, OTHER_TROITSK, "scan.pdf", PDF_TYPE, PDF).uploaded_by == "troitsk-2"
    with pytest.raises(NotFound):
        engine.add_attachment("no-such-task", ADMIN, "scan.pdf", PDF_TYPE, PDF)


def test_a_completed_task_takes_no_more_documents(engine: Engine, application: TaskRecord) -> None:
    before = engine.add_attachment(application.id, TROITSK, "scan.pdf", PDF_TYPE, PDF)
    engine.complete(application.id, TROITSK, {})
    with pytest.raises(InvalidState):
        engine.add_attachment(application.id, TROITSK, "late.pdf", PDF_TYPE, PDF)
    assert engine.attachments(application.id, TROITSK) == [before]
    assert engine.attachment(before.id, TROITSK)[1] == PDF


def test_another_municipality_cannot_list_or_download(engine: Engine, application: TaskRecord) -> None:
    record = engine.add_attachment(application.id, TROITSK, "scan.pdf", PDF_TYPE, PDF)
    with pytest.raises(NotFound):
        engine.attachments(application.id, KOPEYSK)
    with pytest.raises(NotFound) as caught:
        engine.attachment(record.id, KOPEYSK)
    assert caught.value.kind == "attachment"
    with pytest.raises(NotFound):
        engine.instance_documents(application.instance_id, KOPEYSK)
    for reader in (TROITSK, OTHER_TROITSK, COORDINATOR, MINISTRY, ADMIN):
        assert engine.attachment(record.id, reader)[1] == PDF
        assert engine.attachments(application.id, reader) == [record]


def test_the_applicant_reads_documents_of_the_review_of_its_application(
    engine: Engine, application: TaskRecord, clock: VirtualClock
) -> None:
    mine = engine.add_attachment(application.id, TROITSK, "Заявка.pdf", PDF_TYPE, PDF)
    engine.complete(application.id, TROITSK, {})
    clock.advance(timedelta(hours=1))
    review = task_for(engine, COORDINATOR, "review")
    remarks = engine.add_attachment(review.id, COORDINATOR, "Замечания.docx", DOCX_TYPE, DOCX)
    note = engine.add_comment(review.id, COORDINATOR, "См. замечания")
    assert engine.attachments(review.id, TROITSK) == [remarks]
    assert engine.attachment(remarks.id, TROITSK)[1] == DOCX
    files, notes = engine.instance_documents(application.instance_id, TROITSK)
    assert [f.id for f in files] == [mine.id, remarks.id] and notes == [note]
    with pytest.raises(NotFound):
        engine.attachment(remarks.id, KOPEYSK)


def test_instance_documents_show_each_municipality_only_its_own(engine: Engine, clock: VirtualClock) -> None:
    engine.deploy(SURVEY, "survey.bpmn", ADMIN)
    iid = engine.start("survey", COORDINATOR).instance.id
    troitsk_task = task_for(engine, TROITSK, "answer_troitsk")
    kopeysk_task = task_for(engine, KOPEYSK, "answer_kopeysk")
    assert (troitsk_task.organisation, kopeysk_task.organisation) == ("troitsk-go", "kopeysk-go")
    t_file = engine.add_attachment(troitsk_task.id, TROITSK, "troitsk.csv", "text/csv", b"a;b\n1;2\n")
    clock.advance(timedelta(seconds=1))
    k_file = engine.add_attachment(kopeysk_task.id, KOPEYSK, "kopeysk.csv", "text/csv", b"a;b\n3;4\n")
    t_note = engine.add_comment(troitsk_task.id, TROITSK, "Троицк")
    k_note = engine.add_comment(kopeysk_task.id, KOPEYSK, "Копейск")

    assert engine.instance_documents(iid, TROITSK) == ([t_file], [t_note])
    assert engine.instance_documents(iid, KOPEYSK) == ([k_file], [k_note])
    for overseer in (COORDINATOR, MINISTRY, ADMIN):
        files, notes = engine.instance_documents(iid, overseer)
        assert [f.id for f in files] == [t_file.id, k_file.id]
        assert {n.id for n in notes} == {t_note.id, k_note.id}
    with pytest.raises(NotFound):
        engine.instance_documents(iid, CHELYABINSK)
    with pytest.raises(NotFound):
        engine.instance_documents("no-such-instance", ADMIN)
    # Each municipality is also refused the other's task directly.
    with pytest.raises(NotFound):
        engine.attachment(k_file.id, TROITSK)
    with pytest.raises(NotFound):
        engine.comments(troitsk_task.id, KOPEYSK)
