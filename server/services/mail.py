"""The mail sender (iMIP out): every process runs one; each claims queued mail from the store
with a lease (one process across workers and nodes sends each message), sends it through
``[smtp]``'s server with aiosmtplib, and marks it sent, or due again after a back-off (1, 2, 4
... 60 minutes; given up after ``MAX_ATTEMPTS``). A process that dies while sending leaves the
lease to lapse: the message is then sent by another (at least once, never twice while leased)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

import aiosmtplib

from server.config import Config
from storage.base import Store
from storage.errors import StoreError
from storage.model import Mail

log = logging.getLogger("almanac.mail")

#: how often an idle sender looks for mail another process queued
POLL = 1.0
#: seconds a claimed message is this process's to send
LEASE = 120
MAX_ATTEMPTS = 10


class MailSender:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.runner = f"{socket.gethostname()}:{config.data_dir.resolve()}:{config.worker}:mail"
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.config.smtp_host and self.config.worker >= 0:  # not for the command line
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # cancelled inside a transaction, the store may say so its own way
            with contextlib.suppress(asyncio.CancelledError, StoreError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                mail = await self.store.claim_mail(self.runner, int(time.time()), int(time.time()) + LEASE)
                if mail is not None:
                    await self._send(mail)
                    continue
            except StoreError as error:  # the store is away for a moment: the next turn tries again
                log.warning("mail: the queue could not be read or written: %s", error.message)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL)

    async def _send(self, mail: Mail) -> None:
        config = self.config
        try:
            await aiosmtplib.send(
                mail.message, sender=config.smtp_sender, recipients=[mail.recipient],
                hostname=config.smtp_host, port=config.smtp_port,
                username=config.smtp_username or None, password=config.smtp_password or None,
                start_tls={"auto": None, "always": True, "never": False}[config.smtp_starttls], timeout=30,
            )  # fmt: skip
        except (aiosmtplib.SMTPException, OSError) as error:
            retry = mail.attempts < MAX_ATTEMPTS
            delay = min(3600, 60 * 2 ** (mail.attempts - 1))
            log.warning("mail to %s failed (attempt %d%s): %s", mail.recipient, mail.attempts,
                        "" if retry else ", given up", error)  # fmt: skip
            await self.store.mail_done(
                mail.id, self.runner, str(error)[:500], int(time.time()) + delay if retry else None
            )
            return
        await self.store.mail_done(mail.id, self.runner, None, None)
        log.info("mail to %s sent", mail.recipient)
