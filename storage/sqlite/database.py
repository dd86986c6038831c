"""SQLite through aiosqlite: one writer connection, a few readers beside it (WAL), and the
time-range index as an R*Tree."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.errors import CannotOpen, StoreFull, StoreUnavailable
from storage.model import now_iso
from storage.sql.database import (
    MAX_SPANS,
    READINESS_TIMEOUT,
    Database,
    Duplicate,
    Row,
    SpanRows,
    Tx,
    applied,
    migrations,
)
from storage.sqlite.lock import ProcessLock

T = TypeVar("T")

#: SQLite VM instructions a read may take on the event loop before it is interrupted and sent
#: to a reader thread (a read by a key takes tens, a listing row about 16: a few hundred rows,
#: under half a millisecond here), counted LOOP_READ_CHECK at a time (the progress handler's
#: interval)
LOOP_READ_STEPS = 4000
LOOP_READ_CHECK = 1000

#: span ids are object_id * SPAN_IDS + n, so an object's spans can be found without a scan
SPAN_IDS = MAX_SPANS + 1


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script (comments between them are left out)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""


class SQLiteTx:
    """The statements of one transaction on the writer connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self.db.execute_fetchall(sql, params))

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self.db.execute(sql, params) as cursor:
            row: Row | None = await cursor.fetchone()
            return row

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self.db.execute(sql, params) as cursor:
            return cursor.rowcount

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self.db.executemany(sql, rows)

    async def insert(self, sql: str, params: Sequence[Any]) -> int:
        async with self.db.execute(sql, params) as cursor:
            if cursor.lastrowid is None:
                raise sqlite3.DatabaseError("the INSERT made no row")
            return cursor.lastrowid


#: the most writes one group commits: it holds the event loop (about 0.2 ms a write here)
GROUP = 32
#: groups committed on the loop between two checkpoints (a write is a few pages of the log)
CHECKPOINT_GROUPS = 50


@dataclass(slots=True)
class Waiting:
    """A write waiting for its group: its work, its answer, when it came, whether its caller
    is gone (it is then not run)."""

    work: Callable[[Tx], Awaitable[Any]]
    done: asyncio.Future[Any]
    began: float
    cancelled: bool = False


class DirectTx:
    """The statements of one transaction run at once on a connection of the loop's own thread
    (``SQLiteDatabase.run``): its methods are awaitable but never wait."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def _execute(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        return self.connection.execute(sql, params)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._execute(sql, params).fetchall()

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self._execute(sql, params).fetchone()
        return row

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._execute(sql, params).rowcount

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.connection.executemany(sql, rows)

    async def insert(self, sql: str, params: Sequence[Any]) -> int:
        made = self._execute(sql, params).lastrowid
        if made is None:
            raise sqlite3.DatabaseError("the INSERT made no row")
        return made


def driven(work: Awaitable[T]) -> T:
    """The result of a coroutine that awaits nothing but ``DirectTx``'s statements, run here."""
    coroutine = work.__await__()
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a write of a group awaited something else than its statements")


def store_error(error: BaseException) -> BaseException:
    """A sqlite3 error of a write as the store says it (a unique rule, a full disk, a lock held
    too long); anything else as it is."""
    if isinstance(error, sqlite3.IntegrityError) and "UNIQUE" in str(error):
        return Duplicate(str(error))
    if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return StoreFull("the disk holding the calendar store is full")
    if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
        return StoreUnavailable(str(error))
    return error


class SQLiteDatabase(Database):
    """One SQLite file in WAL mode: writes are ``BEGIN IMMEDIATE`` transactions on one
    connection (an asyncio lock orders this process's writers; SQLite's busy timeout orders
    several processes'), reads go to the reader connections in turn."""

    backend = "sqlite"
    insertion_order = "rowid"
    byte_length = "LENGTH(CAST({} AS BLOB))"
    #: a page of a listing is read in the loop's thread (at most 16 steps a row, within
    #: LOOP_READ_STEPS), a trip to a thread and back less than pages of 1,000 there
    listing_page = 250
    for_update = ""
    skip_locked = ""

    def __init__(self, path: str | Path, readers: int = 2, statement_timeout: float = 30.0) -> None:
        self.path = Path(path)
        #: milliseconds a statement waits for another process's write before it gives up
        self.busy_timeout = int(statement_timeout * 1000)
        self._reader_count = max(1, readers)
        self._writer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        #: the connections in the event loop's own thread: the one reads start on (``all``),
        #: and the one groups of writes are committed on (``run``)
        self._quick: sqlite3.Connection | None = None
        self._loop_writer: sqlite3.Connection | None = None
        #: groups committed since the last checkpoint, and the checkpoint running
        self._uncheckpointed = 0
        self._checkpointing: asyncio.Future[None] | None = None
        self._quick_checks = 0
        #: statements that ran past LOOP_READ_STEPS there: they go to the readers at once
        self._slow: set[str] = set()
        self._next_reader = itertools.cycle(range(self._reader_count))
        self._lock = asyncio.Lock()
        #: writes waiting for the next group commit, and the task committing them
        self._waiting: collections.deque[Waiting] = collections.deque()
        self._committer: asyncio.Future[None] | None = None
        self._process_lock = ProcessLock(self.path.with_name(self.path.name + "-writer"), statement_timeout)

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None)
        db.row_factory = sqlite3.Row
        for pragma in (f"busy_timeout={self.busy_timeout}", "synchronous=NORMAL", "foreign_keys=ON"):
            await db.execute(f"PRAGMA {pragma}")
        await self._wal(db)
        return db

    def _connect_quick(self) -> sqlite3.Connection:
        """The loop's reading connection: it never waits for a lock (a busy file sends the read
        to a reader thread) and interrupts a statement past LOOP_READ_STEPS. The steps are
        counted, not timed: a clock would also count the time the loop's thread waits for the
        GIL, which SQLite gives up while it works."""

        def past_budget() -> bool:
            self._quick_checks += 1
            return self._quick_checks * LOOP_READ_CHECK > LOOP_READ_STEPS

        connection = sqlite3.connect(self.path, isolation_level=None, cached_statements=256)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA query_only=ON")
        connection.set_progress_handler(past_budget, LOOP_READ_CHECK)
        return connection

    def _connect_loop_writer(self) -> sqlite3.Connection:
        """The loop's writing connection: it never waits for a lock (every writer of every
        process takes the process lock first: a busy file is another program's, and the group
        gets StoreUnavailable) and never checkpoints (that writes and syncs the database file:
        a reader's thread does it, ``_checkpoint``)."""
        connection = sqlite3.connect(self.path, isolation_level=None, cached_statements=256)
        connection.row_factory = sqlite3.Row
        for pragma in ("busy_timeout=0", "synchronous=NORMAL", "foreign_keys=ON", "wal_autocheckpoint=0"):
            connection.execute(f"PRAGMA {pragma}")
        return connection

    async def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database file (what SQLite does by itself every
        1,000 pages), in a reader's thread, beside the writers."""
        try:
            await self._reader().execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as error:  # tried again after the next groups
            logging.getLogger(__name__).warning("checkpoint failed: %s", error)

    async def _wal(self, db: aiosqlite.Connection) -> None:
        """Put the file in WAL mode (once: it stays so). Switching does not wait for another
        process opening the same new file (SQLite does not call its busy handler there): try
        again until the busy timeout."""
        deadline = time.monotonic() + self.busy_timeout / 1000
        while True:
            try:  # reading the mode, too, is refused while another process switches it
                async with db.execute("PRAGMA journal_mode") as cursor:
                    row = await cursor.fetchone()
                if row is None or str(row[0]).lower() != "wal":
                    await db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.02)

    async def open(self) -> None:
        """Connect, put the file in WAL mode and migrate it while holding the process lock, so
        that processes starting at once on a new file open it one after the other (SQLite does not
        wait for another process's journal-mode switch or first write of a new file: that came
        back as "database is locked" once in a while when two nodes started together)."""
        step = "opening the folder"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._process_lock.open()
            step = "waiting for another process's write"
            await self._process_lock.acquire()
            try:
                step = "connecting"
                self._writer = await self._connect()
                step = "migrating"
                await self._migrate(self._writer)
            finally:
                self._process_lock.release()
            step = "connecting its readers"
            self._readers = [await self._connect() for _ in range(self._reader_count)]
            self._quick = self._connect_quick()
            self._loop_writer = self._connect_loop_writer()
        except (OSError, sqlite3.DatabaseError, StoreUnavailable) as error:
            await self.close()
            raise CannotOpen(
                f"the SQLite file {self.path} cannot be opened ({error}, {step}): name a folder this server may "
                "write in, or a file that is an Almanac store"
            ) from None
        except CannotOpen:
            await self.close()
            raise

    async def close(self) -> None:
        if self._checkpointing is not None:  # on a reader: it ends before the readers close
            await asyncio.wait({self._checkpointing})
        for db in [self._writer, *self._readers]:
            if db is not None:
                await db.close()
        for connection in (self._quick, self._loop_writer):
            if connection is not None:
                connection.close()
        self._writer, self._readers, self._quick, self._loop_writer = None, [], None, None
        self._process_lock.close()

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        """Apply the pending migrations in one transaction that holds the file's write lock from
        the reading of the version on: processes starting at once migrate one after the other."""
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            current = await self._version(db)
            self.check_version(current)
            for version, entry in migrations(self.backend):
                if version > current:
                    for statement in _statements(entry.read_text(encoding="utf-8")):
                        await db.execute(statement)
                    await db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, now_iso()))
                    applied(version, entry)
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                await db.execute("ROLLBACK")
            raise

    @staticmethod
    async def _version(db: aiosqlite.Connection) -> int:
        async with db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cursor:
            row = await cursor.fetchone()
            return int(row[0]) if row else 0

    async def schema_version(self) -> int:
        if not self._readers:
            raise StoreUnavailable("the store is not open")
        try:
            return await asyncio.wait_for(self._version(self._reader()), READINESS_TIMEOUT)
        except (sqlite3.Error, TimeoutError) as error:
            raise StoreUnavailable(str(error) or "timed out") from None

    async def free_bytes(self) -> int | None:
        return (await asyncio.to_thread(shutil.disk_usage, self.path.parent)).free

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        db = self._writer
        assert db is not None, "store is not open"
        began = time.perf_counter()
        async with self._lock:
            await self._process_lock.acquire()
            self.timed("wait", began)
            held = time.perf_counter()
            try:
                async with self._begun(db) as tx:
                    yield tx
            finally:
                self._process_lock.release()
                self.timed("write", held)

    async def run(self, work: Callable[[Tx], Awaitable[T]], *, heavy: bool = False) -> T:
        """A write, committed together with every other write waiting when its turn comes
        (group commit): the writer takes up to GROUP of them and runs them in one transaction
        on the event loop's own connection, each in a savepoint of its own (one that fails is
        rolled back alone and gets its own error), and answers each once the transaction is
        committed. A write of one object is a few tenths of a millisecond of SQL: in a thread it
        took three times as long, waiting for the GIL after every statement while the loop
        served requests. ``heavy`` work (an import's batch) has a transaction of its own in the
        writer's thread instead."""
        if heavy:
            async with self.transaction() as tx:
                return await work(tx)
        assert self._loop_writer is not None, "store is not open"
        waiting = Waiting(work, asyncio.get_running_loop().create_future(), time.perf_counter())
        self._waiting.append(waiting)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.ensure_future(self._commit_waiting())
        try:
            return await asyncio.shield(waiting.done)
        except asyncio.CancelledError:  # not run, if its group has not begun
            waiting.cancelled = True
            raise

    async def _commit_waiting(self) -> None:
        """Commit the waiting writes, a group at a time, until none waits; between two groups
        the loop serves others."""
        while self._waiting:
            group: list[Waiting] = []
            try:
                async with self._lock:  # the classic transactions' turn too
                    await self._process_lock.acquire()
                    try:
                        group = [self._waiting.popleft() for _ in range(min(GROUP, len(self._waiting)))]
                        started = time.perf_counter()
                        for each in group:
                            self.timed("wait", each.began)
                        assert self._loop_writer is not None
                        outcomes = self._in_writer(self._loop_writer, group)
                    finally:
                        self._process_lock.release()
                    self.timed("write", started)
            except asyncio.CancelledError:  # the server stops: the writes waiting are not confirmed
                gone = StoreUnavailable("the server is stopping: the write was not confirmed")
                self._answer([*self._waiting], [gone] * len(self._waiting))
                self._waiting.clear()
                raise
            except Exception as error:  # nothing of the group was written, or the lock was not had
                group = group or [self._waiting.popleft() for _ in range(min(GROUP, len(self._waiting)))]
                outcomes = [error] * len(group)
            self._answer(group, outcomes)
            self._uncheckpointed += 1
            idle = self._checkpointing is None or self._checkpointing.done()
            if self._uncheckpointed >= CHECKPOINT_GROUPS and idle:
                self._uncheckpointed = 0
                self._checkpointing = asyncio.ensure_future(self._checkpoint())
            await asyncio.sleep(0)

    @staticmethod
    def _answer(group: Sequence[Waiting], outcomes: Sequence[object]) -> None:
        for each, outcome in zip(group, outcomes, strict=True):
            if not each.done.done():
                if isinstance(outcome, BaseException):
                    each.done.set_exception(outcome)
                else:
                    each.done.set_result(outcome)

    @staticmethod
    def _in_writer(connection: sqlite3.Connection, group: Sequence[Waiting]) -> list[object]:
        """A group of writes in one transaction, each in a savepoint: what each gave or raised."""
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:  # another process held the lock too long
            raise StoreUnavailable(str(error)) from None
        outcomes: list[object] = []
        try:
            for each in group:
                if each.cancelled:
                    outcomes.append(None)
                    continue
                connection.execute("SAVEPOINT write")
                try:
                    outcomes.append(driven(each.work(DirectTx(connection))))
                    connection.execute("RELEASE write")
                except Exception as error:
                    try:
                        connection.execute("ROLLBACK TO write")
                        connection.execute("RELEASE write")
                    except sqlite3.Error:  # SQLite ended the transaction (a full disk): the group fails so
                        raise error from None
                    outcomes.append(store_error(error))
            connection.execute("COMMIT")
        except BaseException as error:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise store_error(error) from None
        return outcomes

    @asynccontextmanager
    async def _begun(self, db: aiosqlite.Connection) -> AsyncIterator[Tx]:
        """One write transaction on the writer connection, its errors mapped."""
        try:
            await db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:  # another process held the lock too long
            raise StoreUnavailable(str(error)) from None
        except BaseException:  # cancelled: the BEGIN may still have run in the connection's thread
            with contextlib.suppress(sqlite3.Error):
                await db.execute("ROLLBACK")
            raise
        try:
            yield SQLiteTx(db)
            await db.execute("COMMIT")
        except BaseException as error:
            with contextlib.suppress(sqlite3.Error):
                await db.execute("ROLLBACK")
            mapped = store_error(error)
            if mapped is error:
                raise
            raise mapped from None

    def _reader(self) -> aiosqlite.Connection:
        return self._readers[next(self._next_reader)]

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """The rows, read in the event loop's own thread when that takes under
        LOOP_READ_STEPS (most reads: a user, a calendar, an object by its name), else in a
        reader's thread (one trip: execute, fetch and close together). A trip to a thread and
        back costs more than such a read (it doubled the GETs served per second): the loop runs
        it, bounded by SQLite's count of its steps, and never waits for a lock there."""
        began = time.perf_counter()
        found: list[Row]
        if self._quick is not None and sql not in self._slow:
            self._quick_checks = 0
            try:
                found = self._quick.execute(sql, params).fetchall()
            except sqlite3.OperationalError as error:  # past its budget, or the file is busy
                if "interrupted" in str(error):
                    if len(self._slow) > 1000:
                        self._slow.clear()
                    self._slow.add(sql)
            else:
                self.timed("read", began)
                return found
        found = list(await self._reader().execute_fetchall(sql, params))
        self.timed("read", began)
        return found

    # the time-range index: an R*Tree over time -------------------------------------------

    async def write_spans(self, tx: Tx, rows: SpanRows) -> None:
        # Each statement is a trip to the connection's thread: skip the ones with nothing to do.
        stale = [(object_id * SPAN_IDS + n,) for _, object_id, old, _ in rows for n in range(old)]
        if stale:
            await tx.many("DELETE FROM spans WHERE id = ?", stale)
        fresh = [
            (object_id * SPAN_IDS + n, start, end, calendar_id, object_id, start, end, int(exact))
            for calendar_id, object_id, _, spans in rows
            for n, (start, end, exact) in enumerate(spans)
        ]
        if fresh:
            await tx.many("INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?)", fresh)

    async def forget_spans(self, tx: Tx, calendar_ids: Sequence[int]) -> None:
        # the R*Tree is a virtual table: it does not cascade
        for calendar_id in calendar_ids:
            rows = await tx.all(
                "SELECT id, span_count FROM objects WHERE calendar_id = ? AND span_count > 0", (calendar_id,)
            )
            await self.write_spans(tx, [(calendar_id, row[0], row[1], ()) for row in rows])

    async def read_spans(self, calendar_id: int) -> list[tuple[int, int, int, int]]:
        rows = await self.all(
            "SELECT object_id, s, e, exact FROM spans WHERE calendar_id = ? ORDER BY id", (calendar_id,)
        )
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    async def after_copy(self, tx: Tx, tables: Sequence[str]) -> None:
        """Nothing to do: a new row's id is one more than the largest."""

    def _overlapping(self, columns: str, calendar_ids: Sequence[int], start: int, end: int) -> tuple[str, list[Any]]:
        # t0/t1 are 32-bit floats rounded outward: they find candidates, s/e decide exactly
        marks = ",".join("?" * len(calendar_ids))
        sql = (
            f"SELECT {columns} FROM spans WHERE t0 < ? AND t1 >= ? AND calendar_id IN ({marks}) AND s < ? "
            "AND (e > ? OR (e = s AND s >= ?))"
        )
        return sql, [end, start, *calendar_ids, end, start, start]

    def spans_overlapping(self, calendar_ids: Sequence[int], start: int, end: int) -> tuple[str, list[Any]]:
        return self._overlapping("object_id, s, e, exact", calendar_ids, start, end)

    def span_hits(self, calendar_ids: Sequence[int], start: int, end: int, after_id: int) -> tuple[str, list[Any]]:
        sql, params = self._overlapping("object_id, MAX(exact) AS exact", calendar_ids, start, end)
        return f"{sql} AND object_id > ? GROUP BY object_id", [*params, after_id]
