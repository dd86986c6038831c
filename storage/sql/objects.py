"""Calendar objects, their time-range spans and the change log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

from storage.errors import REPLACES_UID, Conflict, Gone, PreconditionFailed
from storage.model import Calendar, CalendarObject, Change, Detail, ObjectWrite, Spanned, now_iso
from storage.sql.database import HEAVY_SPANS, MAX_SPANS, Row, Tx
from storage.sql.records import (
    CALENDAR_COLUMNS,
    OBJECT_COLUMNS,
    Tables,
    calendar_at,
    calendar_object,
    chunks,
    marks,
    object_reading,
    record,
)

#: what a write sets on an object's row; created_at, calendar_id and href are set when it is made
#: why a write or delete whose If-Match named another version is refused
CHANGED = "the object changed since it was read"
_WRITTEN = ("uid", "etag", "component", "ical", "start_utc", "end_utc", "recurring", "summary", "class",
            "import_id", "modified_at", "modified_by", "schedule_tag", "span_count")  # fmt: skip
_INSERT = (
    f"INSERT INTO objects ({', '.join(_WRITTEN)}, created_at, calendar_id, href) VALUES ({marks(len(_WRITTEN) + 3)})"
)
_UPDATE = f"UPDATE objects SET {', '.join(f'{column} = ?' for column in _WRITTEN)} WHERE id = ?"
_LOG_CHANGE = (
    "INSERT INTO changes (calendar_id, href, uid, revision, deleted, changed_at, changed_by) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (calendar_id, href) DO UPDATE SET uid = excluded.uid, "
    "revision = excluded.revision, deleted = excluded.deleted, changed_at = excluded.changed_at, "
    "changed_by = excluded.changed_by"
)


OBJECT_COLUMNS_OF_O = object_reading(Detail.TEXT, "", "o.")[0]


class Placed(NamedTuple):
    """An object to write at an href of a calendar, over the row it replaces (``id``,
    ``span_count``) or as new."""

    calendar_id: int
    write: ObjectWrite
    href: str
    old: Row | None


class Objects(Tables):
    """Calendar objects, the span index of their instances and the change log (sync).

    Every write to a calendar's objects first locks the calendar's row (by bumping its sync
    revision, or reading it for update): writers of one calendar go one at a time, in the
    order of their revisions, on every database."""

    async def get_object(
        self, calendar_id: int, *, href: str | None = None, uid: str | None = None, detail: Detail = Detail.TEXT
    ) -> CalendarObject | None:
        column, value = ("href", href) if href is not None else ("uid", uid)
        columns, read = object_reading(detail, self.db.byte_length)
        row = await self.db.one(
            f"SELECT {columns} FROM objects WHERE calendar_id = ? AND {column} = ?", (calendar_id, value)
        )
        return None if row is None else read(row)

    async def calendar_with_object(
        self, owner_id: int, slug: str, href: str, *, detail: Detail = Detail.TEXT
    ) -> tuple[Calendar, CalendarObject | None] | None:
        columns, read = object_reading(detail, self.db.byte_length, "o.")
        row = await self.db.one(
            f"SELECT {', '.join('c.' + name for name in CALENDAR_COLUMNS)}, {columns} FROM calendars AS c "
            "LEFT JOIN objects AS o ON o.calendar_id = c.id AND o.href = ? WHERE c.owner_id = ? AND c.slug = ?",
            (href, owner_id, slug),
        )
        if row is None:
            return None
        values, split = tuple(row), len(CALENDAR_COLUMNS)
        found = values[split:]
        return calendar_at(values[:split]), read(found) if found[0] is not None else None

    async def get_objects(self, calendar_id: int, hrefs: Sequence[str]) -> list[CalendarObject]:
        found: list[CalendarObject] = []
        for part in chunks(hrefs):
            sql = f"SELECT {OBJECT_COLUMNS} FROM objects WHERE calendar_id = ? AND href IN ({marks(len(part))})"
            found += [calendar_object(row) for row in await self.db.all(sql, (calendar_id, *part))]
        return found

    async def changes_since(
        self,
        calendar_id: int,
        revision: int,
        after_href: str = "",
        *,
        limit: int | None = None,
        detail: Detail = Detail.TEXT,
    ) -> list[tuple[Change, CalendarObject | None]]:
        columns, read = object_reading(detail, self.db.byte_length, "o.")
        sql = (
            f"SELECT c.calendar_id, c.href, c.uid, c.revision, c.deleted, c.changed_at, c.changed_by, {columns} "
            "FROM changes AS c LEFT JOIN objects AS o ON o.calendar_id = c.calendar_id AND o.href = c.href "
            "WHERE c.calendar_id = ? AND "
            + ("(c.revision, c.href) > (?, ?)" if after_href else "c.revision > ?")
            + " ORDER BY c.revision, c.href"
        )
        params: list[Any] = [calendar_id, revision, *([after_href] if after_href else [])]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        result = []
        for row in await self.db.all(sql, params):  # by position: this runs for every change listed
            values = tuple(row)
            change = Change(values[0], values[1], values[2], values[3], bool(values[4]), values[5], values[6])
            result.append((change, read(values[7:]) if values[7] is not None else None))
        return result

    async def calendar_size(self, calendar_id: int) -> int:
        length = self.db.byte_length.format("ical")
        row = await self.db.one(f"SELECT SUM({length}) FROM objects WHERE calendar_id = ?", (calendar_id,))
        return int(row[0] or 0) if row else 0

    async def get_object_by_id(self, object_id: int) -> CalendarObject | None:
        row = await self.db.one(f"SELECT {OBJECT_COLUMNS} FROM objects WHERE id = ?", (object_id,))
        return calendar_object(row) if row else None

    async def list_objects(
        self, calendar_ids: Sequence[int], *, after_id: int = 0, limit: int | None = None, detail: Detail = Detail.TEXT
    ) -> list[CalendarObject]:
        if not calendar_ids:
            return []
        columns, read = object_reading(detail, self.db.byte_length)
        sql = f"SELECT {columns} FROM objects WHERE calendar_id IN ({marks(len(calendar_ids))}) AND id > ?"
        params: list[Any] = [*calendar_ids, after_id]
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [read(row) for row in await self.db.all(sql, params)]

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
        hits, params = self.db.span_hits(calendar_ids, start, end, after_id)
        sql = (
            f"SELECT {OBJECT_COLUMNS}, hits.exact FROM ({hits}) AS hits "
            "JOIN objects ON objects.id = hits.object_id ORDER BY objects.id"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [(calendar_object(row), bool(row["exact"])) for row in await self.db.all(sql, params)]

    async def spans_in_range(
        self, calendar_ids: Sequence[int], start: int, end: int
    ) -> dict[int, list[tuple[int, int, bool]]]:
        found: dict[int, list[tuple[int, int, bool]]] = {}
        if calendar_ids:
            sql, params = self.db.spans_overlapping(calendar_ids, start, end)
            for object_id, begin, finish, exact in await self.db.all(sql, params):
                found.setdefault(object_id, []).append((begin, finish, bool(exact)))
        return found

    async def spanned_in_range(self, calendar_ids: Sequence[int], start: int, end: int) -> list[Spanned]:
        # two queries: SQLite's planner joins the span index to the objects badly (ten times slower)
        spans = await self.spans_in_range(calendar_ids, start, end)
        found: list[Spanned] = []
        for part in chunks(sorted(spans)):
            rows = await self.db.all(
                f"SELECT id, calendar_id, uid, component, ical FROM objects WHERE id IN ({marks(len(part))})", part
            )
            found += [Spanned(row[0], row[1], row[2], row[3], row[4], spans[row[0]]) for row in rows]
        return found

    async def search_objects(self, calendar_ids: Sequence[int], text: str, limit: int) -> list[CalendarObject]:
        if not calendar_ids:
            return []
        # the text unfolded and unescaped in SQL (both databases have replace and lower), so a
        # word across a folded line or beside an escaped comma is found
        unfolded = "replace(replace(replace(replace(ical, ?, ''), ?, ''), ?, ','), ?, ';')"
        pattern = "%" + text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
        sql = (
            f"SELECT {OBJECT_COLUMNS} FROM objects WHERE calendar_id IN ({marks(len(calendar_ids))}) "
            f"AND lower({unfolded}) LIKE ? ESCAPE '!' ORDER BY start_utc, id LIMIT ?"
        )
        params = [*calendar_ids, "\r\n ", "\r\n\t", "\\,", "\\;", pattern, limit]
        return [calendar_object(row) for row in await self.db.all(sql, params)]

    async def _in_period(
        self, select: str, column: str, calendar_ids: Sequence[int], since: str | None, until: str | None, order: str
    ) -> list[Row]:
        """Rows of ``select`` for the calendars whose ``column`` time lies in [since, until]."""
        sql = f"{select} AND calendar_id IN ({marks(len(calendar_ids))})"
        params: list[Any] = list(calendar_ids)
        for operator, value in ((">=", since), ("<=", until)):
            if value:
                sql += f" AND {column} {operator} ?"
                params.append(value)
        return await self.db.all(f"{sql} ORDER BY {order}", params)

    async def modified_objects(
        self, calendar_ids: Sequence[int], since: str | None, until: str | None
    ) -> list[CalendarObject]:
        select = f"SELECT {OBJECT_COLUMNS} FROM objects WHERE 1 = 1"
        rows = await self._in_period(select, "modified_at", calendar_ids, since, until, "id")
        return [calendar_object(row) for row in rows]

    async def deleted_since(self, calendar_ids: Sequence[int], since: str | None, until: str | None) -> list[Change]:
        select = "SELECT * FROM changes WHERE deleted = 1"
        rows = await self._in_period(select, "changed_at", calendar_ids, since, until, "revision")
        return [record(Change, row, deleted=True) for row in rows]

    async def object_pages(
        self, calendar_ids: Sequence[int], batch: int | None = None, *, detail: Detail = Detail.TEXT
    ) -> AsyncIterator[list[CalendarObject]]:
        batch = batch or self.db.listing_page
        after = 0
        while True:
            rows = await self.list_objects(calendar_ids, after_id=after, limit=batch, detail=detail)
            if rows:
                yield rows
            if len(rows) < batch:
                return
            after = rows[-1].id
            await asyncio.sleep(0)  # a page read in the loop's thread: the other tasks' turn

    async def iter_objects(self, calendar_ids: Sequence[int], batch: int = 500) -> AsyncIterator[CalendarObject]:
        async for page in self.object_pages(calendar_ids, batch):
            for found in page:
                yield found

    async def _bump(self, tx: Tx, calendar_id: int) -> int:
        """The calendar's next sync revision; its row stays locked until the transaction ends."""
        row = await tx.one(
            "UPDATE calendars SET sync_revision = sync_revision + 1, updated_at = ? WHERE id = ? "
            "RETURNING sync_revision",
            (now_iso(), calendar_id),
        )
        if row is None:
            raise Gone(f"calendar {calendar_id} does not exist")
        return int(row[0])

    async def _record_changes(
        self, tx: Tx, calendar_id: int, revision: int, changes: Sequence[tuple[str, str, bool]], by: int | None
    ) -> None:
        await self._record_many(tx, [(calendar_id, revision, href, uid, deleted) for href, uid, deleted in changes], by)

    async def _record_many(self, tx: Tx, changes: Sequence[tuple[int, int, str, str, bool]], by: int | None) -> None:
        """Log changes of several calendars: rows of (calendar_id, revision, href, uid, deleted)."""
        now = now_iso()
        await tx.many(
            _LOG_CHANGE,
            [
                (calendar_id, href, uid, revision, int(deleted), now, by)
                for calendar_id, revision, href, uid, deleted in changes
            ],
        )

    async def put_object(
        self, calendar_id: int, write: ObjectWrite, *, if_etag: str | None = None, create_only: bool = False
    ) -> tuple[CalendarObject, bool]:
        return await self.db.run(
            lambda tx: self._put(tx, calendar_id, write, if_etag=if_etag, create_only=create_only),
            heavy=len(write.spans) > HEAVY_SPANS,
        )

    async def delete_object(
        self, calendar_id: int, href: str, *, if_etag: str | None = None, by: int | None = None
    ) -> bool:
        async def removed(tx: Tx) -> None:
            if not await self._delete(tx, calendar_id, href, if_etag, by):
                raise Gone(href)  # rolls back the revision taken

        try:
            await self.db.run(removed)
        except Gone:
            return False
        return True

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
        async def moved(tx: Tx) -> tuple[CalendarObject, bool]:
            if not keep_source and not await self._delete(tx, calendar_id, href, None, write.by):
                raise Gone(href)
            return await self._put(tx, target_id, write, create_only=not overwrite)

        return await self.db.run(moved, heavy=len(write.spans) > HEAVY_SPANS)

    async def _put(
        self, tx: Tx, calendar_id: int, write: ObjectWrite, *, if_etag: str | None = None, create_only: bool = False
    ) -> tuple[CalendarObject, bool]:
        """One object at its href: a UID held by another href is a Conflict, the preconditions
        are checked before anything is written (the transaction rolls the revision back)."""
        revision = await self._bump(tx, calendar_id)
        rows = await tx.all(
            "SELECT id, href, uid, etag, span_count, created_at FROM objects "
            "WHERE calendar_id = ? AND (href = ? OR uid = ?)",
            (calendar_id, write.href, write.uid),
        )
        current = next((r for r in rows if r["href"] == write.href), None)
        if current is not None and current["uid"] != write.uid:
            raise Conflict(REPLACES_UID)
        if any(r["href"] != write.href for r in rows):
            raise Conflict("uid")
        if create_only and current is not None:
            raise PreconditionFailed("the destination exists")
        if if_etag is not None and (current is None or if_etag not in ("*", current["etag"])):
            raise PreconditionFailed(CHANGED)
        now = now_iso()
        ids = await self._write_objects(tx, [Placed(calendar_id, write, write.href, current)], now=now)
        await self._record_changes(tx, calendar_id, revision, [(write.href, write.uid, False)], write.by)
        # the object as written (no statement more to read it back)
        w = write
        made = now if current is None else current["created_at"]
        return CalendarObject(
            ids[calendar_id, w.href], calendar_id, w.href, w.uid, w.etag, w.component, w.ical, w.start_utc,
            w.end_utc, w.recurring, w.summary, w.klass, None, made, now, w.by, w.schedule_tag,
        ), current is None  # fmt: skip

    async def _write_objects(
        self, tx: Tx, placed: Sequence[Placed], import_id: int | None = None, by: int | None = None, now: str = ""
    ) -> dict[tuple[int, str], int]:
        """The one object writer (PUT, MOVE and COPY, imports and their undo, a meeting with its
        copies in several calendars): the rows and their index spans; the ids by (calendar,
        href). The caller bumps the revisions and logs the changes. The writes are ``by`` this
        user, if given (an import's), else by their own ``by``; modified at ``now`` (default: now)."""
        now = now or now_iso()

        def values(write: ObjectWrite) -> tuple[object, ...]:
            return (
                write.uid, write.etag, write.component, write.ical, write.start_utc, write.end_utc,
                int(write.recurring), write.summary, write.klass, import_id, now, write.by if by is None else by,
                write.schedule_tag, min(len(write.spans), MAX_SPANS),
            )  # fmt: skip

        fresh = [p for p in placed if p.old is None]
        inserts = [(*values(p.write), now, p.calendar_id, p.href) for p in fresh]
        updates = [(*values(p.write), p.old["id"]) for p in placed if p.old is not None]
        ids = {(p.calendar_id, p.href): p.old["id"] for p in placed if p.old is not None}
        if len(inserts) == 1:  # a PUT: its id comes with the INSERT
            ids[fresh[0].calendar_id, fresh[0].href] = await tx.insert(_INSERT, inserts[0])
        elif inserts:
            await tx.many(_INSERT, inserts)
            wanted = {(p.calendar_id, p.href) for p in fresh}
            calendars = sorted({p.calendar_id for p in fresh})
            for part in chunks(sorted({p.href for p in fresh})):  # a superset of what is wanted, kept by pair
                sql = (
                    f"SELECT id, calendar_id, href FROM objects WHERE calendar_id IN ({marks(len(calendars))}) "
                    f"AND href IN ({marks(len(part))})"
                )
                for row in await tx.all(sql, (*calendars, *part)):
                    if (row["calendar_id"], row["href"]) in wanted:
                        ids[row["calendar_id"], row["href"]] = row["id"]
        if updates:
            await tx.many(_UPDATE, updates)
        # the rows carry their span counts: only the spans themselves are left to write
        old_counts = [p.old["span_count"] if p.old is not None else 0 for p in placed]
        await self.db.write_spans(
            tx,
            [(p.calendar_id, ids[p.calendar_id, p.href], old, p.write.spans[:MAX_SPANS])
             for p, old in zip(placed, old_counts, strict=True)],
        )  # fmt: skip
        return ids

    async def _delete(self, tx: Tx, calendar_id: int, href: str, if_etag: str | None, by: int | None) -> bool:
        revision = await self._bump(tx, calendar_id)
        row = await tx.one(
            "SELECT id, uid, etag, span_count FROM objects WHERE calendar_id = ? AND href = ?", (calendar_id, href)
        )
        if row is None:
            return False
        if if_etag is not None and if_etag not in ("*", row["etag"]):
            raise PreconditionFailed(CHANGED)
        await self.db.write_spans(tx, [(calendar_id, row["id"], row["span_count"], ())])
        await tx.run("DELETE FROM objects WHERE id = ?", (row["id"],))
        await self._record_changes(tx, calendar_id, revision, [(href, row["uid"], True)], by)
        return True
