"""PostgreSQL through asyncpg: a bounded pool per process, a statement timeout, and the
time-range index as a GiST index over int8 ranges."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import asyncpg.exceptions as pg

from storage.errors import CannotOpen, StoreFull, StoreUnavailable
from storage.sql.database import READINESS_TIMEOUT, Database, Duplicate, Row, SpanRows, Tx, applied, migrations

#: errors after which nothing was written and the same work may succeed when tried again
TRANSIENT: tuple[type[BaseException], ...] = (
    pg.PostgresConnectionError,  # class 08: the connection failed or was lost
    pg.TransactionRollbackError,  # class 40: serialization failure, deadlock
    pg.OperatorInterventionError,  # class 57: statement timeout, shutdown, cannot connect now
    pg.TooManyConnectionsError,
    pg.InterfaceError,  # the connection closed under us
    pg.InternalClientError,  # a connection left mid-protocol by a server that closed it
    OSError,
    TimeoutError,  # no connection of the pool came free in time
)
#: a lock key every Almanac process takes while it migrates (two nodes starting at once)
_MIGRATION_LOCK = 0x416C6D61


@functools.lru_cache(maxsize=2048)
def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2 ...`` (the store's SQL has no other ``?``)."""
    count = iter(range(1, 1 << 16))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """A connection given back to the pool keeps its session as it is: the store sets nothing
    in a session but at connect (its timeouts), holds no cursor, listens to nothing and takes its
    one advisory lock (migrations) back itself, and asyncpg rolls back a transaction left open.
    The default reset is one more round trip to the server per read (a sixth of a GET's time)."""


def _reusable(connection: asyncpg.Connection) -> bool:
    """Whether a pooled connection can serve the next task as it is: open, and in no transaction."""
    try:
        return not connection.is_closed() and not connection.is_in_transaction()
    except pg.InterfaceError:  # it closed, and the pool took it back at once
        return False


def _affected(status: str) -> int:
    """How many rows a command changed, from its status (``DELETE 3``, ``INSERT 0 1``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresTx:
    """The statements of one transaction on one pooled connection."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self.connection.fetch(_numbered(sql), *params))

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = await self.connection.fetchrow(_numbered(sql), *params)
        return row

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return _affected(await self.connection.execute(_numbered(sql), *params))

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) == 1:  # one row (a PUT's change): a plain statement, without a batch's task
            await self.run(sql, rows[0])
            return
        # asyncpg's executemany does not end when cancelled while the connection's buffers are
        # full (it keeps waiting to write): it runs as a task of its own, and a cancel cuts the
        # connection off under it (as _connection would) and waits for it to end.
        work = asyncio.ensure_future(self.connection.executemany(_numbered(sql), rows))
        try:
            await asyncio.wait({work})
        except asyncio.CancelledError:
            self.connection.terminate()
            work.cancel()
            await asyncio.wait({work}, timeout=5)
            if work.done() and not work.cancelled():
                work.exception()  # retrieved: the connection's end, which the cancel caused
            raise
        work.result()

    async def insert(self, sql: str, params: Sequence[Any]) -> int:
        return int(await self.connection.fetchval(_numbered(sql + " RETURNING id"), *params))


class PostgresDatabase(Database):
    """A PostgreSQL database, shared by every process and node of one Almanac."""

    backend = "postgres"
    insertion_order = "seq"
    byte_length = "OCTET_LENGTH({})"
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, pool_size: int = 10, statement_timeout: float = 30.0) -> None:
        self.url = url
        self.pool_size = max(1, pool_size)
        self.statement_timeout = statement_timeout
        self._pool: asyncpg.Pool | None = None
        #: connections taken from the pool and kept between uses (asyncpg's acquire and release
        #: cost a sixth of a GET); each goes back to the pool when a task waits there for one
        self._idle: list[asyncpg.Connection] = []
        self._waiting = 0

    async def open(self) -> None:
        settings = {
            "statement_timeout": str(int(self.statement_timeout * 1000)),
            "idle_in_transaction_session_timeout": str(int(self.statement_timeout * 2000)),
            "plan_cache_mode": "force_custom_plan",
        }
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                server_settings=settings,
                timeout=10,
                reset=_nothing_to_reset,
            )
            async with self._pool.acquire() as connection:
                await self._migrate(connection)
        except pg.InvalidCatalogNameError as error:
            await self.close()
            name = urlsplit(self.url).path.lstrip("/")
            raise CannotOpen(f"{error}: create it (createdb {name}) or name another database") from None
        except (pg.InvalidPasswordError, pg.InvalidAuthorizationSpecificationError) as error:
            await self.close()
            raise CannotOpen(f"PostgreSQL refused the connection ({error}): correct the user or password") from None
        except TRANSIENT as error:
            await self.close()
            raise CannotOpen(
                f"PostgreSQL does not answer ({error or type(error).__name__}): start it, or correct the host and port"
            ) from None
        except pg.PostgresError as error:
            await self.close()
            raise CannotOpen(f"PostgreSQL refused to open the store: {error}") from None

    async def close(self) -> None:
        if self._pool is not None:
            await self._give_back_idle()
            await self._pool.close()
            self._pool = None

    async def _migrate(self, connection: asyncpg.Connection) -> None:
        await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            current = await connection.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            self.check_version(current)
            for version, entry in migrations(self.backend):
                if version > current:
                    async with connection.transaction():
                        await connection.execute(entry.read_text(encoding="utf-8"))
                        await connection.execute(
                            "INSERT INTO schema_migrations VALUES ($1, to_char(now() AT TIME ZONE 'UTC', "
                            '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\'))',
                            version,
                        )
                    applied(version, entry)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    def _ready_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("the store is not open")
        return self._pool

    async def schema_version(self) -> int:
        try:
            async with asyncio.timeout(READINESS_TIMEOUT), self._connection() as connection:
                return int(await connection.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
        except TRANSIENT as error:
            raise StoreUnavailable(str(error) or "timed out") from None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the pool. A task cancelled in the middle of a statement (a server
        stopping, a client gone) leaves its connection mid-protocol, the server still waiting for
        the rest and holding its locks: that connection is closed at once (PostgreSQL rolls its
        transaction back), never handed to the next task."""
        pool = self._ready_pool()
        while self._idle and not _reusable(self._idle[-1]):  # ended while idle (a restart): replaced
            await pool.release(self._idle.pop())
        if self._idle:
            connection = self._idle.pop()
        else:
            self._waiting += 1
            try:
                async with asyncio.timeout(self.statement_timeout):  # asyncpg's own costs a task per acquire
                    connection = await pool.acquire()
            finally:
                self._waiting -= 1
        try:
            yield connection
        except asyncio.CancelledError:
            with contextlib.suppress(pg.InterfaceError):  # cut off already (PostgresTx.many)
                connection.terminate()
            raise
        finally:
            if self._waiting or self._pool is not pool or not _reusable(connection):
                await pool.release(connection)  # to a task waiting in the pool, or to be reset or replaced
            else:
                self._idle.append(connection)

    async def _give_back_idle(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await self._ready_pool().release(connection)

    async def _expire(self) -> None:
        """Reconnect every connection once it is next free (after one was lost, the others
        likely were too)."""
        await self._ready_pool().expire_connections()
        await self._give_back_idle()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction. When the connection dies during its COMMIT, whether it was
        committed is unknown: it is asked on a fresh connection (``txid_status``) before
        anything is answered, so a write that was kept is never reported as lost."""
        xid: int | None = None
        began = time.perf_counter()
        try:
            async with self._connection() as connection:
                self.timed("wait", began)
                began = time.perf_counter()
                transaction = connection.transaction()
                await transaction.start()
                try:
                    # asked first: the rows a write locks (its calendar's) are held one round trip less
                    found = await connection.fetchval("SELECT txid_current()")
                    yield PostgresTx(connection)
                    xid = found
                except asyncio.CancelledError:
                    raise  # the connection is cut off (_connection): PostgreSQL rolls back
                except BaseException:
                    await transaction.rollback()
                    raise
                await transaction.commit()
                self.timed("write", began)
        except pg.UniqueViolationError as error:
            raise Duplicate(f"{error} {error.constraint_name or ''}") from None
        except pg.CharacterNotInRepertoireError as error:
            raise ValueError(f"PostgreSQL cannot store this text (a NUL character?): {error}") from None
        except pg.DiskFullError:
            raise StoreFull("the disk holding the calendar store is full") from None
        except TRANSIENT as error:
            if xid is not None and await self._committed(xid):
                return  # only the answer to the COMMIT was lost
            raise StoreUnavailable(str(error) or type(error).__name__) from None

    async def _committed(self, xid: int) -> bool:
        """Whether transaction ``xid`` was committed, asked on a fresh connection; one whose
        end is not yet known is asked again until the statement timeout. StoreUnavailable when
        the database cannot say."""
        deadline = asyncio.get_running_loop().time() + self.statement_timeout
        await self._expire()
        while True:
            try:
                async with self._connection() as connection:
                    status = await connection.fetchval("SELECT txid_status($1)", xid)
            except TRANSIENT as error:
                status = f"unknown ({error})"
            if status in ("committed", "aborted", None):
                return status == "committed"
            if asyncio.get_running_loop().time() > deadline:
                raise StoreUnavailable(f"whether the write was kept is unknown: the database says {status}")
            await asyncio.sleep(0.05)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        query = _numbered(sql)
        began = time.perf_counter()
        for attempt in (1, 2):  # a read is safe to send again on a fresh connection
            try:
                async with self._connection() as connection:
                    found = list(await connection.fetch(query, *params))
                    self.timed("read", began)
                    return found
            except TRANSIENT as error:
                if attempt == 2 or isinstance(error, pg.QueryCanceledError):
                    raise StoreUnavailable(str(error) or type(error).__name__) from None
                await self._expire()
        raise AssertionError("unreachable")

    async def refresh_statistics(self, tables: Sequence[str]) -> None:
        """ANALYZE: where autovacuum is off or behind, the planner would go on estimating a
        table from when it was small (a listing of 10,000 members took 55 ms instead of 36)."""
        try:
            async with self._connection() as connection:
                await connection.execute(f"ANALYZE {', '.join(tables)}")
        except (*TRANSIENT, pg.PostgresError) as error:  # the next bulk write tries again
            logging.getLogger(__name__).warning("ANALYZE failed: %s", error)

    # the time-range index: a GiST index over (calendar_id, during) --------------------------

    async def write_spans(self, tx: Tx, rows: SpanRows) -> None:
        stale = [object_id for _, object_id, old, _ in rows if old]
        # the old spans go in the same statement (one round trip): a statement's parts all see
        # the rows as they were before it
        drop = "WITH stale AS (DELETE FROM spans WHERE object_id = ANY(?::bigint[])) " if stale else ""
        fresh = [
            (object_id, calendar_id, start, end, int(exact))
            for calendar_id, object_id, _, spans in rows
            for start, end, exact in spans
        ]
        if fresh:
            # a span of no length [s, s] is stored as [s, s + 1): it overlaps a query range
            # exactly when s lies in it, as in SQLite's spans
            columns = list(zip(*fresh, strict=True))
            await tx.run(
                f"{drop}INSERT INTO spans (object_id, calendar_id, during, exact) "
                "SELECT o, c, int8range(s, GREATEST(e, s + 1)), x "
                "FROM unnest(?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::int[]) AS t(o, c, s, e, x)",
                ([stale] if stale else []) + columns,
            )
        elif stale:
            await tx.run("DELETE FROM spans WHERE object_id = ANY(?::bigint[])", (stale,))

    async def forget_spans(self, tx: Tx, calendar_ids: Sequence[int]) -> None:
        """Nothing to do: spans go with their objects (ON DELETE CASCADE)."""

    async def read_spans(self, calendar_id: int) -> list[tuple[int, int, int, int]]:
        # a span of no length was stored as [s, s + 1): it is read back as such, which every
        # query treats alike
        rows = await self.all(
            "SELECT object_id, lower(during), upper(during), exact FROM spans WHERE calendar_id = ? "
            "ORDER BY object_id, lower(during)",
            (calendar_id,),
        )
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    async def after_copy(self, tx: Tx, tables: Sequence[str]) -> None:
        for table in tables:  # identity columns do not follow ids written explicitly
            await tx.run(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )

    def _overlapping(self, columns: str, calendar_ids: Sequence[int], start: int, end: int) -> tuple[str, list[Any]]:
        marks = ",".join("?" * len(calendar_ids))
        if end > start:
            overlap, bounds = "during && int8range(?, ?)", [start, end]
        else:  # an empty query range: spans that strictly contain its point, as SQLite's test says
            overlap, bounds = "during @> ?::bigint AND lower(during) < ?", [start, end]
        return f"SELECT {columns} FROM spans WHERE calendar_id IN ({marks}) AND {overlap}", [*calendar_ids, *bounds]

    def spans_overlapping(self, calendar_ids: Sequence[int], start: int, end: int) -> tuple[str, list[Any]]:
        # a span of no length was stored as [s, s + 1): it is read back as such
        return self._overlapping("object_id, lower(during), upper(during), exact", calendar_ids, start, end)

    def span_hits(self, calendar_ids: Sequence[int], start: int, end: int, after_id: int) -> tuple[str, list[Any]]:
        sql, params = self._overlapping("object_id, MAX(exact) AS exact", calendar_ids, start, end)
        return f"{sql} AND object_id > ? GROUP BY object_id", [*params, after_id]
