"""Calendars."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from storage.model import (
    Calendar,
    NewCalendar,
    now_iso,
)
from storage.sqlite.connection import (
    _CALENDAR_FIELDS,
    _calendar,
    _inserted,
    _present,
)
from storage.sqlite.objects import Objects


class Calendars(Objects):
    """Calendars; deleting one drops its objects' spans."""

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
        async with db.execute("SELECT * FROM calendars WHERE id = ?", (_inserted(cursor),)) as rows:
            return _calendar(_present(await rows.fetchone()))

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
