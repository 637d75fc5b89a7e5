"""The SMTP adapter against a real SMTP server (aiosmtpd) on loopback.

The server records only the messages it ACCEPTS: ``handle_DATA`` runs after the terminator.
The kill test SIGKILLs a sending child process at random moments and checks the promise of
``webhooks.email``: a message accepted by the server is always recorded as sent by us.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import random
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from engine.clock import VirtualClock
from engine.errors import AggloError, BadInput
from engine.settings import Settings
from webhooks.email import Email, MailError, SmtpMailer, SmtpSettings, build_message

ROOT = Path(__file__).resolve().parents[2]
SUBJECT = "Напоминание: до срока «Мониторинг» осталось 3 рабочих дня"
TEXT = "Здравствуйте!\n.Строка с точкой в начале\n..и с двумя\nКонец.\n"
HTML = "<p>Здравствуйте!</p>\n<p>Срок — <b>21.08.2019 (среда)</b></p>\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_email(n: int = 1, **changes: Any) -> Email:
    fields: dict[str, Any] = {
        "to": "Иванов Иван <ivanov@troitsk.example>",
        "subject": SUBJECT,
        "text": TEXT,
        "html": HTML,
        "message_id": f"<reminder-{n}@agglo>",
        "headers": {"X-Agglo-Task": str(n)},
    }
    fields.update(changes)
    return Email(**fields)


def parse(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


class Recorder:
    """An aiosmtpd handler that records every accepted message, and can be told to refuse."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted: list[dict[str, Any]] = []
        self.data_reply = "250 2.0.0 Ok: queued"
        self.rcpt_replies: dict[str, str] = {}
        self.mail_replies: list[str] = []  # replies to the next MAIL commands, then "250 OK"

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.mail_replies:
            return self.mail_replies.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply == "drop":  # vanish without a reply, as a crashing server would
            server.transport.close()
            return "250 unreachable"
        if not self.data_reply.startswith("250"):
            return self.data_reply
        with self.lock:
            self.accepted.append(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": list(envelope.rcpt_tos),
                    "content": envelope.content,
                    "message_id": parse(envelope.content)["Message-ID"],
                    "peer": session.peer,
                    # session.ssl is set by STARTTLS, the transport's ssl_object by implicit TLS.
                    "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
                    "authenticated": session.authenticated,
                }
            )
        return self.data_reply

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def message_ids(self) -> list[str]:
        with self.lock:
            return [m["message_id"] for m in self.accepted]


class Authenticator:
    def __init__(self, user: bytes = b"agglo", password: bytes = b"s3cret") -> None:
        self.user, self.password = user, password
        self.mechanisms: list[str] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        self.mechanisms.append(mechanism)
        ok = isinstance(auth_data, LoginPassword) and auth_data == (self.user, self.password)
        if not ok:  # handled=False: let aiosmtpd answer 535
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data)


Server = tuple[Recorder, int]


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    controllers: list[Controller] = []

    def start(handler: Recorder | None = None, **kwargs: Any) -> Server:
        handler = handler or Recorder()
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


def settings(port: int, **changes: Any) -> SmtpSettings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "user": "",
        "password": "",
        "sender": "Агломерация <agglo@agglo.example>",
        "timeout": 5.0,
    }
    base.update(changes)
    return SmtpSettings(**base)


def wait_until(condition: Callable[[], bool], timeout: float = 3.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


# -- certificates ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: with ``cryptography`` if installed, else the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("neither the cryptography package nor the openssl CLI is available to make a certificate")
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True,
        )  # fmt: skip
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


# -- the message ------------------------------------------------------------------------------


def test_message_arrives_with_headers_russian_subject_and_both_parts(start_server: Callable[..., Server]) -> None:
    recorder, port = start_server()
    clock = VirtualClock(datetime(2019, 8, 19, 4, 30, tzinfo=UTC))
    with SmtpMailer(settings(port), clock=clock) as mailer:
        reply = mailer.send(make_email(42), lambda: None)
    assert reply.startswith("2.0.0 Ok")
    assert recorder.count() == 1
    got = recorder.accepted[0]
    assert got["mail_from"] == "agglo@agglo.example"
    assert got["rcpt_tos"] == ["ivanov@troitsk.example"]
    message = parse(got["content"])
    assert message["Subject"] == SUBJECT
    assert message["Message-ID"] == "<reminder-42@agglo>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Agglo-Task"] == "42"
    assert message["From"].addresses[0].display_name == "Агломерация"
    assert message["To"].addresses[0].addr_spec == "ivanov@troitsk.example"
    assert message["To"].addresses[0].display_name == "Иванов Иван"
    # The Date header is the clock's instant, written in the region's time (UTC+5).
    assert message["Date"].datetime == datetime(2019, 8, 19, 9, 30, tzinfo=message["Date"].datetime.tzinfo)
    assert message["Date"].datetime.utcoffset() == timedelta(hours=5)
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert plain.get_content_charset() == "utf-8"
    assert plain.get_content().replace("\r\n", "\n") == TEXT  # leading dots survived dot-stuffing
    assert html.get_content().replace("\r\n", "\n") == HTML


def test_text_only_message_and_idn_domain(start_server: Callable[..., Server]) -> None:
    recorder, port = start_server()
    with SmtpMailer(settings(port)) as mailer:
        mailer.send(make_email(1, html=None, to="uo@школа.рф"), lambda: None)
    got = recorder.accepted[0]
    assert got["rcpt_tos"] == ["uo@xn--80atdl2c.xn--p1ai"]
    message = parse(got["content"])
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == TEXT


def test_wire_is_seven_bit_so_no_smtputf8_or_8bitmime_is_needed() -> None:
    message = build_message(make_email(), "agglo@agglo.example")
    assert message.as_bytes().isascii()


# -- the commit point -------------------------------------------------------------------------


class WireLog:
    """Records what the mailer writes to the socket, interleaved with the commit."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, bytes]] = []
        original = smtplib.SMTP.send

        def send(smtp: smtplib.SMTP, data: bytes | str) -> None:
            self.events.append(("send", data if isinstance(data, bytes) else data.encode()))
            original(smtp, data)

        monkeypatch.setattr(smtplib.SMTP, "send", send)

    def commit(self) -> None:
        self.events.append(("commit", b""))


def test_commit_sent_runs_after_the_body_and_before_the_server_accepts(
    start_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, port = start_server()
    wire = WireLog(monkeypatch)
    seen_at_commit: list[int] = []

    def commit_sent() -> None:
        wire.commit()
        # The server holds the whole body now; give it time to (wrongly) accept before the terminator.
        time.sleep(0.2)
        seen_at_commit.append(recorder.count())

    with SmtpMailer(settings(port)) as mailer:
        mailer.send(make_email(7), commit_sent)
        assert seen_at_commit == [0]
        assert recorder.count() == 1

        kinds = [kind for kind, _ in wire.events]
        at = kinds.index("commit")
        before, after = wire.events[at - 1][1], wire.events[at + 1][1]
        assert before.startswith(b"From:") and b"Message-ID: <reminder-7@agglo>" in before
        assert not before.endswith(b"\r\n")  # the terminator's CRLF is held back as well
        assert after == b"\r\n.\r\n"  # one write of five bytes is all that follows the commit
        assert kinds[at + 2 :] == []  # and then only the reply is read
        assert wire.events[at - 2][1] == b"DATA\r\n"
        # The server got exactly the bytes sent before the commit (dot-unstuffed).
        assert recorder.accepted[0]["content"].replace(b"\r\n..", b"\r\n.") == before.replace(b"\r\n..", b"\r\n.") + (
            b"\r\n"
        )


def test_when_commit_sent_raises_the_server_never_accepts(
    start_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, port = start_server()
    wire = WireLog(monkeypatch)

    def failing_commit() -> None:
        raise RuntimeError("database is down")

    with SmtpMailer(settings(port)) as mailer:
        with pytest.raises(RuntimeError, match="database is down"):
            mailer.send(make_email(1), failing_commit)
        assert all(data != b"\r\n.\r\n" for _, data in wire.events)
        time.sleep(0.3)  # a server that accepted on connection close would have done so by now
        assert recorder.count() == 0
        # The mailer is usable again: it reconnects.
        mailer.send(make_email(2), lambda: None)
    assert recorder.message_ids() == ["<reminder-2@agglo>"]


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "permanent"), [("550 5.1.1 No such mailbox", True), ("450 4.2.1 Busy", False)])
def test_refused_recipient(start_server: Callable[..., Server], reply: str, permanent: bool) -> None:
    recorder, port = start_server()
    recorder.rcpt_replies["gone@troitsk.example"] = reply
    committed: list[bool] = []
    with SmtpMailer(settings(port)) as mailer:
        with pytest.raises(MailError) as caught:
            mailer.send(make_email(1, to="gone@troitsk.example"), lambda: committed.append(True))
        error = caught.value
        assert isinstance(error, AggloError)
        assert error.permanent is permanent
        assert error.smtp_code == int(reply[:3])
        assert error.committed is False and committed == []
        assert reply[4:] in str(error) and "<reminder-1@agglo>" in str(error)
        # The transaction was reset: the same connection carries the next message.
        mailer.send(make_email(2), lambda: None)
    assert recorder.message_ids() == ["<reminder-2@agglo>"]


@pytest.mark.parametrize(
    ("reply", "permanent"), [("554 5.7.1 Rejected as spam", True), ("451 4.3.0 Try again later", False)]
)
def test_refused_at_end_of_data(start_server: Callable[..., Server], reply: str, permanent: bool) -> None:
    recorder, port = start_server()
    recorder.data_reply = reply
    committed: list[bool] = []
    with SmtpMailer(settings(port)) as mailer, pytest.raises(MailError) as caught:
        mailer.send(make_email(1), lambda: committed.append(True))
    assert caught.value.permanent is permanent
    assert caught.value.smtp_code == int(reply[:3])
    # The refusal came after the commit: the caller must reopen the delivery.
    assert caught.value.committed is True and committed == [True]
    assert caught.value.to_dict()["error"] == "mail_error"


def test_connection_lost_after_the_commit_is_reported_as_committed(start_server: Callable[..., Server]) -> None:
    recorder, port = start_server()
    recorder.data_reply = "drop"
    with SmtpMailer(settings(port)) as mailer, pytest.raises(MailError, match="may or may not") as caught:
        mailer.send(make_email(1), lambda: None)
    assert caught.value.committed is True and caught.value.permanent is False


def test_connection_refused_is_a_temporary_mail_error() -> None:
    with SmtpMailer(settings(free_port())) as mailer, pytest.raises(MailError, match="connect failed") as caught:
        mailer.send(make_email(), lambda: pytest.fail("must not commit"))
    assert caught.value.permanent is False


# -- TLS and AUTH -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_auth_plain_over_loopback_without_tls(start_server: Callable[..., Server]) -> None:
    auth = Authenticator()
    recorder, port = start_server(authenticator=auth, auth_required=True, auth_require_tls=False)
    with SmtpMailer(settings(port, user="agglo", password="s3cret")) as mailer:
        mailer.send(make_email(), lambda: None)
    assert auth.mechanisms == ["PLAIN"]
    assert recorder.accepted[0]["authenticated"] is True


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_wrong_password_is_a_temporary_error(start_server: Callable[..., Server]) -> None:
    recorder, port = start_server(authenticator=Authenticator(), auth_required=True, auth_require_tls=False)
    with SmtpMailer(settings(port, user="agglo", password="wrong")) as mailer, pytest.raises(MailError) as caught:
        mailer.send(make_email(), lambda: pytest.fail("must not commit"))
    # A 535 is about our configuration, not this message: the delivery should wait, not be dropped.
    assert caught.value.smtp_code == 535 and caught.value.permanent is False
    assert "AUTH refused" in str(caught.value)
    assert recorder.count() == 0


def test_starttls_then_auth(
    start_server: Callable[..., Server], server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    auth = Authenticator()
    recorder, port = start_server(authenticator=auth, auth_required=True, tls_context=server_tls, require_starttls=True)
    config = settings(port, tls="starttls", user="agglo", password="s3cret")
    with SmtpMailer(config, ssl_context=client_tls) as mailer:
        mailer.send(make_email(1), lambda: None)
        mailer.send(make_email(2), lambda: None)
    assert [m["tls"] for m in recorder.accepted] == [True, True]
    assert [m["authenticated"] for m in recorder.accepted] == [True, True]
    assert auth.mechanisms == ["PLAIN"]  # one connection, one AUTH


def test_starttls_with_an_untrusted_certificate_is_refused(
    start_server: Callable[..., Server], server_tls: ssl.SSLContext
) -> None:
    recorder, port = start_server(tls_context=server_tls, require_starttls=True)
    with SmtpMailer(settings(port, tls="starttls")) as mailer, pytest.raises(MailError, match="STARTTLS") as caught:
        mailer.send(make_email(), lambda: pytest.fail("must not commit"))
    assert caught.value.permanent is False
    assert recorder.count() == 0


def test_implicit_tls(
    start_server: Callable[..., Server], server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    recorder, port = start_server(ssl_context=server_tls)
    with SmtpMailer(settings(port, tls="ssl"), ssl_context=client_tls) as mailer:
        mailer.send(make_email(), lambda: None)
    assert recorder.accepted[0]["tls"] is True


# -- the connection ---------------------------------------------------------------------------


def test_one_connection_carries_a_batch(start_server: Callable[..., Server]) -> None:
    recorder, port = start_server()
    with SmtpMailer(settings(port)) as mailer:
        for n in range(5):
            mailer.send(make_email(n), lambda: None)
    assert recorder.count() == 5
    assert len({m["peer"] for m in recorder.accepted}) == 1


def test_reconnects_after_the_server_dropped_an_idle_connection(start_server: Callable[..., Server]) -> None:
    recorder, port = start_server(timeout=0.3)  # the server closes connections idle for 0.3 s
    with SmtpMailer(settings(port)) as mailer:
        mailer.send(make_email(1), lambda: None)
        time.sleep(0.8)
        committed: list[bool] = []
        mailer.send(make_email(2), lambda: committed.append(True))
        assert committed == [True]
    assert recorder.message_ids() == ["<reminder-1@agglo>", "<reminder-2@agglo>"]
    first, second = (m["peer"] for m in recorder.accepted)
    assert first != second


def test_reconnects_when_a_reused_connection_answers_421(start_server: Callable[..., Server]) -> None:
    recorder, port = start_server()
    with SmtpMailer(settings(port)) as mailer:
        mailer.send(make_email(1), lambda: None)
        recorder.mail_replies.append("421 4.4.2 Idle too long, closing")
        mailer.send(make_email(2), lambda: None)
    assert recorder.message_ids() == ["<reminder-1@agglo>", "<reminder-2@agglo>"]
    assert len({m["peer"] for m in recorder.accepted}) == 2


def test_a_fresh_connection_is_not_retried(start_server: Callable[..., Server]) -> None:
    recorder, port = start_server()
    recorder.mail_replies.append("421 4.3.2 Shutting down")
    with SmtpMailer(settings(port)) as mailer, pytest.raises(MailError, match=r"421 4\.3\.2") as caught:
        mailer.send(make_email(1), lambda: pytest.fail("must not commit"))
    assert caught.value.permanent is False
    assert recorder.count() == 0


# -- refusing bad input before any I/O --------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"subject": "Срок\r\nBcc: spy@evil.example"}, "Subject contains a line break"),
        ({"subject": "Срок\nBcc: spy@evil.example"}, "Subject contains a line break"),
        ({"to": "a@troitsk.example\r\nBcc: spy@evil.example"}, "To contains a line break"),
        ({"headers": {"X-Agglo-Task": "1\r\nBcc: spy@evil.example"}}, "header 'X-Agglo-Task' contains a line break"),
        ({"headers": {"X-Bad\r\nBcc": "x"}}, "not a valid field name"),
        ({"headers": {"Bcc": "spy@evil.example"}}, "may not be replaced"),
        ({"headers": {"message-id": "<other@agglo>"}}, "may not be replaced"),
        ({"to": "a@troitsk.example, b@kopeysk.example"}, "exactly one e-mail address"),
        ({"to": "not an address"}, "exactly one e-mail address|no local part"),
        ({"to": "иванов@troitsk.example"}, "SMTPUTF8"),
        ({"message_id": "reminder-1@agglo"}, "Message-ID must look like"),
        ({"message_id": "<reminder-1@agglo>\r\nBcc: x@y"}, "Message-ID must look like"),
    ],
)
def test_bad_headers_are_refused_before_connecting(changes: dict[str, Any], match: str) -> None:
    # No server listens on this port: the refusal must come before any connection attempt.
    with SmtpMailer(settings(free_port())) as mailer, pytest.raises(MailError, match=match) as caught:
        mailer.send(make_email(1, **changes), lambda: pytest.fail("must not commit"))
    assert caught.value.permanent is True


def test_settings() -> None:
    app = Settings(smtp_host="mail.example", smtp_port=465, smtp_tls="SSL", smtp_user="u", smtp_password="hunter2")
    smtp = SmtpSettings.from_settings(app)
    assert (smtp.host, smtp.port, smtp.tls, smtp.user, smtp.sender) == (
        "mail.example",
        465,
        "ssl",
        "u",
        "agglo@localhost",
    )
    assert smtp.password == "hunter2" and "hunter2" not in repr(smtp)
    with pytest.raises(BadInput, match="none, starttls or ssl"):
        SmtpSettings.from_settings(app.with_(smtp_tls="tls"))
    with pytest.raises(BadInput, match="not configured"):
        SmtpSettings.from_settings(Settings())
    with pytest.raises(BadInput, match="AGGLO_MAIL_FROM"):
        SmtpMailer(SmtpSettings.from_settings(app.with_(mail_from="nobody")))


# -- SIGKILL at random moments ----------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, random, sys, time
    sys.path.insert(0, sys.argv[4])
    from webhooks.email import Email, SmtpMailer, SmtpSettings

    port, path, run, latency = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[5])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    settings = SmtpSettings(host="127.0.0.1", port=port, tls="none", user="", password="", sender="agglo@agglo.example")
    with SmtpMailer(settings) as mailer:
        for i in range(50):
            mid = f"<kill-{run}-{i}@agglo>"

            def commit_sent(mid=mid):
                # A database commit takes time before and after it is durable: widen both windows.
                time.sleep(random.uniform(0, latency))
                os.write(fd, (mid + "\\n").encode())
                os.fsync(fd)
                time.sleep(random.uniform(0, latency))

            mailer.send(Email("uo@troitsk.example", f"Напоминание {i}", "Текст\\n" * 20, None, mid), commit_sent)
    print("finished", flush=True)
    """
)
KILLS = 10
PER_RUN = 50


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def test_sigkill_at_random_moments_never_duplicates(
    start_server: Callable[..., Server], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder, port = start_server()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rng = random.Random()
    totals: Counter[str] = Counter()
    report = []
    for run in range(KILLS):
        sent_file = tmp_path / f"sent-{run}.txt"
        latency = 0.0 if run % 2 == 0 else 0.002  # a commit as fast as fsync, or a slower database
        child = subprocess.Popen(
            [sys.executable, str(script), str(port), str(sent_file), str(run), str(ROOT), str(latency)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # Kill once the child has committed a random number of messages, after a random
            # further delay: anywhere in the commit → terminator window or the next message.
            target = rng.randint(1, PER_RUN - 10)
            committed = lambda path=sent_file, n=target: len(lines(path)) >= n  # noqa: E731
            assert wait_until(committed, timeout=10, step=0.0005), child.communicate()
            time.sleep(rng.uniform(0, 0.003))
            child.send_signal(signal.SIGKILL)
            _, err = child.communicate(timeout=10)
        finally:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        assert child.returncode == -signal.SIGKILL, err.decode()
        time.sleep(0.3)  # let the server see the dead connection and finish what it received

        ids = [f"<kill-{run}-{i}@agglo>" for i in range(PER_RUN)]
        in_file = set(lines(sent_file))
        accepted = {m for m in recorder.message_ids() if m.startswith(f"<kill-{run}-")}
        categories = Counter(
            "both" if i in in_file and i in accepted
            else "file only" if i in in_file
            else "accepted only" if i in accepted
            else "neither"
            for i in ids
        )  # fmt: skip
        totals.update(categories)
        report.append(f"run {run} (commit latency ≤{latency * 1000:.0f} ms): {dict(sorted(categories.items()))}")
        # Never accepted without being recorded as sent: that message would be sent again.
        assert categories["accepted only"] == 0, categories
        # At most the one message in flight is lost (committed, terminator not written).
        assert categories["file only"] <= 1, categories
        # The child sends in order: the file holds a prefix of the ids, the server a prefix of it.
        assert in_file == set(ids[: len(in_file)])

        # Another worker picks up everything not recorded as sent: each message lands once.
        with SmtpMailer(settings(port)) as mailer:
            for mid in ids:
                if mid not in in_file:
                    mailer.send(Email("uo@troitsk.example", "Повтор", "Текст\n", None, mid), lambda: None)
        landed = Counter(m for m in recorder.message_ids() if m.startswith(f"<kill-{run}-"))
        assert set(landed.values()) == {1}
        assert len(landed) == PER_RUN - categories["file only"]

    with capsys.disabled():
        print("\nSIGKILL runs:\n  " + "\n  ".join(report) + f"\n  total: {dict(sorted(totals.items()))}")
