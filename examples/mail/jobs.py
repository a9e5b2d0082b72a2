"""The mailer of the mail example; the worker runs it with

    kiqpy -c 25 -q default,mail -r examples.mail.jobs

Mail is "sent" by writing ``.eml`` files to a folder instead of talking SMTP, through a
transport that refuses the first attempt of every message, as a greylisting server does.
``Mailer.kiqpy_retry_in`` retries that after a second, and sends a bad address straight to the
dead set: retrying it 5 times over several minutes would only delay the bad news.
"""

from __future__ import annotations

import os
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import structlog

import kiqpy

log = structlog.get_logger("examples.mail")

DEFAULT_OUTBOX = Path(__file__).resolve().parent / "var" / "outbox"
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
SENDER = "kiqpy example <noreply@example.com>"


class TemporaryFailure(Exception):
    """The server said "try again later" (an SMTP 4xx reply)."""


class BadAddress(Exception):
    """The address can never receive mail (an SMTP 5xx reply, or not an address at all)."""


class FolderTransport:
    """Delivers each message as ``<outbox>/<message id>.eml``. Like a greylisting server it
    refuses the first attempt of every message with :class:`TemporaryFailure`, remembering
    the ids it has seen in ``<outbox>/.greylist/``."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox

    def send(self, message: EmailMessage) -> Path:
        key = re.sub(r"[^\w.@-]", "_", str(message["Message-ID"]).strip("<>"))
        seen = self.outbox / ".greylist" / key
        if not seen.exists():
            seen.parent.mkdir(parents=True, exist_ok=True)
            seen.touch()
            raise TemporaryFailure(f"451 4.7.1 {message['To']}: greylisted, try again later")
        path = self.outbox / f"{key}.eml"
        path.write_bytes(bytes(message))
        return path


def transport() -> FolderTransport:
    """The outbox: ``$MAIL_OUTBOX``, else ``var/outbox`` next to this file."""
    return FolderTransport(Path(os.environ.get("MAIL_OUTBOX") or DEFAULT_OUTBOX))


class Mailer(kiqpy.Worker):
    """``perform(to, subject, body)``: send one mail."""

    kiqpy_options = {"queue": "mail", "retry": 5}

    def perform(self, to: str, subject: str, body: str) -> None:
        if not ADDRESS.fullmatch(to):
            raise BadAddress(f"{to!r} is not an email address")
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = SENDER, to, subject
        # The same id on every attempt, so a retry is recognised as the same message.
        message["Message-ID"] = f"<{self.jid}@kiqpy.example>"
        message.set_content(body)
        path = transport().send(message)
        log.info("sent", to=to, path=str(path))

    def kiqpy_retry_in(self, count: int, exc: BaseException, job: dict[str, Any]
                       ) -> float | str | None:
        """Seconds until retry number ``count + 1``; "kill" sends the job to the dead set now;
        None keeps kiqpy's default backoff (15 s, 16 s, 31 s, 96 s, ...)."""
        if isinstance(exc, BadAddress):
            return "kill"
        if isinstance(exc, TemporaryFailure):
            return count + 1  # 1 s, then 2 s, 3 s ...: greylisting lets the retry through
        return None

    def kiqpy_retries_exhausted(self, job: dict[str, Any], exc: BaseException) -> None:
        """Runs when the job dies (retries used up, or "kill"): tell someone."""
        log.error("mail not sent", to=job["args"][0], error=job.get("error_message"))
