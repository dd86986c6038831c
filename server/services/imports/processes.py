"""The helper processes that read big files' plain components beside the server's own process."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from protocol.formats.plain import plain_fields
from server.lineage import exit_with_parent

T = TypeVar("T")


class ParseProcesses(Executor):
    """The helper processes that read big files' plain components (see protocol.formats.ics):
    started with the server (``start``) or by the first big file, kept, and started again after
    one died (what it was reading is read in the server's process instead)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()  #: imports read in several threads

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with self._lock:
            try:
                return self._processes().submit(fn, *args, **kwargs)
            except BrokenProcessPool:  # one of them died: start them again
                self._drop(wait=False, cancel_futures=True)
                return self._processes().submit(fn, *args, **kwargs)

    def _processes(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes, multiprocessing.get_context("spawn"), exit_with_parent, (os.getpid(),)
            )
        return self._pool

    def _drop(self, wait: bool, cancel_futures: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait, cancel_futures=cancel_futures)
            self._pool = None

    def start(self) -> None:
        """Start the processes now (they start with the first big file otherwise, and a file read
        while they start is read in the server's process)."""
        self.submit(plain_fields, [], 0)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._drop(wait, cancel_futures)
