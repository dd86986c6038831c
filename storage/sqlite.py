"""The embedded store: SQLite in WAL mode through aiosqlite.

One writer connection (writes are serialised by an asyncio lock and run as ``BEGIN
IMMEDIATE`` transactions) and a few reader connections, which WAL lets run beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import sqlite3
import time
import uuid as uuid_module
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.base import PreconditionFailed, Store
from storage.model import (
    Calendar,
    CalendarObject,
    Change,
    Conflict,
    ImportFilter,
    ImportItem,
    ImportJob,
    ImportTarget,
    JobStatus,
    NewCalendar,
    NewImport,
    ObjectWrite,
    StoreFull,
    User,
    now_iso,
)

_OBJECT_FIELDS = (
    "id", "calendar_id", "href", "uid", "etag", "component", "ical", "start_utc", "end_utc", "recurring",
    "summary", "class", "import_id", "created_at", "modified_at",
)  # fmt: skip
_OBJECT_COLUMNS = ", ".join(_OBJECT_FIELDS)
_CALENDAR_FIELDS = {"name", "description", "color", "timezone", "components", "is_default", "props", "slug"}
_USER_FIELDS = {"username", "email", "password_hash", "is_admin", "prefs"}
#: SQLite's default limit on host parameters is 999 on old builds: stay well under it
_CHUNK = 400
#: span ids are object_id * _SPAN_IDS + n, so an object's spans can be found without a scan
_SPAN_IDS = 1 << 20
T = TypeVar("T")


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(count: int) -> str:
    return ",".join("?" * count)


@functools.cache
def _field_names(cls: Any) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _record(cls: type[T], row: sqlite3.Row, **converted: Any) -> T:
    """A record from a row whose columns are named like the record's fields."""
    keys = row.keys()
    plain = {name: row[name] for name in _field_names(cls) if name not in converted and name in keys}  # type: ignore[arg-type]
    return cls(**plain, **converted)


def _user(row: sqlite3.Row) -> User:
    return _record(User, row, is_admin=bool(row["is_admin"]), prefs=json.loads(row["prefs"]))


def _calendar(row: sqlite3.Row) -> Calendar:
    return _record(Calendar, row, is_default=bool(row["is_default"]), props=json.loads(row["props"]))


def _object(row: sqlite3.Row) -> CalendarObject:
    # Positional, in _OBJECT_COLUMNS' order: this runs for every object a query returns.
    values: tuple[Any, ...] = tuple(row[:15])
    return CalendarObject(*values[:9], bool(values[9]), *values[10:])  # type: ignore[call-arg]  # positional, for speed


def _job(row: sqlite3.Row) -> ImportJob:
    lists = ("options", "calendars_created", "errors", "warnings")
    return _record(ImportJob, row, **{name: json.loads(row[name]) for name in lists})


class SQLiteStore(Store):
    def __init__(self, path: str | Path, readers: int = 2) -> None:
        self.path = Path(path)
        self._reader_count = max(1, readers)
        self._writer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._next_reader = itertools.cycle(range(self._reader_count))
        self._lock = asyncio.Lock()

    # connection management ---------------------------------------------------------------

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
        async with db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cursor:
            current = (await cursor.fetchone())[0]  # type: ignore[index]
        folder = resources.files("storage") / "migrations" / "sqlite"
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".sql"):
                continue
            version = int(entry.name.split("_", 1)[0])
            if version <= current:
                continue
            script = entry.read_text(encoding="utf-8")
            await db.executescript(
                f"BEGIN;\n{script}\nINSERT INTO schema_migrations VALUES ({version}, '{now_iso()}');\nCOMMIT;"
            )

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

    # users -------------------------------------------------------------------------------

    async def create_user(self, username: str, email: str | None, password_hash: str, is_admin: bool = False) -> User:
        now = now_iso()
        try:
            async with self._transaction() as db:
                cursor = await db.execute(
                    "INSERT INTO users (username, email, password_hash, is_admin, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (username, email, password_hash, int(is_admin), now, now),
                )
                user_id = cursor.lastrowid
        except sqlite3.IntegrityError as error:
            field = "email" if "email" in str(error) else "username"
            raise Conflict(field) from None
        user = await self.get_user(user_id)  # type: ignore[arg-type]
        assert user is not None
        return user

    async def get_user(self, user_id: int) -> User | None:
        row = await self._one("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(row) if row else None

    async def find_user(self, login: str) -> User | None:
        row = await self._one(
            "SELECT * FROM users WHERE username = ? OR email = ? ORDER BY username = ? DESC LIMIT 1",
            (login, login, login),
        )
        return _user(row) if row else None

    async def list_users(self) -> list[User]:
        return [_user(row) for row in await self._all("SELECT * FROM users ORDER BY username")]

    async def update_user(self, user_id: int, **changes: Any) -> User | None:
        await self._update("users", user_id, changes, _USER_FIELDS, "prefs")
        return await self.get_user(user_id)

    async def delete_user(self, user_id: int) -> bool:
        async with self._transaction() as db:
            async with db.execute("SELECT id FROM calendars WHERE owner_id = ?", (user_id,)) as cursor:
                await self._forget_spans(db, [row[0] for row in await cursor.fetchall()])
            cursor = await db.execute("DELETE FROM users WHERE id = ?", (user_id,))
            return cursor.rowcount > 0

    # tokens ------------------------------------------------------------------------------

    async def add_token(self, user_id: int, token_hash: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)",
                (user_id, token_hash, now_iso()),
            )

    async def user_for_token(self, token_hash: str) -> User | None:
        row = await self._one(
            "SELECT users.* FROM tokens JOIN users ON users.id = tokens.user_id WHERE token_hash = ?",
            (token_hash,),
        )
        return _user(row) if row else None

    async def delete_tokens(self, user_id: int) -> int:
        async with self._transaction() as db:
            cursor = await db.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))
            return cursor.rowcount

    # sessions ----------------------------------------------------------------------------

    async def add_session(self, user_id: int, kind: str, session_hash: str, expires_at: int) -> None:
        async with self._transaction() as db:
            await db.execute("DELETE FROM sessions WHERE expires_at < ?", (int(time.time()),))
            await db.execute(
                "INSERT INTO sessions (user_id, kind, session_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (user_id, kind, session_hash, now_iso(), expires_at),
            )

    async def use_session(self, session_hash: str, kind: str, now: int, timeout: int) -> User | None:
        row = await self._one(
            "SELECT users.*, sessions.expires_at AS session_expires FROM sessions JOIN users "
            "ON users.id = sessions.user_id WHERE session_hash = ? AND kind = ? AND expires_at > ?",
            (session_hash, kind, now),
        )
        if row is None:
            return None
        if row is not None and row["session_expires"] - now > timeout - min(60, timeout // 10):
            return _user(row)  # used a moment ago: no need to write the new expiry yet
        async with self._transaction() as db:
            async with db.execute(
                "UPDATE sessions SET expires_at = ? WHERE session_hash = ? AND kind = ? AND expires_at > ? "
                "RETURNING user_id",
                (now + timeout, session_hash, kind, now),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            async with db.execute("SELECT * FROM users WHERE id = ?", (row[0],)) as cursor:
                user = await cursor.fetchone()
        return _user(user) if user else None

    async def delete_session(self, session_hash: str, kind: str) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute("DELETE FROM sessions WHERE session_hash = ? AND kind = ?", (session_hash, kind))
            return cursor.rowcount > 0

    # calendars ---------------------------------------------------------------------------

    async def _insert_calendar(self, db: aiosqlite.Connection, calendar: NewCalendar) -> Calendar:
        async with db.execute(
            "SELECT slug FROM calendars WHERE owner_id = ? AND (slug = ? OR slug LIKE ?)",
            (calendar.owner_id, calendar.slug, f"{calendar.slug}-%"),
        ) as cursor:
            taken = {row[0] for row in await cursor.fetchall()}
        slug, number = calendar.slug, 1
        while slug in taken:
            number += 1
            slug = f"{calendar.slug}-{number}"
        now = now_iso()
        cursor = await db.execute(
            "INSERT INTO calendars (uuid, owner_id, slug, name, description, color, timezone, components, "
            "is_default, props, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                calendar.uuid, calendar.owner_id, slug, calendar.name, calendar.description,
                calendar.color, calendar.timezone, calendar.components, int(calendar.is_default),
                json.dumps(calendar.props), now, now,
            ),
        )  # fmt: skip
        async with db.execute("SELECT * FROM calendars WHERE id = ?", (cursor.lastrowid,)) as rows:
            return _calendar(await rows.fetchone())  # type: ignore[arg-type]

    async def create_calendar(self, calendar: NewCalendar) -> Calendar:
        async with self._transaction() as db:
            return await self._insert_calendar(db, calendar)

    async def get_calendar(self, calendar_id: int) -> Calendar | None:
        row = await self._one("SELECT * FROM calendars WHERE id = ?", (calendar_id,))
        return _calendar(row) if row else None

    async def get_calendar_by_uuid(self, uuid: str) -> Calendar | None:
        row = await self._one("SELECT * FROM calendars WHERE uuid = ?", (uuid,))
        return _calendar(row) if row else None

    async def get_calendar_by_slug(self, owner_id: int, slug: str) -> Calendar | None:
        row = await self._one("SELECT * FROM calendars WHERE owner_id = ? AND slug = ?", (owner_id, slug))
        return _calendar(row) if row else None

    async def find_calendar_by_name(self, owner_id: int, name: str) -> Calendar | None:
        row = await self._one(
            "SELECT * FROM calendars WHERE owner_id = ? AND name = ? ORDER BY id LIMIT 1", (owner_id, name)
        )
        return _calendar(row) if row else None

    async def list_calendars(self, owner_id: int) -> list[Calendar]:
        rows = await self._all(
            "SELECT calendars.*, (SELECT COUNT(*) FROM objects WHERE calendar_id = calendars.id) "
            "AS object_count FROM calendars WHERE owner_id = ? ORDER BY is_default DESC, name, id",
            (owner_id,),
        )
        return [_calendar(row) for row in rows]

    async def update_calendar(self, calendar_id: int, **changes: Any) -> Calendar | None:
        await self._update("calendars", calendar_id, changes, _CALENDAR_FIELDS, "props")
        return await self.get_calendar(calendar_id)

    async def delete_calendar(self, calendar_id: int) -> bool:
        async with self._transaction() as db:
            return await self._delete_calendar(db, calendar_id)

    async def _delete_calendar(self, db: aiosqlite.Connection, calendar_id: int) -> bool:
        await self._forget_spans(db, [calendar_id])  # the R*Tree does not cascade
        cursor = await db.execute("DELETE FROM calendars WHERE id = ?", (calendar_id,))
        return cursor.rowcount > 0

    # objects -----------------------------------------------------------------------------

    async def get_object(
        self, calendar_id: int, *, href: str | None = None, uid: str | None = None
    ) -> CalendarObject | None:
        column, value = ("href", href) if href is not None else ("uid", uid)
        row = await self._one(
            f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE calendar_id = ? AND {column} = ?", (calendar_id, value)
        )
        return _object(row) if row else None

    async def get_objects(self, calendar_id: int, hrefs: Sequence[str]) -> list[CalendarObject]:
        found: list[CalendarObject] = []
        for start in range(0, len(hrefs), 500):
            part = hrefs[start : start + 500]
            sql = f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE calendar_id = ? AND href IN ({_marks(len(part))})"
            found += [_object(row) for row in await self._all(sql, (calendar_id, *part))]
        return found

    async def changes_since(
        self, calendar_id: int, revision: int, after_href: str = "", *, limit: int | None = None, text: bool = True
    ) -> list[tuple[Change, CalendarObject | None]]:
        columns = ", ".join("'' AS ical" if f == "ical" and not text else f"o.{f}" for f in _OBJECT_FIELDS)
        sql = (
            f"SELECT {columns}, c.calendar_id AS c_calendar, c.href AS c_href, c.uid AS c_uid, "
            "c.revision, c.deleted, c.changed_at FROM changes AS c "
            "LEFT JOIN objects AS o ON o.calendar_id = c.calendar_id AND o.href = c.href "
            "WHERE c.calendar_id = ? AND "
            + ("(c.revision, c.href) > (?, ?)" if after_href else "c.revision > ?")
            + " ORDER BY c.revision, c.href"
        )
        params: list[Any] = [calendar_id, revision, *([after_href] if after_href else [])]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        result = []
        for row in await self._all(sql, params):
            change = Change(
                row["c_calendar"], row["c_href"], row["c_uid"], row["revision"], bool(row["deleted"]), row["changed_at"]
            )
            result.append((change, _object(row) if row["id"] is not None else None))
        return result

    async def calendar_size(self, calendar_id: int) -> int:
        row = await self._one(
            "SELECT SUM(LENGTH(CAST(ical AS BLOB))) FROM objects WHERE calendar_id = ?", (calendar_id,)
        )
        return int(row[0] or 0) if row else 0

    async def get_object_by_id(self, object_id: int) -> CalendarObject | None:
        row = await self._one(f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE id = ?", (object_id,))
        return _object(row) if row else None

    async def list_objects(
        self, calendar_ids: Sequence[int], *, after_id: int = 0, limit: int | None = None
    ) -> list[CalendarObject]:
        if not calendar_ids:
            return []
        sql = f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE calendar_id IN ({_marks(len(calendar_ids))}) AND id > ?"
        params: list[Any] = [*calendar_ids, after_id]
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_object(row) for row in await self._all(sql, params)]

    async def objects_in_range(
        self,
        calendar_ids: Sequence[int],
        start: int,
        end: int,
        *,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[tuple[CalendarObject, bool]]:
        if not calendar_ids:
            return []
        sql = (
            f"SELECT {_OBJECT_COLUMNS}, hits.exact FROM (SELECT object_id, MAX(exact) AS exact FROM spans "
            f"WHERE t0 < ? AND t1 >= ? AND calendar_id IN ({_marks(len(calendar_ids))}) AND s < ? "
            "AND (e > ? OR (e = s AND s >= ?)) AND object_id > ? GROUP BY object_id) AS hits "
            "JOIN objects ON objects.id = hits.object_id ORDER BY objects.id"
        )
        params: list[Any] = [end, start, *calendar_ids, end, start, start, after_id]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [(_object(row), bool(row["exact"])) for row in await self._all(sql, params)]

    async def _in_period(
        self, select: str, column: str, calendar_ids: Sequence[int], since: str | None, until: str | None, order: str
    ) -> list[sqlite3.Row]:
        """Rows of ``select`` for the calendars whose ``column`` time lies in [since, until]."""
        sql = f"{select} AND calendar_id IN ({_marks(len(calendar_ids))})"
        params: list[Any] = list(calendar_ids)
        for operator, value in ((">=", since), ("<=", until)):
            if value:
                sql += f" AND {column} {operator} ?"
                params.append(value)
        return await self._all(f"{sql} ORDER BY {order}", params)

    async def modified_objects(
        self, calendar_ids: Sequence[int], since: str | None, until: str | None
    ) -> list[CalendarObject]:
        select = f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE 1 = 1"
        rows = await self._in_period(select, "modified_at", calendar_ids, since, until, "id")
        return [_object(row) for row in rows]

    async def deleted_since(self, calendar_ids: Sequence[int], since: str | None, until: str | None) -> list[Change]:
        select = "SELECT * FROM changes WHERE deleted = 1"
        rows = await self._in_period(select, "changed_at", calendar_ids, since, until, "revision")
        return [_record(Change, row, deleted=True) for row in rows]

    async def iter_objects(self, calendar_ids: Sequence[int], batch: int = 500) -> AsyncIterator[CalendarObject]:
        after = 0
        while True:
            rows = await self.list_objects(calendar_ids, after_id=after, limit=batch)
            for row in rows:
                yield row
            if len(rows) < batch:
                return
            after = rows[-1].id

    async def _bump(self, db: aiosqlite.Connection, calendar_id: int) -> int:
        async with db.execute(
            "UPDATE calendars SET sync_revision = sync_revision + 1, updated_at = ? WHERE id = ? "
            "RETURNING sync_revision",
            (now_iso(), calendar_id),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise LookupError(f"calendar {calendar_id} does not exist")
        return row[0]

    async def _write_spans(
        self,
        db: aiosqlite.Connection,
        calendar_id: int,
        rows: Sequence[tuple[int, int, Sequence[tuple[int, int, bool]]]],
    ) -> None:
        """Replace the index spans of objects: rows of (object_id, old span_count, new spans)."""
        # Each statement is a trip to the connection's thread: skip the ones with nothing to do.
        stale = [(object_id * _SPAN_IDS + n,) for object_id, old, _ in rows for n in range(old)]
        if stale:
            await db.executemany("DELETE FROM spans WHERE id = ?", stale)
        fresh = [
            (object_id * _SPAN_IDS + n, start, end, calendar_id, object_id, start, end, int(exact))
            for object_id, _, spans in rows
            for n, (start, end, exact) in enumerate(spans[: _SPAN_IDS - 1])
        ]
        if fresh:
            await db.executemany("INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?)", fresh)
        counts = [(min(len(spans), _SPAN_IDS - 1), object_id) for object_id, old, spans in rows if len(spans) != old]
        if counts:
            await db.executemany("UPDATE objects SET span_count = ? WHERE id = ?", counts)

    async def _forget_spans(self, db: aiosqlite.Connection, calendar_ids: Sequence[int]) -> None:
        """Drop the spans of whole calendars (the R*Tree does not cascade)."""
        for calendar_id in calendar_ids:
            async with db.execute(
                "SELECT id, span_count FROM objects WHERE calendar_id = ? AND span_count > 0", (calendar_id,)
            ) as cursor:
                rows = [(row[0], row[1], ()) for row in await cursor.fetchall()]
            await self._write_spans(db, calendar_id, rows)

    async def _record_changes(
        self, db: aiosqlite.Connection, calendar_id: int, revision: int, changes: Sequence[tuple[str, str, bool]]
    ) -> None:
        now = now_iso()
        await db.executemany(
            "INSERT INTO changes (calendar_id, href, uid, revision, deleted, changed_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (calendar_id, href) DO UPDATE SET uid = excluded.uid, revision = excluded.revision, "
            "deleted = excluded.deleted, changed_at = excluded.changed_at",
            [(calendar_id, href, uid, revision, int(deleted), now) for href, uid, deleted in changes],
        )

    async def put_object(
        self, calendar_id: int, write: ObjectWrite, *, if_etag: str | None = None, create_only: bool = False
    ) -> tuple[CalendarObject, bool]:
        async with self._transaction() as db:
            return await self._put(db, calendar_id, write, if_etag=if_etag, create_only=create_only)

    async def delete_object(self, calendar_id: int, href: str, *, if_etag: str | None = None) -> bool:
        async with self._transaction() as db:
            return await self._delete(db, calendar_id, href, if_etag)

    async def move_object(
        self,
        calendar_id: int,
        href: str,
        target_id: int,
        write: ObjectWrite,
        *,
        overwrite: bool = True,
        keep_source: bool = False,
    ) -> tuple[CalendarObject, bool]:
        async with self._transaction() as db:
            if not keep_source and not await self._delete(db, calendar_id, href, None):
                raise LookupError(href)
            return await self._put(db, target_id, write, create_only=not overwrite)

    async def _put(
        self,
        db: aiosqlite.Connection,
        calendar_id: int,
        write: ObjectWrite,
        *,
        if_etag: str | None = None,
        create_only: bool = False,
    ) -> tuple[CalendarObject, bool]:
        now = now_iso()
        async with db.execute(
            "SELECT id, href, etag, span_count FROM objects WHERE calendar_id = ? AND (href = ? OR uid = ?)",
            (calendar_id, write.href, write.uid),
        ) as cursor:
            rows = await cursor.fetchall()
        current = next((r for r in rows if r["href"] == write.href), None)
        if any(r["href"] != write.href for r in rows):
            raise Conflict("uid")
        if create_only and current is not None:
            raise PreconditionFailed("exists")
        if if_etag is not None and (current is None or if_etag not in ("*", current["etag"])):
            raise PreconditionFailed("etag")
        values = (
            write.uid, write.etag, write.component, write.ical, write.start_utc, write.end_utc,
            int(write.recurring), write.summary, write.klass, now,
        )  # fmt: skip
        if current is None:
            cursor = await db.execute(
                "INSERT INTO objects (uid, etag, component, ical, start_utc, end_utc, recurring, summary, "
                "class, modified_at, created_at, calendar_id, href) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, now, calendar_id, write.href),
            )
            object_id = cursor.lastrowid
        else:
            object_id = current["id"]
            await db.execute(
                "UPDATE objects SET uid = ?, etag = ?, component = ?, ical = ?, start_utc = ?, end_utc = ?, "
                "recurring = ?, summary = ?, class = ?, modified_at = ? WHERE id = ?",
                (*values, object_id),
            )
        old_spans = current["span_count"] if current is not None else 0
        await self._write_spans(db, calendar_id, [(object_id, old_spans, write.spans)])  # type: ignore[list-item]
        revision = await self._bump(db, calendar_id)
        await self._record_changes(db, calendar_id, revision, [(write.href, write.uid, False)])
        async with db.execute(f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE id = ?", (object_id,)) as cursor:
            row = await cursor.fetchone()
        return _object(row), current is None  # type: ignore[arg-type]

    async def _delete(self, db: aiosqlite.Connection, calendar_id: int, href: str, if_etag: str | None) -> bool:
        async with db.execute(
            "SELECT id, uid, etag, span_count FROM objects WHERE calendar_id = ? AND href = ?", (calendar_id, href)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return False
        if if_etag is not None and if_etag not in ("*", row["etag"]):
            raise PreconditionFailed("etag")
        await self._write_spans(db, calendar_id, [(row["id"], row["span_count"], ())])
        await db.execute("DELETE FROM objects WHERE id = ?", (row["id"],))
        revision = await self._bump(db, calendar_id)
        await self._record_changes(db, calendar_id, revision, [(href, row["uid"], True)])
        return True

    # imports -----------------------------------------------------------------------------

    async def get_import(self, import_id: int) -> ImportJob | None:
        row = await self._one("SELECT * FROM imports WHERE id = ?", (import_id,))
        return _job(row) if row else None

    async def list_imports(
        self, where: ImportFilter, *, offset: int = 0, limit: int = 30
    ) -> tuple[list[ImportJob], int]:
        clauses, params = ["1 = 1"], []
        for column, value in (
            ("user_id", where.user_id), ("format", where.format), ("calendar_id", where.calendar_id),
            ("status", where.status),
        ):  # fmt: skip
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if where.since:
            clauses.append("created_at >= ?")
            params.append(where.since)
        if where.until:
            clauses.append("created_at <= ?")
            params.append(where.until + ("T23:59:59.999Z" if len(where.until) == 10 else ""))
        condition = " AND ".join(clauses)
        total = await self._one(f"SELECT COUNT(*) FROM imports WHERE {condition}", params)
        rows = await self._all(
            f"SELECT * FROM imports WHERE {condition} ORDER BY id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [_job(row) for row in rows], int(total[0]) if total else 0

    async def import_items(
        self, import_id: int, *, action: str | None = None, offset: int = 0, limit: int | None = None
    ) -> tuple[list[ImportItem], int]:
        condition = "import_id = ?" + (" AND action = ?" if action else "")
        params: list[Any] = [import_id, *([action] if action else [])]
        total = await self._one(f"SELECT COUNT(*) FROM import_items WHERE {condition}", params)
        rows = await self._all(
            f"SELECT * FROM import_items WHERE {condition} ORDER BY rowid LIMIT ? OFFSET ?",
            [*params, -1 if limit is None else limit, offset],
        )
        return [_record(ImportItem, row) for row in rows], int(total[0]) if total else 0

    async def create_import(self, job: NewImport) -> ImportJob:
        now = now_iso()
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO imports (user_id, calendar_id, door, format, filename, options, status, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.user_id, job.calendar_id, job.door, job.format, job.filename, json.dumps(job.options),
                 job.status, now, now),
            )  # fmt: skip
            return await self._job_in(db, cursor.lastrowid)  # type: ignore[arg-type]

    async def update_import(self, import_id: int, **changes: Any) -> ImportJob:
        for name in ("errors", "warnings"):
            if name in changes:
                changes[name] = json.dumps(changes[name])
        if changes.get("status") in (JobStatus.COMPLETE, JobStatus.FAILED):
            changes.setdefault("finished_at", now_iso())
        assignments = ", ".join(f"{name} = ?" for name in changes)
        async with self._transaction() as db:
            await db.execute(
                f"UPDATE imports SET {assignments}, updated_at = ? WHERE id = ?",
                (*changes.values(), now_iso(), import_id),
            )
            return await self._job_in(db, import_id)

    async def _job_in(self, db: aiosqlite.Connection, import_id: int) -> ImportJob:
        async with db.execute("SELECT * FROM imports WHERE id = ?", (import_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise LookupError(f"import {import_id} does not exist")
        return _job(row)

    async def uid_etags(self, calendar_id: int, uids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(uids):
            rows = await self._all(
                f"SELECT uid, etag FROM objects WHERE calendar_id = ? AND uid IN ({_marks(len(chunk))})",
                (calendar_id, *chunk),
            )
            found.update((row[0], row[1]) for row in rows)
        return found

    async def undo_import(
        self,
        import_id: int,
        restores: Sequence[tuple[int, ObjectWrite]],
        *,
        expect: str = JobStatus.COMPLETE,
        status: str = JobStatus.UNDONE,
        message: str | None = None,
    ) -> ImportJob:
        async with self._transaction() as db:
            job = await self._job_in(db, import_id)
            if job.status != expect:
                raise LookupError(f"import {import_id} is {job.status}, not {expect}")
            async with db.execute(
                "SELECT calendar_id, href FROM import_items WHERE import_id = ? AND action = 'created'", (import_id,)
            ) as cursor:
                created: dict[int, list[str]] = {}
                for item in await cursor.fetchall():
                    created.setdefault(item["calendar_id"], []).append(item["href"])
            for calendar_id, hrefs in created.items():
                await self._delete_many(db, calendar_id, hrefs)
            not_restored = []
            for calendar_id, write in restores:
                async with db.execute("SELECT 1 FROM calendars WHERE id = ?", (calendar_id,)) as cursor:
                    gone = await cursor.fetchone() is None
                try:
                    if gone:
                        raise LookupError("its calendar was deleted")
                    await self._put(db, calendar_id, write)
                except (Conflict, LookupError) as error:  # checked before anything is written
                    why = "another object in its calendar now holds its UID" if isinstance(error, Conflict) else error
                    not_restored.append(
                        {"line": None, "fields": [write.uid, write.href], "error": f"not put back: {why}"}
                    )
            for calendar_id in job.calendars_created:
                async with db.execute("SELECT 1 FROM objects WHERE calendar_id = ? LIMIT 1", (calendar_id,)) as cursor:
                    if await cursor.fetchone() is None:
                        await self._delete_calendar(db, calendar_id)
            if not_restored:
                note = f"{len(not_restored)} replaced object(s) could not be put back (see the warnings)"
                message = f"{message}; {note}" if message else note
            now = now_iso()
            await db.execute(
                "UPDATE imports SET status = ?, message = COALESCE(?, message), warnings = ?, updated_at = ?, "
                "finished_at = COALESCE(finished_at, ?) WHERE id = ?",
                (status, message, json.dumps(job.warnings + not_restored), now, now, import_id),
            )
            return await self._job_in(db, import_id)

    async def _delete_many(self, db: aiosqlite.Connection, calendar_id: int, hrefs: Sequence[str]) -> None:
        """Delete objects by href (those still there) with one sync revision for them all."""
        revision = None
        for chunk in _chunks(hrefs):
            marks = _marks(len(chunk))
            sql = f"SELECT id, href, uid, span_count FROM objects WHERE calendar_id = ? AND href IN ({marks})"
            async with db.execute(sql, (calendar_id, *chunk)) as cursor:
                rows = await cursor.fetchall()
            if not rows:
                continue
            await self._write_spans(db, calendar_id, [(r["id"], r["span_count"], ()) for r in rows])
            await db.executemany("DELETE FROM objects WHERE id = ?", [(r["id"],) for r in rows])
            revision = revision or await self._bump(db, calendar_id)
            await self._record_changes(db, calendar_id, revision, [(r["href"], r["uid"], True) for r in rows])

    async def import_batch(
        self, import_id: int, target: ImportTarget, writes: Sequence[ObjectWrite], progress: int
    ) -> tuple[int, int, int]:
        now = now_iso()
        async with self._transaction() as db:
            job = await self._job_in(db, import_id)
            calendar, made = await self._import_calendar(db, target)
            made_list = job.calendars_created + ([calendar.id] if made else [])
            revision = calendar.sync_revision + 1
            created, updated, unchanged = await self._import_chunk(db, import_id, calendar.id, revision, writes, now)
            if created or updated:
                await self._bump(db, calendar.id)
            await db.execute(
                "UPDATE imports SET created = created + ?, updated = updated + ?, unchanged = unchanged + ?, "
                "calendars_created = ?, calendar_id = COALESCE(calendar_id, ?), progress = ?, updated_at = ? "
                "WHERE id = ?",
                (created, updated, unchanged, json.dumps(made_list), calendar.id, progress, now, import_id),
            )
        return created, updated, unchanged

    async def _import_calendar(self, db: aiosqlite.Connection, target: ImportTarget) -> tuple[Calendar, bool]:
        if target.calendar_id is not None:
            sql, params = "SELECT * FROM calendars WHERE id = ?", (target.calendar_id,)
        else:
            assert target.create is not None
            sql = "SELECT * FROM calendars WHERE owner_id = ? AND name = ? ORDER BY id LIMIT 1"
            params = (target.owner_id, target.create.name)  # type: ignore[assignment]
        async with db.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        if row is not None:
            return _calendar(row), False
        if target.create is None:
            raise LookupError(f"calendar {target.calendar_id} does not exist")
        return await self._insert_calendar(db, target.create), True

    async def _import_chunk(
        self,
        db: aiosqlite.Connection,
        import_id: int,
        calendar_id: int,
        revision: int,
        chunk: Sequence[ObjectWrite],
        now: str,
    ) -> tuple[int, int, int]:
        async with db.execute(
            f"SELECT id, href, uid, etag, ical, span_count FROM objects WHERE calendar_id = ? "
            f"AND uid IN ({_marks(len(chunk))})",
            (calendar_id, *(w.uid for w in chunk)),
        ) as cursor:
            existing = {row["uid"]: row for row in await cursor.fetchall()}
        fresh = [w.href for w in chunk if w.uid not in existing]
        taken: set[str] = set()
        if fresh:
            async with db.execute(
                f"SELECT href FROM objects WHERE calendar_id = ? AND href IN ({_marks(len(fresh))})",
                (calendar_id, *fresh),
            ) as cursor:
                taken = {row[0] for row in await cursor.fetchall()}
        inserts, updates, items, changes, spans = [], [], [], [], []
        unchanged = 0
        for write in chunk:
            old = existing.get(write.uid)
            values = (
                write.etag, write.component, write.ical, write.start_utc, write.end_utc,
                int(write.recurring), write.summary, write.klass, import_id, now,
            )  # fmt: skip
            if old is None:
                href = write.href if write.href not in taken else f"{uuid_module.uuid4()}.ics"
                taken.add(href)
                inserts.append((*values, now, calendar_id, href, write.uid))
                items.append((import_id, calendar_id, href, write.uid, "created", None, None))
            elif old["etag"] == write.etag:
                unchanged += 1
                continue
            else:
                href = old["href"]
                updates.append((*values, old["id"]))
                spans.append((old["id"], old["span_count"], write.spans))
                items.append((import_id, calendar_id, href, write.uid, "updated", old["ical"], old["etag"]))
            changes.append((href, write.uid, False))
        await db.executemany(
            "INSERT INTO objects (etag, component, ical, start_utc, end_utc, recurring, summary, class, import_id, "
            "modified_at, created_at, calendar_id, href, uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
        await db.executemany(
            "UPDATE objects SET etag = ?, component = ?, ical = ?, start_utc = ?, end_utc = ?, recurring = ?, "
            "summary = ?, class = ?, import_id = ?, modified_at = ? WHERE id = ?",
            updates,
        )
        if inserts:
            spans_of = {w.uid: w.spans for w in chunk if w.uid not in existing}
            async with db.execute(
                f"SELECT id, uid FROM objects WHERE calendar_id = ? AND uid IN ({_marks(len(spans_of))})",
                (calendar_id, *spans_of),
            ) as cursor:
                spans += [(row["id"], 0, spans_of[row["uid"]]) for row in await cursor.fetchall()]
        await self._write_spans(db, calendar_id, spans)
        await db.executemany("INSERT INTO import_items VALUES (?, ?, ?, ?, ?, ?, ?)", items)
        await self._record_changes(db, calendar_id, revision, changes)
        return len(inserts), len(updates), unchanged
