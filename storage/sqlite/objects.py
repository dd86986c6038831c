"""Calendar objects, their time-range spans and the change log."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import aiosqlite

from storage.base import PreconditionFailed
from storage.model import (
    CalendarObject,
    Change,
    Conflict,
    ObjectWrite,
    now_iso,
)
from storage.sqlite.connection import (
    _OBJECT_COLUMNS,
    _OBJECT_FIELDS,
    _SPAN_IDS,
    Connection,
    _chunks,
    _inserted,
    _marks,
    _object,
    _present,
    _record,
)

#: what a write sets on an object's row; created_at, calendar_id and href are set when it is made
_WRITTEN = ("uid", "etag", "component", "ical", "start_utc", "end_utc", "recurring", "summary", "class",
            "import_id", "modified_at")  # fmt: skip
_INSERT = (
    f"INSERT INTO objects ({', '.join(_WRITTEN)}, created_at, calendar_id, href) VALUES ({_marks(len(_WRITTEN) + 3)})"
)
_UPDATE = f"UPDATE objects SET {', '.join(f'{column} = ?' for column in _WRITTEN)} WHERE id = ?"


class Placed(NamedTuple):
    """An object to write at an href, over the row it replaces (``id``, ``span_count``) or as new."""

    write: ObjectWrite
    href: str
    old: sqlite3.Row | None


class Objects(Connection):
    """Calendar objects, the span index of their instances and the change log (sync)."""

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
        """One object at its href: a UID held by another href is a Conflict, the preconditions
        are checked before anything is written."""
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
        ids = await self._write_objects(db, calendar_id, [Placed(write, write.href, current)])
        revision = await self._bump(db, calendar_id)
        await self._record_changes(db, calendar_id, revision, [(write.href, write.uid, False)])
        async with db.execute(f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE id = ?", (ids[write.href],)) as cursor:
            row = await cursor.fetchone()
        return _object(_present(row)), current is None

    async def _write_objects(
        self, db: aiosqlite.Connection, calendar_id: int, placed: Sequence[Placed], import_id: int | None = None
    ) -> dict[str, int]:
        """The one object writer (PUT, MOVE and COPY, imports and their undo): the rows and their
        index spans; the ids by href. The caller bumps the revision and logs the changes."""
        now = now_iso()

        def values(write: ObjectWrite) -> tuple[object, ...]:
            return (
                write.uid, write.etag, write.component, write.ical, write.start_utc, write.end_utc,
                int(write.recurring), write.summary, write.klass, import_id, now,
            )  # fmt: skip

        fresh = [p.href for p in placed if p.old is None]
        inserts = [(*values(p.write), now, calendar_id, p.href) for p in placed if p.old is None]
        updates = [(*values(p.write), p.old["id"]) for p in placed if p.old is not None]
        ids = {p.href: p.old["id"] for p in placed if p.old is not None}
        if len(inserts) == 1:  # a PUT: its id comes with the INSERT
            ids[fresh[0]] = _inserted(await db.execute(_INSERT, inserts[0]))
        elif inserts:
            await db.executemany(_INSERT, inserts)
            for part in _chunks(fresh):
                sql = f"SELECT id, href FROM objects WHERE calendar_id = ? AND href IN ({_marks(len(part))})"
                async with db.execute(sql, (calendar_id, *part)) as cursor:
                    ids.update({row["href"]: row["id"] for row in await cursor.fetchall()})
        if updates:
            await db.executemany(_UPDATE, updates)
        old_spans = [p.old["span_count"] if p.old is not None else 0 for p in placed]
        await self._write_spans(
            db, calendar_id, [(ids[p.href], old, p.write.spans) for p, old in zip(placed, old_spans, strict=True)]
        )
        return ids

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
