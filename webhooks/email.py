"""Outgoing e-mail over SMTP, delivered once: the commit point sits inside the DATA phase.

SMTP is not transactional, so a worker that can be SIGKILLed at any moment needs a point
after which "sent" is true in our database and before which the server has accepted
nothing. :meth:`SmtpMailer.send` puts it there:

1. ``MAIL FROM``, ``RCPT TO``, ``DATA`` (354) and the whole dot-stuffed body, *without*
   the terminator ``CRLF . CRLF``;
2. ``commit_sent()``: the caller durably marks the delivery as sent (commits its transaction);
3. the five terminator bytes, then the server's reply.

Killed before 2, the connection closes mid-DATA: the server discards the unterminated
message (RFC 5321 §4.1.1.4 and §6.1: a server processes a message, and takes responsibility
for it, only on the end-of-data indication) and our database says "not sent", so another
worker sends it once. Killed after 2, the database says "sent" and nobody sends it again.
The only loss window is between the commit and one ``sendall`` of five bytes.

A failure after the commit (a refusal of the end of data, or the connection lost while
waiting for that reply) raises :class:`MailError` with ``committed=True``. For a refusal the
server has not taken the message and the caller reopens the delivery for retry; for a lost
reply nobody can know whether the server took it, and reopening trades a possible loss for
a possible duplicate.

If ``commit_sent`` raises, the connection is dropped without the terminator (an RSET or QUIT
would be taken as message text inside DATA), the server discards the message and the error
propagates unchanged.

Library errors become :class:`MailError`. A mailer keeps one connection for a batch of sends
and reconnects once, transparently, when a re-used connection turns out to be closed before
anything was committed. It is not thread-safe: one mailer per worker thread.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as _SMTP_POLICY
from email.utils import format_datetime, getaddresses
from types import TracebackType
from typing import Any, Literal, Self

from engine.clock import REGION_TZ, Clock, SystemClock
from engine.errors import AggloError, BadInput
from engine.settings import Settings

__all__ = ["Email", "MailError", "SmtpMailer", "SmtpSettings", "build_message"]

TlsMode = Literal["none", "starttls", "ssl"]
_TLS_MODES: tuple[TlsMode, ...] = ("none", "starttls", "ssl")

# CRLF line ends and 7-bit transfer encodings (base64 / quoted-printable for Cyrillic): the message
# is plain ASCII on the wire, so it needs neither 8BITMIME nor SMTPUTF8 from the server.
_POLICY = _SMTP_POLICY.clone(cte_type="7bit")
_TERMINATOR = b"\r\n.\r\n"
# Everything str.splitlines() breaks on, and NUL: any of them in a header value is an injection.
_LINE_BREAK = re.compile("[\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 §3.6.8: printable ASCII except ':'
_MESSAGE_ID = re.compile(r"<[!-;=?A-~]+@[!-;=?A-~]+>")  # <left@right>: no space, '<', '>' or second '@'
# Headers this module writes itself; extra headers may not replace them.
_RESERVED = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "sender",
        "auto-submitted", "mime-version", "content-type", "content-transfer-encoding", "return-path",
    }
)  # fmt: skip


class MailError(AggloError):
    """An e-mail could not be sent (or must not be: bad address, header injection).

    ``permanent`` is True when retrying this message cannot help: a 5xx reply to the message's
    own transaction (MAIL, RCPT, DATA, the end of data) or a message refused before sending.
    Connection, TLS and authentication failures are never permanent, even as 5xx: they are
    the configuration's or the network's fault, not the message's, and the delivery should wait.
    ``smtp_code`` is the server's reply code when there was one. ``committed`` is True when the
    failure came after ``commit_sent()`` ran: the delivery is recorded as sent, and the caller
    must reopen it to retry.
    """

    code = "mail_error"

    def __init__(
        self, message: str, *, permanent: bool = False, smtp_code: int | None = None, committed: bool = False
    ) -> None:
        self.permanent = permanent
        self.smtp_code = smtp_code
        self.committed = committed
        super().__init__(message)

    def details(self) -> dict[str, Any]:
        return {"permanent": self.permanent, "smtp_code": self.smtp_code, "committed": self.committed}


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send: ``tls`` is "none", "starttls" or "ssl" (implicit TLS, port 465).

    ``user`` empty means no AUTH. ``timeout`` (seconds) bounds each network operation.
    """

    host: str
    port: int
    tls: TlsMode
    user: str
    password: str = field(repr=False)
    sender: str
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.host:
            raise BadInput("SMTP host is empty: outgoing mail is not configured (AGGLO_SMTP_HOST)", field="smtp_host")
        if self.tls not in _TLS_MODES:
            raise BadInput(f"SMTP TLS mode must be one of {', '.join(_TLS_MODES)}, not {self.tls!r}", field="smtp_tls")
        if not 0 < self.port < 65536:
            raise BadInput(f"SMTP port must be 1-65535, not {self.port}", field="smtp_port")
        if self.timeout <= 0:
            raise BadInput(f"SMTP timeout must be positive, not {self.timeout}", field="timeout")

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = 10.0) -> SmtpSettings:
        """The ``smtp_*`` and ``mail_from`` fields of the application's settings."""
        tls = settings.smtp_tls.strip().lower()
        if tls not in _TLS_MODES:
            raise BadInput(f"AGGLO_SMTP_TLS must be none, starttls or ssl, not {settings.smtp_tls!r}", field="smtp_tls")
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=tls,
            user=settings.smtp_user,
            password=settings.smtp_password,
            sender=settings.mail_from,
            timeout=timeout,
        )


@dataclass(frozen=True)
class Email:
    """One e-mail to one recipient. ``message_id`` (``<reminder-42@agglo>``) is its idempotency key.

    ``headers`` adds header fields (``In-Reply-To``, ``X-Agglo-Task`` …); it may not replace the
    ones :func:`build_message` writes.
    """

    to: str
    subject: str
    text: str
    html: str | None
    message_id: str
    headers: Mapping[str, str] = field(default_factory=dict)


# -- building the message --------------------------------------------------------------------


def _refused(email_id: str, reason: str) -> MailError:
    return MailError(f"refusing to send e-mail {email_id}: {reason}", permanent=True)


def _single_line(email_id: str, what: str, value: str) -> None:
    if _LINE_BREAK.search(value):
        raise _refused(email_id, f"{what} contains a line break (header injection): {value!r}")


def _mailbox(email_id: str, what: str, value: str) -> Address:
    """One mailbox, its domain in IDNA (Cyrillic .рф domains are common here)."""
    _single_line(email_id, what, value)
    pairs = getaddresses([value])
    if len(pairs) != 1 or not pairs[0][1]:
        raise _refused(email_id, f"{what} must be exactly one e-mail address, not {value!r}")
    name, addr = pairs[0]
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise _refused(email_id, f"{what} address {addr!r} has no local part or domain")
    if not local.isascii():
        raise _refused(email_id, f"{what} address {addr!r}: a non-ASCII local part needs SMTPUTF8, not supported")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
        return Address(display_name=name, addr_spec=f"{local}@{ascii_domain}")
    except (UnicodeError, ValueError) as exc:
        raise _refused(email_id, f"{what} address {addr!r} is malformed: {exc}") from exc


def build_message(email: Email, sender: str, clock: Clock | None = None) -> EmailMessage:
    """The MIME message for ``email``: UTF-8 text (and HTML alternative), encoded headers.

    Raises :class:`MailError` (permanent) for a line break in any header value, a malformed
    address or Message-ID, or an extra header that would replace one of ours.
    """
    return _build(email, sender, (clock or SystemClock()).now())[0]


def _build(email: Email, sender: str, now: datetime) -> tuple[EmailMessage, str, str]:
    """The message, the envelope sender and the envelope recipient."""
    mid = email.message_id
    if not _MESSAGE_ID.fullmatch(mid):
        raise MailError(f"refusing to send e-mail: Message-ID must look like <id@domain>, not {mid!r}", permanent=True)
    to = _mailbox(mid, "To", email.to)
    from_ = _mailbox(mid, "From", sender)
    _single_line(mid, "Subject", email.subject)
    for name, value in email.headers.items():
        if not _FIELD_NAME.fullmatch(name):
            raise _refused(mid, f"header name {name!r} is not a valid field name")
        if name.lower() in _RESERVED:
            raise _refused(mid, f"header {name!r} is set by the mailer and may not be replaced")
        _single_line(mid, f"header {name!r}", value)

    message = EmailMessage(policy=_POLICY)
    message["From"] = from_
    message["To"] = to
    message["Subject"] = email.subject
    message["Date"] = format_datetime(now.astimezone(REGION_TZ))
    message["Message-ID"] = mid
    # RFC 3834: tells auto-responders (out-of-office, vacation) not to answer.
    message["Auto-Submitted"] = "auto-generated"
    for name, value in email.headers.items():
        message[name] = value
    message.set_content(email.text, subtype="plain", charset="utf-8")
    if email.html is not None:
        message.add_alternative(email.html, subtype="html", charset="utf-8")
    return message, from_.addr_spec, to.addr_spec


def _data_payload(message: EmailMessage) -> bytes:
    """The DATA section, dot-stuffed with CRLF line ends, without the final CRLF . CRLF."""
    data = message.as_bytes(policy=_POLICY)
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    data = re.sub(rb"(?m)^\.", b"..", data)  # RFC 5321 §4.5.2 transparency
    return data.removesuffix(b"\r\n")  # the terminator's leading CRLF ends the last line


# -- the mailer ------------------------------------------------------------------------------


def _reply_text(reply: bytes) -> str:
    return reply.decode("utf-8", "replace").replace("\n", " ")


class SmtpMailer:
    """Sends :class:`Email` over one re-used SMTP connection; see the module docstring for the commit point.

    ``ssl_context`` overrides the default (system CA store, hostname checked) for "ssl" and
    "starttls"; ``clock`` dates the messages.
    """

    def __init__(
        self, settings: SmtpSettings, *, ssl_context: ssl.SSLContext | None = None, clock: Clock | None = None
    ) -> None:
        try:
            _mailbox("(none)", "sender", settings.sender)
        except MailError as exc:
            raise BadInput(f"the mail sender (AGGLO_MAIL_FROM) is unusable: {exc}", field="mail_from") from exc
        self._settings = settings
        self._ssl_context = ssl_context
        self._clock = clock or SystemClock()
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """QUIT and close the connection, if one is open. Never raises."""
        smtp = self._smtp
        if smtp is None:
            return
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
        self._drop()

    def send(self, email: Email, commit_sent: Callable[[], None]) -> str:
        """Send ``email``; call ``commit_sent()`` after the body and before the terminator.

        Returns the server's reply text to the end of data (e.g. "2.0.0 Ok: queued as 4F1A").
        Raises :class:`MailError`; ``commit_sent`` was called only if ``error.committed``.
        An exception from ``commit_sent`` itself aborts the SMTP transaction and propagates.
        """
        message, sender, recipient = _build(email, self._settings.sender, self._clock.now())
        payload = _data_payload(message)
        smtp = self._open_transaction(email.message_id, sender, recipient, payload)
        try:
            commit_sent()
        except BaseException:
            # Inside DATA every command is message text: the only way to abort is to close the
            # connection without the terminator; the server then discards the message.
            self._drop()
            raise
        return self._finish(smtp, email.message_id)

    # -- internals ---------------------------------------------------------------------------

    def _where(self) -> str:
        return f"SMTP server {self._settings.host}:{self._settings.port}"

    def _drop(self) -> None:
        """Close the socket without a word: after an error its state is unknown."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(OSError):
                smtp.close()

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        step = "connect"
        try:
            smtp: smtplib.SMTP
            if s.tls == "ssl":
                context = self._ssl_context or ssl.create_default_context()
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            try:
                if smtp.sock is not None:
                    # The terminator is a separate five-byte write after the body: without NODELAY,
                    # Nagle's algorithm holds it until the server's delayed ACK, 40 ms per message.
                    smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                step = "EHLO"
                smtp.ehlo_or_helo_if_needed()
                if s.tls == "starttls":
                    step = "STARTTLS"
                    smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                    step = "EHLO after STARTTLS"
                    smtp.ehlo_or_helo_if_needed()
                if s.user:
                    step = "AUTH"
                    smtp.login(s.user, s.password)
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPResponseException as exc:
            text = _reply_text(exc.smtp_error) if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            raise MailError(
                f"{self._where()}: {step} refused: {exc.smtp_code} {text}", smtp_code=exc.smtp_code
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(f"{self._where()}: {step} failed: {exc}") from exc
        return smtp

    def _open_transaction(self, mid: str, sender: str, recipient: str, payload: bytes) -> smtplib.SMTP:
        """MAIL, RCPT, DATA and the body; retried once on a fresh connection if a re-used one was closed."""
        while True:
            reused = self._smtp is not None
            if self._smtp is None:
                self._smtp = self._connect()
            smtp = self._smtp
            try:
                self._expect(smtp, mid, "MAIL FROM", smtp.mail(sender), (250,))
                self._expect(smtp, mid, "RCPT TO", smtp.rcpt(recipient), (250, 251))
                self._expect(smtp, mid, "DATA", smtp.docmd("DATA"), (354,))
                smtp.send(payload)
                return smtp
            except smtplib.SMTPServerDisconnected as exc:
                self._drop()
                if reused:
                    continue  # an idle connection the server had closed; nothing was committed
                raise MailError(f"{self._where()} closed the connection while sending {mid}: {exc}") from exc

    def _expect(self, smtp: smtplib.SMTP, mid: str, step: str, reply: tuple[int, bytes], ok: tuple[int, ...]) -> None:
        code, text = reply
        if code in ok:
            return
        if code == 421:  # the server is closing the connection: treat as disconnected (re-used: retry)
            raise smtplib.SMTPServerDisconnected(f"{step}: {code} {_reply_text(text)}")
        try:
            smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()
        raise MailError(
            f"{self._where()} refused {mid} at {step}: {code} {_reply_text(text)}",
            permanent=code >= 500,
            smtp_code=code,
        )

    def _finish(self, smtp: smtplib.SMTP, mid: str) -> str:
        try:
            smtp.send(_TERMINATOR)
            code, text = smtp.getreply()
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise MailError(
                f"{self._where()} closed the connection after {mid} was marked sent; "
                f"the server may or may not have accepted it: {exc}",
                committed=True,
            ) from exc
        reply = _reply_text(text)
        if 200 <= code < 300:
            return reply
        if code == 421 or code < 0:
            self._drop()
        raise MailError(
            f"{self._where()} refused {mid} at the end of data: {code} {reply}",
            permanent=code >= 500,
            smtp_code=code,
            committed=True,
        )
