"""Prometheus metrics (the official client library), served at ``/metrics`` on a port of their own
(``[metrics] listen``) so that they are never public by accident: requests by door, method and
status with their latency, imports, the store's waits and transactions, sign-in failures and
throttling, the workers alive. Under ``run.py serve`` every process writes its values to files
in ``<data>/metrics`` (the client library's multiprocess mode), so one scrape of any worker
sees them all; a worker that dies is marked so (its gauges go, its counts stay)."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 (the doors' reply type)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values

FOLDER = "PROMETHEUS_MULTIPROC_DIR"
#: seconds: where a request's or a store operation's time falls
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: the door a request went through, by the start of its path
#: the methods counted by name (a client may send any token as a method: the others are "other",
#: so that no client can make labels without end)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "PROPPATCH", "REPORT",
                     "MKCALENDAR", "MKCOL", "COPY", "MOVE", "ACL", "LOCK", "UNLOCK"})  # fmt: skip
DOORS = (("/dav", "caldav"), ("/.well-known", "caldav"), ("/v1", "rest"), ("/app", "web"), ("/feeds", "feeds"),
         ("/wcap", "wcap"), ("/metrics", "metrics"), ("/healthz", "health"), ("/readyz", "health"))  # fmt: skip


#: this process's id, remembered: the client library asks for it at every change of a value,
#: and that system call was a tenth of a busy server's time
_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def _process() -> int:
    return _pid[0]


def share(folder: Path, *, fresh: bool) -> None:
    """Every process of this server writes its values under ``folder`` (call before any metric is
    made; ``fresh``: the first process, which empties it of an earlier run's)."""
    if fresh:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[FOLDER] = str(folder)
    values.ValueClass = values.MultiProcessValue(process_identifier=_process)


def gone(pid: int) -> None:
    """A worker that ended: its live gauges no longer count."""
    if FOLDER in os.environ:
        multiprocess.mark_process_dead(pid)


def door(path: str) -> str:
    if path.endswith(".wcap"):
        return "wcap"
    return next((name for prefix, name in DOORS if path.startswith(prefix)), "other")


class Metrics:
    def __init__(self) -> None:
        shared = FOLDER in os.environ
        self.registry = CollectorRegistry()
        mine = None if shared else self.registry  # shared: a scrape reads every process's files
        self.requests = Counter("almanac_requests", "Requests answered, by door, method and status",
                                ["door", "method", "status"], registry=mine)  # fmt: skip
        self.latency = Histogram("almanac_request_seconds", "Time to answer a request, by door", ["door"],
                                 buckets=BUCKETS, registry=mine)  # fmt: skip
        self.imports = Counter("almanac_imports", "Imports by what happened to them: queued, started, "
                               "complete, failed", ["event"], registry=mine)  # fmt: skip
        self.imported = Counter("almanac_imported_objects", "Objects imports wrote (created or replaced)",
                                registry=mine)  # fmt: skip
        self.running = Gauge("almanac_imports_running", "Imports running now", registry=mine,
                             multiprocess_mode="livesum")  # fmt: skip
        self.store = Histogram("almanac_store_seconds", "The store's time: wait (for the writer or a pooled "
                               "connection), write (a transaction held), read", ["kind"], buckets=BUCKETS,
                               registry=mine)  # fmt: skip
        self.signin_failures = Counter("almanac_signin_failures", "Sign-ins refused: a wrong name or password",
                                       registry=mine)  # fmt: skip
        self.throttled = Counter("almanac_signin_throttled", "Sign-in attempts the throttle slowed or refused",
                                 ["outcome"], registry=mine)  # fmt: skip
        self.workers = Gauge("almanac_workers", "Server processes serving", registry=mine, multiprocess_mode="livesum")
        if shared:
            multiprocess.MultiProcessCollector(self.registry)
        # the values of each set of labels, found once (the client library looks them up under
        # a lock at every use; a GET counts four)
        self._answered: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._stored: dict[str, Histogram] = {}

    def answered(self, door: str, method: str, status: int, seconds: float) -> None:
        """A request answered through ``door``, and its time."""
        method = method if method in METHODS else "other"
        counted = self._answered.get((door, method, status))
        if counted is None:
            counted = self._answered[door, method, status] = (
                self.requests.labels(door, method, str(status)), self.latency.labels(door),
            )  # fmt: skip
        counted[0].inc()
        counted[1].observe(seconds)

    def stored(self, kind: str, seconds: float) -> None:
        """The store's time at something of ``kind``."""
        timed = self._stored.get(kind)
        if timed is None:
            timed = self._stored[kind] = self.store.labels(kind)
        timed.observe(seconds)

    def scrape(self) -> bytes:
        return generate_latest(self.registry)


@functools.cache
def metrics() -> Metrics:
    """This process's metrics (made at their first use: after ``share`` under ``serve``)."""
    return Metrics()
