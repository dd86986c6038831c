"""Grants: who besides its owner may use a calendar, and how."""

from __future__ import annotations

from collections.abc import Sequence

from storage.model import Calendar, Grant, now_iso
from storage.sql.calendars import Calendars
from storage.sql.database import Row
from storage.sql.records import calendar, marks, present, record


def _grant(row: Row) -> Grant:
    return record(Grant, row)


class Grants(Calendars):
    """A calendar's grants; they go with their calendar or grantee (ON DELETE CASCADE)."""

    async def put_grant(
        self, calendar_id: int, grantee_id: int | None, level: str, state: str, granted_by: int | None
    ) -> Grant:
        now = now_iso()
        async with self.db.transaction() as tx:
            # the calendar's row is held: two grants made at once to one grantee are one
            await tx.one("SELECT id FROM calendars WHERE id = ?" + self.db.for_update, (calendar_id,))
            who = "grantee_id IS NULL" if grantee_id is None else "grantee_id = ?"
            found = await tx.one(
                f"SELECT id FROM grants WHERE calendar_id = ? AND {who}",
                (calendar_id,) if grantee_id is None else (calendar_id, grantee_id),
            )
            if found is None:
                grant_id = await tx.insert(
                    "INSERT INTO grants (calendar_id, grantee_id, level, state, granted_by, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (calendar_id, grantee_id, level, state, granted_by, now, now),
                )
            else:
                grant_id = found[0]
                await tx.run(
                    "UPDATE grants SET level = ?, state = ?, granted_by = ?, updated_at = ? WHERE id = ?",
                    (level, state, granted_by, now, grant_id),
                )
            return _grant(present(await tx.one("SELECT * FROM grants WHERE id = ?", (grant_id,))))

    async def set_grant_state(self, grant_id: int, state: str) -> Grant | None:
        async with self.db.transaction() as tx:
            await tx.run("UPDATE grants SET state = ?, updated_at = ? WHERE id = ?", (state, now_iso(), grant_id))
            row = await tx.one("SELECT * FROM grants WHERE id = ?", (grant_id,))
        return _grant(row) if row else None

    async def grants_of(self, calendar_id: int) -> list[Grant]:
        rows = await self.db.all("SELECT * FROM grants WHERE calendar_id = ? ORDER BY id", (calendar_id,))
        return [_grant(row) for row in rows]

    async def grants_to(self, user_id: int, states: Sequence[str]) -> list[tuple[Grant, Calendar]]:
        rows = await self.db.all(
            "SELECT g.id AS g_id, g.calendar_id AS g_calendar, g.grantee_id, g.level, g.state, g.granted_by, "
            "g.created_at AS g_created, g.updated_at AS g_updated, c.* FROM grants AS g "
            f"JOIN calendars AS c ON c.id = g.calendar_id WHERE g.grantee_id = ? AND g.state IN ({marks(len(states))}) "
            "ORDER BY g.id",
            (user_id, *states),
        )
        return [
            (
                Grant(row["g_id"], row["g_calendar"], row["grantee_id"], row["level"], row["state"],
                      row["granted_by"], row["g_created"], row["g_updated"]),
                calendar(row),
            )
            for row in rows
        ]  # fmt: skip

    async def grants_on(self, calendar_id: int, user_id: int) -> list[Grant]:
        rows = await self.db.all(
            "SELECT * FROM grants WHERE calendar_id = ? AND (grantee_id = ? OR grantee_id IS NULL) ORDER BY id",
            (calendar_id, user_id),
        )
        return [_grant(row) for row in rows]
