"""The lock file beside an SQLite store that orders the writers of several processes."""

from __future__ import annotations

import asyncio
import fcntl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from storage.errors import StoreUnavailable


class ProcessLock:
    """An exclusive lock on a file beside the database, which the writer of each process holds
    around its transactions: a process waiting for another's write is let in as soon as that
    write ends (SQLite's own busy handler sleeps up to 100 ms between tries, which made the
    writes of several workers wait far longer than they ran)."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout = path, timeout
        self._file: IO[bytes] | None = None
        self._waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-lock")

    def open(self) -> None:
        self._file = open(self.path, "a+b")  # noqa: SIM115 (held open while the store is)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _try(self) -> bool:
        assert self._file is not None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _wait(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self._try():
            if time.monotonic() > deadline:
                raise TimeoutError(f"another process held the store's write lock for {self.timeout:.0f} s")
            time.sleep(0.0005)

    async def acquire(self) -> None:
        if self._try():
            return
        waiting = asyncio.get_running_loop().run_in_executor(self._waiter, self._wait)
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:  # the wait goes on in its thread: let go of what it takes

            def let_go(done: asyncio.Future[None]) -> None:
                if not done.cancelled() and done.exception() is None:
                    self.release()

            waiting.add_done_callback(let_go)
            raise
        except TimeoutError as error:
            raise StoreUnavailable(str(error)) from None

    def release(self) -> None:
        assert self._file is not None
        fcntl.flock(self._file, fcntl.LOCK_UN)
