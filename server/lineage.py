"""Processes started by other processes die with them, and nothing is left behind unreaped.

``serve --workers N`` is a supervisor, N workers and each worker's helpers (the import's parse
process, multiprocessing's resource tracker, the time zone builder). Each worker leads a
process group of its own; when it ends, the supervisor kills what is left of the group and,
being a child subreaper on Linux, reaps those orphans itself. A helper also watches its parent
and ends when it is gone, so none outlives a worker that died by ``kill -9`` even where no
supervisor cleans up after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import threading
import time
from pathlib import Path

#: how often an orphan notices that its parent is gone
WATCH_EVERY = 0.5
_PR_SET_CHILD_SUBREAPER = 36  #: prctl(2)


def become_subreaper() -> bool:
    """Make this process the one orphaned descendants are given to (Linux), so that it can reap
    them; whether it is."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def end_group(leader: int, within: float = 2.0) -> list[int]:
    """End what is left of the process group ``leader`` led (its leader has ended) and reap
    those of its processes that were given to this one (a subreaper); the pids reaped. They are
    asked first (SIGTERM: a helper ends, and multiprocessing's resource tracker, which ignores
    it, then removes what the dead worker left in /dev/shm and ends too), and after ``within``
    seconds killed."""
    reaped: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(leader, signum)
        deadline = time.monotonic() + within
        while _alive(leader) and time.monotonic() < deadline:
            for pid in children():
                if _group(pid) == leader:
                    with contextlib.suppress(ChildProcessError):
                        if os.waitpid(pid, os.WNOHANG)[0] == pid:
                            reaped.append(pid)
            time.sleep(0.01)
    return reaped


def _alive(group: int) -> bool:
    """Whether any process of the group is left (a zombie of this one's counts)."""
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def children(pid: int | None = None) -> list[int]:
    """The processes whose parent is ``pid`` (this one by default), from /proc (Linux)."""
    pid = pid or os.getpid()
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def exit_with_parent(parent: int) -> None:
    """End this process (at once, without clean-up: it is a helper) once ``parent`` is no
    longer its parent. For a helper process's initializer."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_EVERY)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


async def parent_gone(parent: int) -> None:
    """Return once ``parent`` is no longer this process's parent (a worker's supervisor died)."""
    while os.getppid() == parent:
        await asyncio.sleep(WATCH_EVERY)
