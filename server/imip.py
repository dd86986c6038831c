"""The iMIP door: an SMTP server (aiosmtpd) taking attendees' answers by e-mail. A mail server
forwards ``sender+TOKEN@domain`` (``[smtp] sender`` with a reply token) to ``[smtp] receiver``;
each answer is applied when its token and its sender match (objects service,
``answer_by_mail``), else refused with a permanent error the sending server reports to its
user; a meeting changed meanwhile is a temporary error (the sending server tries again). One
process binds it (worker 0)."""

from __future__ import annotations

import asyncio
import email
import logging
from email import policy
from email.utils import parseaddr
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from server.services import Services
from server.services.errors import Invalid, PreconditionFailed
from storage.errors import StoreError

log = logging.getLogger("almanac.imip")
#: the largest answer taken (an iTIP REPLY is a few KiB)
MAX_MAIL = 1 << 20


class Receiver:
    """aiosmtpd's handler: recipients must be reply addresses; each mail is applied as an answer."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.local, _, self.domain = services.config.smtp_sender.lower().rpartition("@")

    def token_of(self, recipient: str) -> str | None:
        local, _, domain = recipient.rpartition("@")
        base, plus, token = local.partition("+")
        if domain.lower() != self.domain or base.lower() != self.local or not plus or not token:
            return None
        return token

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.token_of(address) is None:
            return "550 5.1.1 not a reply address of this calendar server"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        body = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content or "").encode()
        header = email.message_from_bytes(body, policy=policy.default)
        senders = [s for s in (envelope.mail_from or "", parseaddr(str(header.get("From", "")))[1]) if s]
        for recipient in envelope.rcpt_tos:
            token = self.token_of(recipient)
            assert token is not None  # checked at RCPT
            try:
                await self.services.objects.answer_by_mail(token, senders, body)
            except Invalid as refused:
                log.info("answer by mail to %s refused: %s", recipient, refused.message)
                return f"550 5.7.1 {refused.message}"
            except (PreconditionFailed, StoreError):
                return "451 4.3.0 the meeting is being changed: try again later"
            log.info("answer by mail from %s applied", ", ".join(senders))
        return "250 OK"


async def start(services: Services) -> asyncio.AbstractServer | None:
    """The receiver on ``[smtp] receiver`` (host:port), in this process's event loop; None when
    there is none (no setting, or not worker 0)."""
    config = services.config
    if not config.smtp_receiver or config.worker != 0:
        return None
    host, _, port = config.smtp_receiver.rpartition(":")
    handler: Any = Receiver(services)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, hostname="almanac", data_size_limit=MAX_MAIL), host or "127.0.0.1", int(port)
    )
