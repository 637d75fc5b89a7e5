"""A real SMTP server on loopback for tests: records every message it accepts.

``hold_at(n)`` makes the server, on accepting its n-th message, stop before replying and
signal the test; the test can then kill the sender (the message is the server's, the sender
has not heard back) and ``release()`` the reply.
"""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from collections import Counter
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RecordingHandler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.message_ids: list[str] = []
        self.subjects: list[str] = []
        self.bodies: list[str] = []
        self.recipients: list[str] = []
        self.hold_on: int | None = None
        self.held = threading.Event()
        self._release: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=default)
        with self.lock:
            self.message_ids.append(str(message["Message-ID"]))
            self.subjects.append(str(message["Subject"]))
            part = message.get_body(preferencelist=("plain",))
            self.bodies.append(part.get_content() if part is not None else "")
            self.recipients.extend(envelope.rcpt_tos)
            count = len(self.message_ids)
        if self.hold_on is not None and count == self.hold_on:
            self._loop = asyncio.get_running_loop()
            self._release = asyncio.Event()
            self.held.set()
            await self._release.wait()
        return "250 Message accepted for delivery"

    def release(self) -> None:
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.message_ids)

    def duplicates(self) -> dict[str, int]:
        with self.lock:
            return {mid: n for mid, n in Counter(self.message_ids).items() if n > 1}


class SmtpServer:
    def __init__(self) -> None:
        self.handler = RecordingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.handler.release()
        self.controller.stop()
