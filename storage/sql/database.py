"""What the SQL store needs of a database: reads, transactions, migrations and the few
statements whose SQL differs between SQLite and PostgreSQL (the time-range index above all).

The store's queries are written once, with ``?`` placeholders, in SQL both databases run;
a backend translates the placeholders, maps its driver's errors to the ones below and keeps
its own time-range index. Nothing here knows a business rule.
"""

from __future__ import annotations

import functools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Protocol, TypeVar

from storage.errors import CannotOpen, StoreUnavailable

log = logging.getLogger("almanac.store")
T = TypeVar("T")

#: how long a readiness probe waits for the store
READINESS_TIMEOUT = 2.0

#: most index spans one object keeps (a longer series is indexed as open-ended long before)
MAX_SPANS = (1 << 20) - 1
#: a write of more index rows than this (a long series) is heavy work (``Database.run``)
HEAVY_SPANS = 500
#: an object's spans as the store writes them: (object id, spans it had, its new spans)
#: rows of (calendar id, object id, its old span count, its new spans)
SpanRows = Sequence[tuple[int, int, int, Sequence[tuple[int, int, bool]]]]


class Row(Protocol):
    """A result row (``sqlite3.Row``, ``asyncpg.Record``): by column name or position."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def __iter__(self) -> Any: ...

    def keys(self) -> Any: ...


class Duplicate(Exception):
    """A statement broke a uniqueness constraint; the message names the constraint."""


class Tx(Protocol):
    """The statements of one transaction."""

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; how many rows it changed."""

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT of one row; the new row's id."""


def applied(version: int, entry: Traversable) -> None:
    """Say in the log that a migration was applied (on SQLite: with its transaction's commit)."""
    log.info("store migration %d applied: %s", version, entry.name)


@functools.cache
def migrations(backend: str) -> tuple[tuple[int, Traversable], ...]:
    """A backend's numbered migration scripts (``NNNN_name.sql``) by version, in order."""
    folder = resources.files("storage") / "migrations" / backend
    found = [(int(e.name.split("_", 1)[0]), e) for e in folder.iterdir() if e.name.endswith(".sql")]
    return tuple(sorted(found, key=lambda f: f[0]))


class Database(ABC):
    """One database's connections and dialect."""

    #: the name of its migrations folder and of its URL scheme
    backend: str
    #: a column that orders a table's rows as they were inserted
    insertion_order: str
    #: SQL for the UTF-8 length in bytes of the text column ``{}``
    byte_length: str
    #: rows in a page of a listing
    listing_page = 1000
    #: what makes a SELECT lock the rows it reads until the transaction ends ("" where every
    #: write transaction holds the whole database)
    for_update: str
    #: what makes a SELECT ... FOR UPDATE pass over rows other transactions hold
    skip_locked: str
    #: where the store's timings go (kind, seconds): ``wait`` for the writer (SQLite) or a pooled
    #: connection (PostgreSQL) before a write, ``write`` a transaction held, ``read`` a read
    observe: Callable[[str, float], None] | None = None

    def timed(self, kind: str, began: float) -> None:
        """Tell ``observe`` how long something of ``kind`` took since ``began`` (perf_counter)."""
        if self.observe is not None:
            self.observe(kind, time.perf_counter() - began)

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations (one process at a time)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def schema_version(self) -> int:
        """The newest migration applied (within READINESS_TIMEOUT, else StoreUnavailable)."""

    def latest_version(self) -> int:
        """The schema this server's code is written for: its newest migration."""
        return max((version for version, _ in migrations(self.backend)), default=0)

    def check_version(self, current: int) -> None:
        """CannotOpen when the store's schema is newer than this server's (another node was
        upgraded and migrated it): this one would misread or damage it."""
        if current > self.latest_version():
            raise CannotOpen(
                f"the store's schema is version {current}, newer than this server's {self.latest_version()}: "
                "upgrade this node to the Almanac that migrated it"
            )

    async def readiness(self) -> str | None:
        """None when the database answers and its schema is exactly this server's; else why not."""
        try:
            current = await self.schema_version()
        except StoreUnavailable as error:
            return f"the store does not answer: {error}"
        latest = self.latest_version()
        if current > latest:
            return f"the store's schema is newer than this server: upgrade this node (schema {current}, node {latest})"
        return None if current == latest else f"migrations pending: the schema is {current}, this server needs {latest}"

    async def free_bytes(self) -> int | None:
        """What the disk holding the database has left, where this process can tell."""
        return None

    async def run(self, work: Callable[[Tx], Awaitable[T]], *, heavy: bool = False) -> T:
        """``work`` in one write transaction (a backend may run it where its connection lives,
        in one go, with other writes: ``work`` must then await nothing but its ``Tx``'s
        statements); ``heavy``: work of many rows (an import's batch), which a backend runs
        where it holds nobody else up."""
        async with self.transaction() as tx:
            return await work(tx)

    async def refresh_statistics(self, tables: Sequence[str]) -> None:  # noqa: B027 (most need none)
        """Tell the query planner what ``tables`` hold now (after a bulk write); a database that
        needs no such help does nothing."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction: committed when the block ends, rolled back if it raises."""

    @abstractmethod
    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of a read outside any transaction (retried once where the connection was lost)."""

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self.all(sql, params)
        return rows[0] if rows else None

    # the time-range index -----------------------------------------------------------------

    @abstractmethod
    async def write_spans(self, tx: Tx, rows: SpanRows) -> None:
        """Replace the index spans of objects (rows of object id, old span count, new spans)."""

    @abstractmethod
    async def forget_spans(self, tx: Tx, calendar_ids: Sequence[int]) -> None:
        """Drop the spans of whole calendars about to be deleted."""

    @abstractmethod
    async def read_spans(self, calendar_id: int) -> list[tuple[int, int, int, int]]:
        """A calendar's spans as (object id, start, end, exact), each object's in order."""

    @abstractmethod
    async def after_copy(self, tx: Tx, tables: Sequence[str]) -> None:
        """After rows were written with their ids: make new ids follow them (where they would not)."""

    @abstractmethod
    def spans_overlapping(self, calendar_ids: Sequence[int], start: int, end: int) -> tuple[str, list[Any]]:
        """A query of (object_id, start, end, exact) for the spans overlapping [start, end) as
        ``span_hits`` finds them, with its parameters."""

    @abstractmethod
    def span_hits(self, calendar_ids: Sequence[int], start: int, end: int, after_id: int) -> tuple[str, list[Any]]:
        """A subquery of (object_id, exact) for the objects with a span overlapping [start,
        end) (a span of no length at ``start`` counts) after ``after_id``; ``exact`` is 1 when a
        matching span is exact. Its parameters come with it."""
