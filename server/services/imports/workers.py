"""The import workers of one process, and the leases of running imports.

Workers claim queued imports from the store (one claim per job across processes and nodes: ``FOR
UPDATE SKIP LOCKED`` on PostgreSQL, a write transaction on SQLite); a process's own submissions
wake them at once, others' are seen within ``POLL`` seconds. A running import is leased to its
runner, which renews the lease every third of ``[imports] lease`` seconds; every process looks
for lapsed leases every half lease and has those imports rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from server.config import Config
from server.services.errors import BadEncoding, Forbidden, Invalid
from storage.base import Store
from storage.model import ImportFilter, ImportJob, JobStatus

log = logging.getLogger("almanac.imports")

#: how often an idle worker looks for imports queued by another process (this process's own
#: wake it at once)
POLL = 1.0
#: what rolls an abandoned import back: given its id, the status it must have, the status it
#: gets and why
RollBack = Callable[[int, str, str, str], Awaitable[object]]


class Workers:
    """Claims queued imports for ``run``; holds the leases of the imports this process runs;
    has ``roll_back`` undo those whose runner is gone."""

    def __init__(
        self, store: Store, config: Config, run: Callable[[ImportJob], Awaitable[None]], roll_back: RollBack
    ) -> None:
        self.store = store
        self.config = config
        self.run = run
        self.roll_back = roll_back
        #: who holds the leases of the imports this process runs: stable across restarts, so
        #: that a restarted server rolls back what it was running at once
        self.runner = f"{socket.gethostname()}:{config.data_dir.resolve()}:{config.worker}"
        self.wake = asyncio.Event()  #: set when this process queues an import
        self._running: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def lease_until(self) -> int:
        return int(time.time()) + self.config.import_lease

    @contextlib.asynccontextmanager
    async def leased(self, job_id: int) -> AsyncIterator[None]:
        """Renew the job's lease while the block runs (it lapses if this process dies)."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.config.import_lease / 3)
                if not await self.store.renew_lease(job_id, self.runner, self.lease_until()):
                    log.warning("import %d: its lease was taken over; its next batch will be refused", job_id)
                    return

        self._running.add(job_id)
        renewing = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewing.cancel()
            self._running.discard(job_id)

    async def sweep(self, of: str | None = None) -> None:
        """Roll back every import in progress whose runner is gone (its lease lapsed, or it
        was ``of``: this runner's earlier life)."""
        while job := await self.store.claim_abandoned(self.runner, self.lease_until(), int(time.time()), of=of):
            try:
                await self.roll_back(
                    job.id, JobStatus.IN_PROGRESS, JobStatus.FAILED,
                    "the server stopped during the import: what it had written was removed",
                )  # fmt: skip
                await self.store.drop_upload(job.id)
                log.warning("import %d was interrupted (its server stopped) and has been rolled back", job.id)
            except Exception as error:  # the lease lapses again: tried again by the next sweep
                log.error("import %d was interrupted and could not be rolled back: %r", job.id, error)
                return

    def start(self) -> None:
        """Start the workers and the watch over other runners' leases."""
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.config.import_workers)]
        self._tasks.append(asyncio.create_task(self._watch()))

    async def stop(self) -> None:
        """Stop them: an import running is rolled back and queued again (by ``run``)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def idle(self) -> None:
        """Wait until no import is queued or running here (for tests and the benchmark)."""
        while self._running or (await self.store.list_imports(ImportFilter(status=JobStatus.QUEUED), limit=1))[1]:
            await asyncio.sleep(0.02)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.import_lease / 2)
            try:
                await self.sweep()
            except Exception:
                log.exception("looking for abandoned imports failed")

    async def _work(self) -> None:
        while True:
            try:
                job = await self.store.claim_import(self.runner, self.lease_until())
            except Exception:
                log.exception("claiming an import failed")
                job = None
            if job is None:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), POLL)
                continue
            try:
                async with self.leased(job.id):
                    await self.run(job)
            except (Invalid, BadEncoding, Forbidden):
                pass  # recorded on the job
            except Exception:
                log.exception("import %d failed", job.id)
