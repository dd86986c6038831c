"""The SQLite connections (one writer, a few readers) and how rows become records."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.model import (
    Calendar,
    CalendarObject,
    Conflict,
    ImportJob,
    StoreFull,
    User,
    now_iso,
)

#: an object row's columns: CalendarObject's fields, by name and in order (``klass`` is ``class``)
_OBJECT_FIELDS = tuple("class" if f.name == "klass" else f.name for f in fields(CalendarObject))
_OBJECT_COLUMNS = ", ".join(_OBJECT_FIELDS)
_RECURRING = _OBJECT_FIELDS.index("recurring")
_CALENDAR_FIELDS = {"name", "description", "color", "timezone", "components", "is_default", "props", "slug"}
_USER_FIELDS = {"username", "email", "password_hash", "is_admin", "prefs"}
#: SQLite's default limit on host parameters is 999 on old builds: stay well under it
_CHUNK = 400
#: span ids are object_id * _SPAN_IDS + n, so an object's spans can be found without a scan
_SPAN_IDS = 1 << 20
#: how long a readiness probe waits for the store
READINESS_TIMEOUT = 2.0
T = TypeVar("T")


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(count: int) -> str:
    return ",".join("?" * count)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """A record class's field names (asked for every row: kept once known)."""
    if cls not in _FIELD_NAMES:
        _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return _FIELD_NAMES[cls]


def _record(cls: type[T], row: sqlite3.Row, **converted: Any) -> T:
    """A record from a row whose columns are named like the record's fields."""
    keys = row.keys()
    plain = {name: row[name] for name in _field_names(cls) if name not in converted and name in keys}
    return cls(**plain, **converted)


def _inserted(cursor: aiosqlite.Cursor | sqlite3.Cursor) -> int:
    """The id of the row an INSERT made."""
    if cursor.lastrowid is None:
        raise sqlite3.DatabaseError("the INSERT made no row")
    return cursor.lastrowid


def _present(row: sqlite3.Row | None) -> sqlite3.Row:
    """A row a statement must have found (one written in the same transaction)."""
    if row is None:
        raise sqlite3.DatabaseError("a row written in this transaction is gone")
    return row


@functools.cache
def _migrations() -> tuple[tuple[int, Traversable], ...]:
    """The numbered migration scripts (``NNNN_name.sql``) by version, in order (the package's
    files do not change while it runs)."""
    folder = resources.files("storage") / "migrations" / "sqlite"
    found = [(int(e.name.split("_", 1)[0]), e) for e in folder.iterdir() if e.name.endswith(".sql")]
    return tuple(sorted(found, key=lambda f: f[0]))


def _user(row: sqlite3.Row) -> User:
    return _record(User, row, is_admin=bool(row["is_admin"]), prefs=json.loads(row["prefs"]))


def _calendar(row: sqlite3.Row) -> Calendar:
    return _record(Calendar, row, is_default=bool(row["is_default"]), props=json.loads(row["props"]))


def _object(row: sqlite3.Row) -> CalendarObject:
    """The object a row starting with _OBJECT_COLUMNS holds. Those columns are the record's
    fields in order, so they are taken by position: this runs for every object a query returns."""
    values = list(row[: len(_OBJECT_FIELDS)])
    values[_RECURRING] = bool(values[_RECURRING])
    return CalendarObject(*values)


def _job(row: sqlite3.Row) -> ImportJob:
    lists = ("options", "calendars_created", "errors", "warnings")
    return _record(ImportJob, row, **{name: json.loads(row[name]) for name in lists})


class Connection:
    """The connections, the migrations and the transaction every write runs in."""

    def __init__(self, path: str | Path, readers: int = 2) -> None:
        self.path = Path(path)
        self._reader_count = max(1, readers)
        self._writer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._next_reader = itertools.cycle(range(self._reader_count))
        self._lock = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None)
        db.row_factory = sqlite3.Row
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=10000",
        ):
            await db.execute(f"PRAGMA {pragma}")
        return db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        await self._migrate()
        self._readers = [await self._connect() for _ in range(self._reader_count)]

    async def close(self) -> None:
        for db in [self._writer, *self._readers]:
            if db is not None:
                await db.close()
        self._writer, self._readers = None, []

    async def _migrate(self) -> None:
        db = self._writer
        assert db is not None
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        current = await self._schema_version(db)
        for version, entry in _migrations():
            if version > current:
                script = entry.read_text(encoding="utf-8")
                await db.executescript(
                    f"BEGIN;\n{script}\nINSERT INTO schema_migrations VALUES ({version}, '{now_iso()}');\nCOMMIT;"
                )

    @staticmethod
    async def _schema_version(db: aiosqlite.Connection) -> int:
        async with db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cursor:
            return int(_present(await cursor.fetchone())[0])

    async def readiness(self) -> str | None:
        if not self._readers:
            return "the store is not open"
        try:
            current = await asyncio.wait_for(self._schema_version(self._reader()), READINESS_TIMEOUT)
        except (sqlite3.Error, TimeoutError) as error:
            return f"the store does not answer: {error or 'timed out'}"
        latest = max((version for version, _ in _migrations()), default=0)
        return None if current >= latest else f"migrations pending: the schema is {current}, this server needs {latest}"

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        db = self._writer
        assert db is not None, "store is not open"
        async with self._lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                await db.execute("COMMIT")
            except BaseException as error:
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                    raise StoreFull("the disk holding the calendar store is full") from None
                raise

    def _reader(self) -> aiosqlite.Connection:
        return self._readers[next(self._next_reader)]

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        # One trip to the connection's thread (execute, fetch and close together).
        return list(await self._reader().execute_fetchall(sql, params))

    async def _update(
        self, table: str, row_id: int, changes: dict[str, Any], allowed: set[str], json_field: str
    ) -> None:
        """Set columns of one row (and updated_at); Conflict names the unique column hit."""
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown {table} fields: {unknown}")
        if not changes:
            return
        if json_field in changes:
            changes[json_field] = json.dumps(changes[json_field])
        assignments = ", ".join(f"{name} = ?" for name in changes)
        try:
            async with self._transaction() as db:
                await db.execute(
                    f"UPDATE {table} SET {assignments}, updated_at = ? WHERE id = ?",
                    (*changes.values(), now_iso(), row_id),
                )
        except sqlite3.IntegrityError as error:
            message = str(error)
            raise Conflict(next((c for c in ("email", "username", "slug") if c in message), "unique")) from None
