"""The lock file beside an SQLite store that orders the writers of several processes."""

from __future__ import annotations

import asyncio
import fcntl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from storage.errors import StoreUnavailable


class ProcessLock:
    """An exclusive lock on a file beside the database, which the writer of each process holds
    around its transactions: a process waiting for another's write is let in as soon as that
    write ends (SQLite's own busy handler sleeps up to 100 ms between tries, which made the
    writes of several workers wait far longer than they ran).

    The processes take turns: one that waits does so in the kernel (a thread blocked in
    ``flock``), holding a shared lock on a second file (``-queue``) meanwhile, and a process
    takes the lock at once only when no other waits; else it waits too. Without turns, the
    process that had just let the lock go took it again before the waiting one was woken, again
    and again (two workers under load: some writes waited seconds)."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout = path, timeout
        self._file: IO[bytes] | None = None
        #: the queue file twice: held shared while this process waits, and asked whether any
        #: process waits (an exclusive lock on it that cannot be had)
        self._waiting: IO[bytes] | None = None
        self._asking: IO[bytes] | None = None
        self._waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-lock")

    def open(self) -> None:
        queue = self.path.with_name(self.path.name + "-queue")
        self._file = open(self.path, "a+b")  # noqa: SIM115 (held open while the store is)
        self._waiting, self._asking = open(queue, "a+b"), open(queue, "a+b")  # noqa: SIM115

    def close(self) -> None:
        for each in (self._file, self._waiting, self._asking):
            if each is not None:
                each.close()
        self._file = self._waiting = self._asking = None

    def _try(self) -> bool:
        """Take the lock if it is free and no other process waits for it."""
        assert self._file is not None and self._asking is not None
        try:
            fcntl.flock(self._asking, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # another process waits: its turn first
        fcntl.flock(self._asking, fcntl.LOCK_UN)
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _wait(self) -> None:
        assert self._file is not None and self._waiting is not None
        fcntl.flock(self._waiting, fcntl.LOCK_SH)
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX)
        finally:
            fcntl.flock(self._waiting, fcntl.LOCK_UN)

    async def acquire(self) -> None:
        """Take the lock, waiting at most ``timeout`` seconds (then StoreUnavailable)."""
        if self._try():
            return
        waiting = asyncio.get_running_loop().run_in_executor(self._waiter, self._wait)
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(waiting)
        except (asyncio.CancelledError, TimeoutError) as error:  # the wait goes on: let go of what it takes

            def let_go(done: asyncio.Future[None]) -> None:
                if not done.cancelled() and done.exception() is None:
                    self.release()

            waiting.add_done_callback(let_go)
            if isinstance(error, TimeoutError):
                held = f"another process held the store's write lock for {self.timeout:.0f} s"
                raise StoreUnavailable(held) from None
            raise

    def release(self) -> None:
        assert self._file is not None
        fcntl.flock(self._file, fcntl.LOCK_UN)
