"""Calendars."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from storage.model import Calendar, NewCalendar, now_iso
from storage.sql.database import Tx
from storage.sql.objects import Objects
from storage.sql.records import CALENDAR_FIELDS, calendar, chunks, marks, present


class Calendars(Objects):
    """Calendars; deleting one drops its objects' spans."""

    async def _insert_calendar(self, tx: Tx, new: NewCalendar) -> Calendar:
        slug = await self._free_slug(tx, new.owner_id, new.slug)
        now = now_iso()
        calendar_id = await tx.insert(
            "INSERT INTO calendars (uuid, owner_id, slug, name, description, color, timezone, components, "
            "is_default, props, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new.uuid, new.owner_id, slug, new.name, new.description, new.color, new.timezone,
                new.components, int(new.is_default), json.dumps(new.props), now, now,
            ),
        )  # fmt: skip
        return calendar(present(await tx.one("SELECT * FROM calendars WHERE id = ?", (calendar_id,))))

    async def _free_slug(self, tx: Tx, user_id: int, base: str) -> str:
        """``base``, or ``base-2`` ..., a name none of the user's calendars and grants has in
        their home; the user's row is held until the transaction ends, so two made at once get
        different names."""
        await tx.one("SELECT id FROM users WHERE id = ?" + self.db.for_update, (user_id,))
        rows = await tx.all(
            "SELECT slug FROM calendars WHERE owner_id = ? AND (slug = ? OR slug LIKE ?) UNION "
            "SELECT slug FROM grants WHERE grantee_id = ? AND (slug = ? OR slug LIKE ?)",
            (user_id, base, f"{base}-%") * 2,
        )
        taken = {row[0] for row in rows}
        slug, number = base, 1
        while slug in taken:
            number += 1
            slug = f"{base}-{number}"
        return slug

    async def create_calendar(self, calendar: NewCalendar) -> Calendar:
        async with self.db.transaction() as tx:
            return await self._insert_calendar(tx, calendar)

    async def get_calendar(self, calendar_id: int) -> Calendar | None:
        row = await self.db.one("SELECT * FROM calendars WHERE id = ?", (calendar_id,))
        return calendar(row) if row else None

    async def get_calendar_by_uuid(self, uuid: str) -> Calendar | None:
        row = await self.db.one("SELECT * FROM calendars WHERE uuid = ?", (uuid,))
        return calendar(row) if row else None

    async def get_calendar_by_slug(self, owner_id: int, slug: str) -> Calendar | None:
        row = await self.db.one("SELECT * FROM calendars WHERE owner_id = ? AND slug = ?", (owner_id, slug))
        return calendar(row) if row else None

    async def find_calendar_by_name(self, owner_id: int, name: str) -> Calendar | None:
        row = await self.db.one(
            "SELECT * FROM calendars WHERE owner_id = ? AND name = ? ORDER BY id LIMIT 1", (owner_id, name)
        )
        return calendar(row) if row else None

    async def list_calendars(self, owner_id: int) -> list[Calendar]:
        rows = await self.db.all(
            "SELECT calendars.*, (SELECT COUNT(*) FROM objects WHERE calendar_id = calendars.id) "
            "AS object_count FROM calendars WHERE owner_id = ? ORDER BY is_default DESC, name, id",
            (owner_id,),
        )
        return [calendar(row) for row in rows]

    async def calendars_of(self, owner_ids: Sequence[int]) -> list[Calendar]:
        found: list[Calendar] = []
        for part in chunks(sorted(set(owner_ids))):
            rows = await self.db.all(
                f"SELECT * FROM calendars WHERE owner_id IN ({marks(len(part))}) ORDER BY owner_id, id", part
            )
            found += [calendar(row) for row in rows]
        return found

    async def update_calendar(self, calendar_id: int, **changes: Any) -> Calendar | None:
        await self._update("calendars", calendar_id, changes, CALENDAR_FIELDS, "props")
        return await self.get_calendar(calendar_id)

    async def delete_calendar(self, calendar_id: int) -> bool:
        async with self.db.transaction() as tx:
            return await self._delete_calendar(tx, calendar_id)

    async def _delete_calendar(self, tx: Tx, calendar_id: int) -> bool:
        await self.db.forget_spans(tx, [calendar_id])
        return await tx.run("DELETE FROM calendars WHERE id = ?", (calendar_id,)) > 0
